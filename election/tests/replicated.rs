//! Replicated leases and `ask` through the runtime (docs/REPLICATION.md): appends are
//! chosen, applied on every node in order and read on the master (R4-R6); a new master is
//! told it is elected only with every acknowledged command (R2); a node restarted on its
//! storage, or cut off while the others snapshotted, catches up (R7); `ask` answers alike
//! everywhere (R8); a node whose storage fails stops as an acceptor while the others go
//! on; a node without storage refuses.
//!
//! Real time on the in-memory transport (the storage thread is a real thread, which a
//! paused tokio clock would not wait for), with a short lease and generous waits.
#![allow(
    clippy::unwrap_used,
    reason = "in tests a failed unwrap is a failed test"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gen_paxos_election::memory::MemoryNetwork;
use gen_paxos_election::storage::MemoryStorage;
use gen_paxos_election::{
    AppendError, AskError, Candidacy, Config, Election, ElectionEvent, Error, Leader, LeaseInfo,
    NodeId, ReadError, ReplicatedLease, StateMachine, SurrenderInfo, Wire, async_trait,
};
use tokio::time::{Instant, sleep};

const LEASE: Duration = Duration::from_millis(400);
const PATIENCE: Duration = Duration::from_secs(20);

/// The state: the sum of the commands (decimal numbers) and the indices applied.
#[derive(Debug, Default, Clone, PartialEq)]
struct Counter {
    total: u64,
    indices: Vec<u64>,
    /// (index, command) of every command applied since the last restore.
    applied: Vec<(u64, u64)>,
    restored: u32,
}

impl StateMachine for Counter {
    fn apply(&mut self, index: u64, command: &[u8]) {
        let n: u64 = std::str::from_utf8(command).unwrap().parse().unwrap();
        self.total += n;
        self.indices.push(index);
        self.applied.push((index, n));
    }

    fn snapshot(&self) -> Vec<u8> {
        self.total.to_le_bytes().to_vec()
    }

    fn restore(&mut self, snapshot: &[u8]) {
        self.total = u64::from_le_bytes(snapshot.try_into().unwrap());
        self.indices.clear();
        self.applied.clear();
        self.restored += 1;
    }
}

type Slot = Arc<Mutex<Option<ReplicatedLease<String, Counter>>>>;

/// Records, at every `on_elected`, the state the new master's Leader sees.
struct Probe {
    node: NodeId,
    lease: Slot,
    seen: Arc<Mutex<Vec<(NodeId, u64)>>>,
}

#[async_trait]
impl Leader for Probe {
    type Message = String;

    async fn on_elected(&mut self, _lease: &LeaseInfo) -> Option<String> {
        let lease = self.lease.lock().unwrap().clone();
        if let Some(lease) = lease {
            let total = lease.read(|c| c.total).unwrap();
            self.seen.lock().unwrap().push((self.node, total));
        }
        None
    }

    async fn on_surrendered(&mut self, _info: SurrenderInfo<String>) {}
}

struct Cluster {
    net: MemoryNetwork<Wire>,
    ids: Vec<NodeId>,
    nodes: HashMap<NodeId, Election>,
    storage: HashMap<NodeId, MemoryStorage>,
    leases: HashMap<NodeId, ReplicatedLease<String, Counter>>,
    seen: Arc<Mutex<Vec<(NodeId, u64)>>>,
    snapshot_every: u64,
}

fn config(id: NodeId, ids: &[NodeId], snapshot_every: u64, incarnation: u64) -> Config {
    let mut c = Config::new(id, ids.to_vec());
    c.lease_duration = LEASE;
    c.seed = Some(id.0);
    c.incarnation = Some(id.0 * 1000 + incarnation);
    c.snapshot_every = snapshot_every;
    c
}

impl Cluster {
    async fn start(snapshot_every: u64) -> Cluster {
        let net = MemoryNetwork::new(7);
        net.set_delay(Duration::from_micros(200), Duration::from_millis(1));
        let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let mut c = Cluster {
            net,
            ids: ids.clone(),
            nodes: HashMap::new(),
            storage: HashMap::new(),
            leases: HashMap::new(),
            seen: Arc::default(),
            snapshot_every,
        };
        for id in ids {
            c.storage.insert(id, MemoryStorage::new());
            c.boot(id, 1).await;
        }
        c
    }

    /// Starts `id` on its storage and joins the replicated lease.
    async fn boot(&mut self, id: NodeId, incarnation: u64) {
        let config = config(id, &self.ids, self.snapshot_every, incarnation);
        let storage = self.storage[&id].clone();
        let election =
            Election::start_with_storage(config, self.net.transport(id), storage).unwrap();
        let slot: Slot = Arc::default();
        let probe = Probe {
            node: id,
            lease: slot.clone(),
            seen: self.seen.clone(),
        };
        let lease = election
            .join_replicated("counter", probe, Candidacy::candidate(), Counter::default())
            .await
            .unwrap();
        *slot.lock().unwrap() = Some(lease.clone());
        self.nodes.insert(id, election);
        self.leases.insert(id, lease);
    }

    /// The node whose lease reads are served (master, log ready).
    async fn ready_master(&self) -> NodeId {
        let end = Instant::now() + PATIENCE;
        loop {
            for (id, lease) in &self.leases {
                if lease.read(|_| ()).is_ok() {
                    return *id;
                }
            }
            assert!(Instant::now() < end, "no ready master");
            sleep(Duration::from_millis(5)).await;
        }
    }

    async fn wait_total(&self, id: NodeId, total: u64) {
        let end = Instant::now() + PATIENCE;
        while self.leases[&id].read_stale(|c| c.total) != total {
            assert!(
                Instant::now() < end,
                "node {id} has {} of {total}",
                self.leases[&id].read_stale(|c| c.total)
            );
            sleep(Duration::from_millis(5)).await;
        }
    }

    /// Appends 1..=n on `master`; returns the indices.
    async fn append_numbers(
        &self,
        master: NodeId,
        range: std::ops::RangeInclusive<u64>,
    ) -> Vec<u64> {
        let mut indices = Vec::new();
        for n in range {
            indices.push(self.leases[&master].append(n.to_string()).await.unwrap());
        }
        indices
    }
}

fn sum(range: std::ops::RangeInclusive<u64>) -> u64 {
    range.sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_chosen_applied_everywhere_in_order_and_read_on_the_master() {
    let c = Cluster::start(10_000).await;
    let master = c.ready_master().await;
    let indices = c.append_numbers(master, 1..=50).await;
    assert!(indices.windows(2).all(|w| w[0] < w[1]), "{indices:?}");
    // R6: the master reads every acknowledged command, with no round trip.
    assert_eq!(c.leases[&master].read(|s| s.total), Ok(sum(1..=50)));
    for &id in &c.ids {
        c.wait_total(id, sum(1..=50)).await;
        let applied = c.leases[&id].read_stale(|s| s.indices.clone());
        assert_eq!(applied[applied.len() - 50..], indices[..], "node {id}");
        if id != master {
            assert_eq!(c.leases[&id].read(|s| s.total), Err(ReadError::NotMaster));
            let refused = c.leases[&id].append("1").await;
            assert_eq!(refused, Err(AppendError::NotMaster));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_each_get_the_index_their_command_was_applied_at() {
    // The driver hands appends waiting together to the core as one batch: each caller must
    // still hear the index of its own command.
    let c = Cluster::start(10_000).await;
    let master = c.ready_master().await;
    let lease = c.leases[&master].clone();
    let election = c.nodes[&master].clone();
    // `ask`s among them: a command met while gathering appends waits its turn and is
    // answered too.
    let asks: Vec<_> = (0..30u64)
        .map(|k| {
            let election = election.clone();
            tokio::spawn(async move { election.ask(&format!("k{k}"), format!("v{k}")).await })
        })
        .collect();
    let tasks: Vec<_> = (1..=300u64)
        .map(|n| {
            let lease = lease.clone();
            tokio::spawn(async move { (n, lease.append(n.to_string()).await.unwrap()) })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    for (k, ask) in asks.into_iter().enumerate() {
        assert_eq!(ask.await.unwrap(), Ok(format!("v{k}").into_bytes()));
    }
    let applied = lease.read(|s| s.applied.clone()).unwrap();
    for (n, index) in &answers {
        assert!(
            applied.contains(&(*index, *n)),
            "command {n} was answered index {index}, applied at {:?}",
            applied.iter().find(|(_, m)| m == n)
        );
    }
    let mut indices: Vec<u64> = answers.iter().map(|(_, i)| *i).collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), 300, "two commands answered one index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_master_is_elected_only_with_every_acknowledged_command() {
    let mut c = Cluster::start(10_000).await;
    let first = c.ready_master().await;
    let indices = c.append_numbers(first, 1..=20).await;
    let mut events: HashMap<NodeId, _> = c.nodes.iter().map(|(id, e)| (*id, e.events())).collect();
    // The master crashes (no release): another is elected after the lease, recovers the
    // log, and only then hears `on_elected`, with all 20 commands in its state.
    c.nodes[&first].crash();
    c.net.crash(first);
    c.leases.remove(&first);
    let second = c.ready_master().await;
    assert_ne!(second, first);
    let end = Instant::now() + PATIENCE;
    while !c.seen.lock().unwrap().iter().any(|(n, _)| *n == second) {
        assert!(Instant::now() < end, "on_elected never ran on {second}");
        sleep(Duration::from_millis(5)).await;
    }
    let seen = c.seen.lock().unwrap().clone();
    for (node, total) in seen.iter().filter(|(n, _)| *n == second) {
        assert_eq!(
            *total,
            sum(1..=20),
            "on_elected on {node} saw a state missing commands"
        );
    }
    // It said so: `Ready` after `Elected` of the same tenure, counting every entry.
    let rx = events.get_mut(&second).unwrap();
    let mut elected = None;
    let ready = loop {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Ok(ElectionEvent::Elected { token, .. })) => elected = Some(token),
            Ok(Ok(ElectionEvent::Ready { token, entries, .. })) => break (token, entries),
            Ok(Ok(_)) => {}
            other => panic!("no Ready event on {second}: {other:?}"),
        }
    };
    assert_eq!(
        Some(ready.0),
        elected,
        "Ready names the tenure just elected"
    );
    let last = *indices.last().unwrap();
    assert!(
        ready.1 > last,
        "Ready counts {} entries, the last acknowledged is {last}",
        ready.1
    );
    c.append_numbers(second, 21..=30).await;
    assert_eq!(c.leases[&second].read(|s| s.total), Ok(sum(1..=30)));
    // The crashed node restarts on its storage and catches up.
    c.net.heal();
    c.boot(first, 2).await;
    c.wait_total(first, sum(1..=30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_while_the_others_snapshotted_installs_their_snapshot() {
    let c = Cluster::start(10).await;
    let master = c.ready_master().await;
    let behind = c.ids.iter().copied().find(|&id| id != master).unwrap();
    c.net.isolate(behind);
    // Snapshots every 10 entries: the entries it misses are gone from the others' logs.
    let end = Instant::now() + PATIENCE;
    let mut appended = 0;
    while appended < 60 {
        assert!(Instant::now() < end, "appends stalled");
        match c.leases[&master].append("2").await {
            Ok(_) => appended += 1,
            Err(e) => panic!("append failed: {e}"),
        }
    }
    c.net.heal();
    c.leases[&master].append("1").await.unwrap();
    c.wait_total(behind, 121).await;
    assert!(
        c.leases[&behind].read_stale(|s| s.restored) >= 1,
        "it caught up by a snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_get_and_forget_agree_on_every_node() {
    let c = Cluster::start(10_000).await;
    let asks = c
        .ids
        .iter()
        .map(|&id| {
            let node = c.nodes[&id].clone();
            tokio::spawn(async move { node.ask("color", format!("from {id}")).await })
        })
        .collect::<Vec<_>>();
    let mut answers = Vec::new();
    for ask in asks {
        answers.push(ask.await.unwrap().unwrap());
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    for &id in &c.ids {
        assert_eq!(
            c.nodes[&id].get("color").await,
            Ok(Some(answers[0].clone()))
        );
    }
    assert_eq!(c.nodes[&NodeId(2)].forget("color").await, Ok(0));
    assert_eq!(c.nodes[&NodeId(3)].get("color").await, Ok(None));
    assert_eq!(
        c.nodes[&NodeId(1)].ask("color", "blue").await,
        Ok(b"blue".to_vec())
    );
    assert!(matches!(
        c.nodes[&NodeId(1)].ask("", "x").await,
        Err(AskError::InvalidKey(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_storage_fails_stops_as_an_acceptor_and_the_others_go_on() {
    let c = Cluster::start(10_000).await;
    let master = c.ready_master().await;
    let broken = c.ids.iter().copied().find(|&id| id != master).unwrap();
    c.storage[&broken].fail_writes();
    c.append_numbers(master, 1..=10).await;
    let end = Instant::now() + PATIENCE;
    while !c.nodes[&broken].storage_failed() {
        assert!(Instant::now() < end, "the failure was not noticed");
        sleep(Duration::from_millis(5)).await;
    }
    // Two acceptors are a majority of three: appends go on.
    c.append_numbers(master, 11..=20).await;
    assert_eq!(c.leases[&master].read(|s| s.total), Ok(sum(1..=20)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_storage_a_replicated_lease_and_ask_are_refused() {
    let net: MemoryNetwork<Wire> = MemoryNetwork::new(1);
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let node = Election::start(config(NodeId(1), &ids, 10, 1), net.transport(NodeId(1))).unwrap();
    let slot: Slot = Arc::default();
    let probe = Probe {
        node: NodeId(1),
        lease: slot,
        seen: Arc::default(),
    };
    let refused = node
        .join_replicated("counter", probe, Candidacy::candidate(), Counter::default())
        .await;
    assert!(matches!(refused, Err(Error::NoStorage)), "{refused:?}");
    assert_eq!(node.ask("color", "red").await, Err(AskError::NoStorage));
    assert_eq!(node.get("color").await, Err(AskError::NoStorage));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_whose_storage_fails_hands_over_and_stands_no_more() {
    let c = Cluster::start(10_000).await;
    let master = c.ready_master().await;
    c.append_numbers(master, 1..=5).await;
    c.storage[&master].fail_writes();
    // This append may still be chosen (two other acceptors suffice) or fail; the node, which
    // can write nothing, hands the lease over and stands no more.
    let sixth = tokio::time::timeout(PATIENCE, c.leases[&master].append("6")).await;
    let acked = matches!(sixth, Ok(Ok(_)));
    let end = Instant::now() + PATIENCE;
    let next = loop {
        let ready = c
            .ids
            .iter()
            .copied()
            .find(|&id| id != master && c.leases[&id].read(|_| ()).is_ok());
        if let Some(id) = ready {
            break id;
        }
        assert!(
            Instant::now() < end,
            "no other master took over ({sixth:?})"
        );
        sleep(Duration::from_millis(5)).await;
    };
    let total = c.leases[&next].read(|s| s.total).unwrap();
    if acked {
        assert_eq!(total, sum(1..=6), "an acknowledged append survives");
    } else {
        assert!(total == sum(1..=5) || total == sum(1..=6), "{total}");
    }
    c.append_numbers(next, 7..=7).await;
    assert!(!c.leases[&master].lease().is_master());
}
