//! Node-wide state the driver writes and the handles (and metrics) read: joined leases,
//! peers down, counters, fingerprints, the event channel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use gen_paxos_core::{LeaseName, Node, NodeId};
use tokio::sync::broadcast;

use crate::config::Config;
use crate::events::ElectionEvent;
use crate::lag::Lag;
use crate::peer_configs::PeerConfigs;
use crate::view::LeaseShared;

/// Node-wide state shared by the driver and the handles.
#[derive(Debug)]
pub(crate) struct NodeShared {
    pub(crate) id: NodeId,
    pub(crate) voters: Vec<NodeId>,
    pub(crate) observers: Vec<NodeId>,
    /// Peers' fingerprints as the driver saw them (written by the driver only).
    pub(crate) configs: Mutex<PeerConfigs>,
    /// Whether the core stopped acting because a voter's fingerprint differs (F2).
    pub(crate) conflict: AtomicBool,
    /// The core's counters and acceptor entries, as of the last heartbeat (for metrics).
    pub(crate) core_stats: Mutex<(gen_paxos_core::Stats, usize)>,
    /// The driver's lateness, as of the last heartbeat (for metrics).
    pub(crate) lag: Mutex<Lag>,
    /// Surrenders by reason, since start.
    pub(crate) surrenders: Mutex<BTreeMap<&'static str, u64>>,
    /// Joined leases, in name order (metrics and status pages read the first names).
    pub(crate) leases: RwLock<BTreeMap<LeaseName, Arc<LeaseShared>>>,
    pub(crate) down: Mutex<BTreeSet<NodeId>>,
    pub(crate) events: broadcast::Sender<ElectionEvent>,
    /// Whether every renewal is published on `events` ([`Config::renewal_events`]).
    pub(crate) renewal_events: bool,
    pub(crate) stopped: AtomicBool,
    /// The node's storage failed: it answers no more as a log or `ask` acceptor.
    pub(crate) storage_failed: AtomicBool,
    /// Leases whose `Leader` callbacks have a task now (work queued or running, or a sync
    /// payload awaited); the others are parked (see `callbacks.rs`).
    pub(crate) callback_tasks: Arc<AtomicU64>,
}

impl NodeShared {
    /// The shared state of a node starting with `core`.
    pub(crate) fn new(config: &Config, core: &Node) -> NodeShared {
        let configs = PeerConfigs::new(config.node, core.fingerprint().clone(), core.members());
        let mut observers = config.observers.clone();
        observers.sort_unstable();
        NodeShared {
            id: config.node,
            configs: Mutex::new(configs),
            conflict: AtomicBool::new(false),
            core_stats: Mutex::new((core.stats(), 0)),
            lag: Mutex::new(Lag::default()),
            surrenders: Mutex::new(BTreeMap::new()),
            voters: core.voters().to_vec(),
            observers,
            leases: RwLock::new(BTreeMap::new()),
            // A peer is alive once heard from, not before: a node that starts alone must
            // not report peers that never answered as alive.
            down: Mutex::new(
                core.members()
                    .iter()
                    .copied()
                    .filter(|&m| m != config.node)
                    .collect(),
            ),
            // Lets `broadcast` senders be cheap to keep around.
            events: broadcast::Sender::new(4096),
            renewal_events: config.renewal_events.unwrap_or(true),
            stopped: AtomicBool::new(false),
            storage_failed: AtomicBool::new(false),
            callback_tasks: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn id(&self) -> NodeId {
        self.id
    }

    pub(crate) fn voter_ids(&self) -> &[NodeId] {
        &self.voters
    }

    pub(crate) fn down_set(&self) -> BTreeSet<NodeId> {
        self.down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every joined lease, in name order.
    pub(crate) fn lease_list(&self) -> Vec<Arc<LeaseShared>> {
        self.read_leases().values().cloned().collect()
    }

    /// The joined leases (read-locked), in name order: for counts and pages without a
    /// copy of every lease. (Sorting every name at each metrics scrape was a visible share
    /// of a node's CPU with 100,000 leases; so was selecting the first thousand.)
    pub(crate) fn read_leases(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, BTreeMap<LeaseName, Arc<LeaseShared>>> {
        self.leases.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_core_stats(&self, stats: gen_paxos_core::Stats, acceptor_entries: usize) {
        *self
            .core_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = (stats, acceptor_entries);
    }

    pub(crate) fn core_stats(&self) -> (gen_paxos_core::Stats, usize) {
        *self
            .core_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_lag(&self, lag: Lag) {
        *self.lag.lock().unwrap_or_else(PoisonError::into_inner) = lag;
    }

    pub(crate) fn lag(&self) -> Lag {
        *self.lag.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn count_surrender(&self, reason: gen_paxos_core::SurrenderReason) {
        *self
            .surrenders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason.as_str())
            .or_default() += 1;
    }

    pub(crate) fn surrenders(&self) -> BTreeMap<&'static str, u64> {
        self.surrenders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn lock_configs(&self) -> std::sync::MutexGuard<'_, PeerConfigs> {
        self.configs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn publish(&self, event: ElectionEvent) {
        let _ = self.events.send(event);
    }

    pub(crate) fn insert_lease(&self, shared: Arc<LeaseShared>) {
        self.leases
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(shared.name.clone(), shared);
    }

    pub(crate) fn lease(&self, name: &str) -> Option<Arc<LeaseShared>> {
        self.read_leases().get(name).cloned()
    }

    /// Marks `peer` down; true if it was up.
    pub(crate) fn mark_down(&self, peer: NodeId) -> bool {
        self.down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer)
    }

    /// Marks `peer` up; true if it was down.
    pub(crate) fn mark_up(&self, peer: NodeId) -> bool {
        self.down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&peer)
    }

    pub(crate) fn set_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
    }
}
