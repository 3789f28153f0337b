//! Single writer with fencing: replicas share an append-only store that rejects any write
//! carrying an older fencing token than it has already seen; only the master writes.
//!
//! The run injects master crashes (no release), restarts and resignations, and "zombie"
//! writers: a master that checks its lease, then stalls for longer than a lease (a GC
//! pause) before writing with the token it read. The store must reject those writes once a
//! newer master has written. At the end the example checks, from the election events and
//! the store's history, that no accepted write came from a deposed master, and exits
//! non-zero if any check fails.
//!
//! ```text
//! cargo run -p gen-paxos-election --example single_writer
//! ```
//!
//! It runs on tokio's paused clock over the in-memory transport: 40 lease durations of
//! virtual time take a second or two of real time.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gen_paxos_election::memory::MemoryNetwork;
use gen_paxos_election::{
    Ballot, Candidacy, Config, Election, ElectionEvent, Leader, LeaseHandle, LeaseInfo, NodeId,
    SurrenderInfo, Wire, async_trait,
};
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(1);
const NAME: &str = "journal";

/// One accepted write.
#[derive(Debug, Clone)]
struct Write {
    token: Ballot,
    node: NodeId,
    at: Instant,
}

/// The shared resource: append-only, fenced by token.
#[derive(Debug, Default)]
struct Store {
    highest: Option<Ballot>,
    accepted: Vec<Write>,
    rejected: u64,
}

impl Store {
    /// Appends unless a newer token has been seen (the fencing check a real store makes).
    fn append(&mut self, token: Ballot, node: NodeId) -> bool {
        if self.highest.is_some_and(|h| token < h) {
            self.rejected += 1;
            return false;
        }
        self.highest = Some(token);
        self.accepted.push(Write {
            token,
            node,
            at: Instant::now(),
        });
        true
    }
}

type Shared = Arc<Mutex<Store>>;

/// A replica: on election it fences the store with its new token at once.
struct Replica {
    id: NodeId,
    store: Shared,
}

#[async_trait]
impl Leader for Replica {
    type Message = ();

    async fn on_elected(&mut self, lease: &LeaseInfo) -> Option<()> {
        self.store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(lease.token, self.id);
        None
    }

    async fn on_surrendered(&mut self, _info: SurrenderInfo<()>) {}
}

/// Writes every 10 ms while master; one write in twenty is a zombie that stalls 1.5
/// leases between checking its lease and writing.
fn spawn_writer(id: NodeId, lease: LeaseHandle<()>, store: Shared, seed: u64) {
    tokio::spawn(async move {
        let mut rng = seed;
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if lease.election().is_stopped() {
                return;
            }
            let Some(guard) = lease.guard() else { continue };
            let Some(token) = guard.token() else { continue };
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if (rng >> 33).is_multiple_of(20) {
                // The zombie: acts on a stale check.
                tokio::time::sleep(LEASE * 3 / 2).await;
            } else if !guard.is_valid() {
                continue;
            }
            store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .append(token, id);
        }
    });
}

type Log = Arc<Mutex<Vec<(Instant, NodeId, ElectionEvent)>>>;

async fn start_node(
    network: &MemoryNetwork<Wire>,
    id: NodeId,
    voters: &[NodeId],
    store: &Shared,
    log: &Log,
) -> Election {
    let config = Config::new(id, voters.to_vec()).with_lease_duration(LEASE);
    let election = Election::start(config, network.transport(id)).expect("valid configuration");
    let mut events = election.events();
    let log = log.clone();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            log.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((Instant::now(), id, event));
        }
    });
    let replica = Replica {
        id,
        store: store.clone(),
    };
    let lease = election
        .join(NAME, replica, Candidacy::candidate())
        .await
        .expect("join");
    spawn_writer(id, lease, store.clone(), id.0 * 7919);
    election
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> ExitCode {
    let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let network = MemoryNetwork::<Wire>::new(7);
    network.set_delay(Duration::from_micros(100), Duration::from_millis(2));
    let store: Shared = Arc::default();
    let log: Log = Arc::default();
    let mut nodes: BTreeMap<NodeId, Election> = BTreeMap::new();
    for &id in &voters {
        nodes.insert(id, start_node(&network, id, &voters, &store, &log).await);
    }
    let start = Instant::now();
    let (mut crashes, mut resigns) = (0, 0);
    for round in 0..12 {
        tokio::time::sleep(LEASE * 3).await;
        let Some((&master, election)) = nodes.iter().find(|(_, e)| e.is_master(NAME)) else {
            continue;
        };
        if round % 2 == 0 {
            // Crash the master (no release), bring it back a lease later.
            election.crash();
            network.crash(master);
            crashes += 1;
            tokio::time::sleep(LEASE).await;
            let restarted = start_node(&network, master, &voters, &store, &log).await;
            nodes.insert(master, restarted);
        } else {
            election.resign(NAME).await.expect("joined");
            resigns += 1;
        }
    }
    tokio::time::sleep(LEASE * 2).await;
    for election in nodes.values() {
        election.shutdown().await;
    }
    let elapsed = start.elapsed();

    let store = store.lock().unwrap_or_else(PoisonError::into_inner);
    let log = log.lock().unwrap_or_else(PoisonError::into_inner);
    let mut failures = Vec::new();

    // 1. Tokens only grow along the store's history.
    for pair in store.accepted.windows(2) {
        if pair[1].token < pair[0].token {
            failures.push(format!(
                "write by node {} with {} after {}",
                pair[1].node, pair[1].token, pair[0].token
            ));
        }
    }
    // 2. Every accepted token was really granted to its writer, before the write.
    for w in &store.accepted {
        let granted = log.iter().any(|(at, id, e)| {
            *id == w.node
                && *at <= w.at
                && matches!(e, ElectionEvent::Elected { token, .. } | ElectionEvent::Renewed { token, .. } if *token == w.token)
        });
        if !granted {
            failures.push(format!(
                "node {} wrote with token {} it was never granted",
                w.node, w.token
            ));
        }
    }
    // 3. No write from a deposed master: once a newer master's write is in the store, no
    //    write with an older token follows.
    let mut newest: Option<&Write> = None;
    for w in &store.accepted {
        if let Some(n) = newest.filter(|n| n.node != w.node && w.token < n.token) {
            failures.push(format!(
                "deposed node {} wrote after node {} (token {})",
                w.node, n.node, n.token
            ));
        }
        if newest.is_none_or(|n| w.token > n.token) {
            newest = Some(w);
        }
    }
    // 4. From the events alone: authority intervals (elected or renewed, until surrendered or
    //    the deadline, which a crashed node cannot extend) of different nodes never overlap.
    let mut open: BTreeMap<NodeId, (Instant, Instant)> = BTreeMap::new();
    let mut intervals: Vec<(Instant, Instant, NodeId)> = Vec::new();
    for (at, id, e) in log.iter() {
        match e {
            ElectionEvent::Elected {
                lease, deadline, ..
            } if lease.as_str() == NAME => {
                if let Some((from, until)) = open.insert(*id, (*at, *deadline)) {
                    intervals.push((from, until.min(*at), *id));
                }
            }
            ElectionEvent::Renewed {
                lease, deadline, ..
            } if lease.as_str() == NAME => {
                if let Some(o) = open.get_mut(id) {
                    o.1 = *deadline;
                }
            }
            ElectionEvent::Surrendered { lease, .. } if lease.as_str() == NAME => {
                if let Some((from, until)) = open.remove(id) {
                    intervals.push((from, until.min(*at), *id));
                }
            }
            _ => {}
        }
    }
    intervals.extend(
        open.into_iter()
            .map(|(id, (from, until))| (from, until, id)),
    );
    intervals.sort();
    for pair in intervals.windows(2) {
        let ((_, end_a, a), (start_b, _, b)) = (pair[0], pair[1]);
        if a != b && start_b < end_a {
            failures.push(format!(
                "nodes {a} and {b} were both master for {:?}",
                end_a - start_b
            ));
        }
    }
    // 5. The run exercised fencing: writes were accepted, and stale ones were refused.
    if store.accepted.len() < 100 {
        failures.push(format!(
            "only {} writes were accepted",
            store.accepted.len()
        ));
    }
    if store.rejected == 0 {
        failures.push("no stale write was attempted and rejected; the zombies never struck".into());
    }
    let masters: Vec<NodeId> = log
        .iter()
        .filter_map(|(_, id, e)| matches!(e, ElectionEvent::Elected { .. }).then_some(*id))
        .collect();

    println!(
        "single_writer: {:?} of virtual time, {crashes} master crashes, {resigns} resignations",
        elapsed
    );
    println!("  masters in order: {masters:?}");
    println!("  writes accepted: {}", store.accepted.len());
    println!("  stale writes rejected: {}", store.rejected);
    if failures.is_empty() {
        println!("  checks: the store holds no write from a deposed master: OK");
        ExitCode::SUCCESS
    } else {
        for f in &failures {
            println!("  FAILED: {f}");
        }
        ExitCode::FAILURE
    }
}
