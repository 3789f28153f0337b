//! A simulated cluster on the in-memory transport and tokio's paused clock, with a
//! recording `Leader` and an exclusivity check over every node's events.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gen_paxos_election::memory::MemoryNetwork;
use gen_paxos_election::{
    Candidacy, Config, Election, ElectionEvent, Leader, LeaseHandle, LeaseInfo, NodeId,
    SurrenderInfo, SurrenderReason, Wire, async_trait,
};
use tokio::time::Instant;

/// What happened, when (virtual time), where.
#[derive(Debug, Clone)]
pub struct Record {
    pub at: Instant,
    pub node: NodeId,
    pub lease: String,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq)]
pub enum What {
    /// `on_elected` started.
    Elected {
        deadline: Instant,
    },
    /// `on_surrendered` ran.
    Surrendered {
        reason: SurrenderReason,
        master: Option<NodeId>,
        sync: Option<String>,
    },
    FromLeader(String),
    Cast(String),
    PeerDown(NodeId),
    /// An `ElectionEvent` (not a callback).
    Event(ElectionEvent),
}

pub type Log = Arc<Mutex<Vec<Record>>>;

/// How a recording leader misbehaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quirks {
    pub slow_elected: Option<Duration>,
    pub panic_on_elected: bool,
}

pub struct Recorder {
    pub node: NodeId,
    pub lease: String,
    pub log: Log,
    pub quirks: Quirks,
}

impl Recorder {
    fn record(&self, what: What) {
        self.log.lock().unwrap().push(Record {
            at: Instant::now(),
            node: self.node,
            lease: self.lease.clone(),
            what,
        });
    }
}

#[async_trait]
impl Leader for Recorder {
    type Message = String;

    async fn on_elected(&mut self, lease: &LeaseInfo) -> Option<String> {
        self.record(What::Elected {
            deadline: lease.deadline,
        });
        if self.quirks.panic_on_elected {
            panic!("recorder {} panics on purpose", self.node);
        }
        if let Some(d) = self.quirks.slow_elected {
            tokio::time::sleep(d).await;
        }
        Some(format!("sync from {}", self.node))
    }

    async fn on_surrendered(&mut self, info: SurrenderInfo<String>) {
        self.record(What::Surrendered {
            reason: info.reason,
            master: info.master.map(|m| m.node),
            sync: info.sync,
        });
    }

    async fn handle_leader_call(&mut self, from: NodeId, request: String) -> Option<String> {
        Some(format!("{} answers {} to {}", self.node, request, from))
    }

    async fn handle_leader_cast(&mut self, _from: NodeId, message: String) {
        self.record(What::Cast(message));
    }

    async fn from_leader(&mut self, _from: NodeId, message: String) {
        self.record(What::FromLeader(message));
    }

    async fn on_peer_down(&mut self, node: NodeId) {
        self.record(What::PeerDown(node));
    }
}

pub struct Cluster {
    pub net: MemoryNetwork<Wire>,
    pub voters: Vec<NodeId>,
    pub observers: Vec<NodeId>,
    pub nodes: HashMap<NodeId, Election>,
    pub handles: HashMap<(NodeId, String), LeaseHandle<String>>,
    pub log: Log,
    pub lease_duration: Duration,
    pub seed: u64,
}

pub const LEASE: Duration = Duration::from_secs(2);

/// Network delay of every message in these tests: 1 to 5 ms.
pub const MAX_DELAY: Duration = Duration::from_millis(5);

pub fn config(id: NodeId, voters: &[NodeId], observers: &[NodeId], seed: u64) -> Config {
    let mut c = Config::new(id, voters.to_vec()).with_observers(observers.to_vec());
    c.lease_duration = LEASE;
    c.seed = Some(seed.wrapping_mul(31).wrapping_add(id.0));
    c.incarnation = Some(id.0 * 1000 + 1);
    c.ballot_floor = Some(1_000_000);
    c
}

impl Cluster {
    /// Voters `1..=voters`, observers after them; nothing joined yet.
    pub fn start(voters: u64, observers: u64, seed: u64) -> Cluster {
        Self::start_with(voters, observers, seed, |_| {})
    }

    pub fn start_with(
        voters: u64,
        observers: u64,
        seed: u64,
        tweak: impl Fn(&mut Config),
    ) -> Cluster {
        let net = MemoryNetwork::new(seed);
        net.set_delay(Duration::from_millis(1), MAX_DELAY);
        let v: Vec<NodeId> = (1..=voters).map(NodeId).collect();
        let o: Vec<NodeId> = (voters + 1..=voters + observers).map(NodeId).collect();
        let log: Log = Arc::default();
        let mut nodes = HashMap::new();
        for &id in v.iter().chain(&o) {
            let mut c = config(id, &v, &o, seed);
            tweak(&mut c);
            let election = Election::start(c, net.transport(id)).unwrap();
            record_events(&election, log.clone());
            nodes.insert(id, election);
        }
        Cluster {
            net,
            voters: v,
            observers: o,
            nodes,
            handles: HashMap::new(),
            log,
            lease_duration: LEASE,
            seed,
        }
    }

    pub fn all(&self) -> Vec<NodeId> {
        let mut all: Vec<NodeId> = self.nodes.keys().copied().collect();
        all.sort_unstable();
        all
    }

    pub async fn join(&mut self, node: NodeId, lease: &str, candidacy: Candidacy, quirks: Quirks) {
        let recorder = Recorder {
            node,
            lease: lease.to_string(),
            log: self.log.clone(),
            quirks,
        };
        let handle = self.nodes[&node]
            .join(lease, recorder, candidacy)
            .await
            .unwrap();
        self.handles.insert((node, lease.to_string()), handle);
    }

    /// Every node joins `lease`: voters as candidates, observers as observers.
    pub async fn join_all(&mut self, lease: &str) {
        for node in self.all() {
            let candidacy = if self.voters.contains(&node) {
                Candidacy::candidate()
            } else {
                Candidacy::Observer
            };
            self.join(node, lease, candidacy, Quirks::default()).await;
        }
    }

    pub fn handle(&self, node: NodeId, lease: &str) -> &LeaseHandle<String> {
        &self.handles[&(node, lease.to_string())]
    }

    /// The nodes that hold `lease` now.
    pub fn masters(&self, lease: &str) -> Vec<NodeId> {
        let mut key = (NodeId(0), lease.to_string());
        let mut m = Vec::new();
        for node in self.all() {
            key.0 = node;
            if self.handles.get(&key).is_some_and(|h| h.is_master()) {
                m.push(node);
            }
        }
        m
    }

    /// Waits (virtual time, 1 ms steps) until exactly one node holds `lease`, at most
    /// `within`; checks that never more than one does meanwhile.
    pub async fn wait_master(&self, lease: &str, within: Duration) -> NodeId {
        let end = Instant::now() + within;
        loop {
            let masters = self.masters(lease);
            assert!(masters.len() <= 1, "two masters of {lease}: {masters:?}");
            if let [m] = masters[..] {
                return m;
            }
            assert!(
                Instant::now() < end,
                "no master of {lease} within {within:?} (seed {})",
                self.seed
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Runs for `duration` of virtual time, checking every millisecond that at most one
    /// node holds `lease`.
    pub async fn run_checking(&self, lease: &str, duration: Duration) {
        let end = Instant::now() + duration;
        while Instant::now() < end {
            let masters = self.masters(lease);
            assert!(masters.len() <= 1, "two masters of {lease}: {masters:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.log.lock().unwrap().clone()
    }

    /// The callback records of `lease` (events excluded).
    pub fn callbacks(&self, lease: &str) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|r| r.lease == lease && !matches!(r.what, What::Event(_)))
            .collect()
    }

    /// Crashes `node`: its driver stops without releasing anything and its links die.
    pub fn crash(&mut self, node: NodeId) {
        self.nodes[&node].crash();
        self.net.crash(node);
        // A dead process acts no more: forget its handles.
        self.nodes.remove(&node);
        self.handles.retain(|(n, _), _| *n != node);
    }
}

/// Copies a node's events into the log.
pub fn record_events(election: &Election, log: Log) {
    let mut events = election.events();
    let node = election.id();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            let lease = event.lease().map(|l| l.to_string()).unwrap_or_default();
            log.lock().unwrap().push(Record {
                at: Instant::now(),
                node,
                lease,
                what: What::Event(event),
            });
        }
    });
}

/// Authority intervals `[start, end)` per node from the `Elected`/`Renewed`/`Surrendered`
/// events of `lease`, and a check that no two of them overlap (exclusivity in virtual
/// time, which all simulated nodes share).
pub fn check_exclusive(records: &[Record], lease: &str) -> Vec<(NodeId, Instant, Instant)> {
    let mut open: HashMap<NodeId, (Instant, Instant)> = HashMap::new();
    let mut intervals = Vec::new();
    for r in records.iter().filter(|r| r.lease == lease) {
        let What::Event(event) = &r.what else {
            continue;
        };
        match event {
            ElectionEvent::Elected { deadline, .. } => {
                open.insert(r.node, (r.at, *deadline));
            }
            ElectionEvent::Renewed { deadline, .. } => {
                if let Some(o) = open.get_mut(&r.node) {
                    o.1 = *deadline;
                }
            }
            ElectionEvent::Surrendered { .. } => {
                if let Some((start, deadline)) = open.remove(&r.node) {
                    intervals.push((r.node, start, deadline.min(r.at)));
                }
            }
            _ => {}
        }
    }
    for (node, (start, deadline)) in open {
        intervals.push((node, start, deadline));
    }
    intervals.sort_by_key(|i| i.1);
    for pair in intervals.windows(2) {
        assert!(
            pair[0].2 <= pair[1].1 || pair[0].0 == pair[1].0,
            "authority of {} and {} overlap: {:?}",
            pair[0].0,
            pair[1].0,
            pair
        );
    }
    intervals
}
