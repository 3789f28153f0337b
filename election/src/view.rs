//! What the application can read synchronously: who is master, and whether this node's
//! authority still holds. The driver writes it at the moment the protocol decides, before
//! it sends anything (P6); readers also compare the deadline with the clock themselves, so
//! authority ends at `d - margin` even if the driver is late.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use gen_paxos_core::{Ballot, LeaseName, NodeId};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::state_machine::ReplicaShared;

/// Who is master of a lease, as one node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterInfo {
    /// The master.
    pub node: NodeId,
    /// Its fencing token (the ballot of its current lease; it grows on every renewal and
    /// from one master to the next).
    pub token: Ballot,
    /// When its authority ends on this node's clock: exact on the master itself (its
    /// deadline minus the surrender margin), an estimate from its last announcement
    /// elsewhere (never authority).
    pub expires: Instant,
    /// True on the master itself, where `expires` is authoritative.
    pub exact: bool,
}

/// The lease this node holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    pub(crate) token: Ballot,
    /// `d - margin` on this node's clock.
    pub(crate) deadline: Instant,
}

/// The driver-maintained view of one lease.
#[derive(Debug, Default)]
pub(crate) struct LeaseView {
    /// Counts this node's tenures of the lease (one per `Elected`).
    pub(crate) term: u64,
    pub(crate) held: Option<Held>,
    pub(crate) master: Option<MasterInfo>,
    /// For metrics: times the known master changed to another node or to none.
    pub(crate) master_changes: u64,
    /// Since when no master is known (`None` while one is).
    pub(crate) no_master_since: Option<Instant>,
    /// Time without a known master before `no_master_since`.
    pub(crate) no_master_total: std::time::Duration,
}

impl LeaseView {
    /// Whether this node holds the lease at `now` (its deadline not yet reached).
    pub(crate) fn holds(&self, now: Instant) -> bool {
        self.held.is_some_and(|h| now < h.deadline)
    }

    /// This node holds the lease with `token` until `deadline` (elected or renewed): what
    /// guards check, and this node as the master it knows.
    pub(crate) fn hold(&mut self, now: Instant, me: NodeId, token: Ballot, deadline: Instant) {
        self.held = Some(Held { token, deadline });
        let master = MasterInfo {
            node: me,
            token,
            expires: deadline,
            exact: true,
        };
        self.note_master(now, Some(master));
    }

    /// Records the master now known (or none), for the metrics.
    pub(crate) fn note_master(&mut self, now: Instant, master: Option<MasterInfo>) {
        let before = self.master.map(|m| m.node);
        if before != master.map(|m| m.node) {
            self.master_changes += 1;
        }
        match (master.is_some(), self.no_master_since) {
            (true, Some(since)) => {
                self.no_master_total += now.saturating_duration_since(since);
                self.no_master_since = None;
            }
            (false, None) => self.no_master_since = Some(now),
            _ => {}
        }
        self.master = master;
    }

    /// Total time without a known master up to `now`.
    pub(crate) fn no_master_time(&self, now: Instant) -> std::time::Duration {
        self.no_master_total
            + self.no_master_since.map_or(std::time::Duration::ZERO, |s| {
                now.saturating_duration_since(s)
            })
    }
}

/// Per-lease state shared between the driver, the handles and the guards.
#[derive(Debug)]
pub(crate) struct LeaseShared {
    pub(crate) name: LeaseName,
    view: Mutex<LeaseView>,
    /// Made by the first watcher (a watch channel costs about 450 bytes, and most of
    /// 100,000 leases are never watched); written under the view's lock, so a new watcher
    /// misses no change.
    watch: OnceLock<watch::Sender<Option<MasterInfo>>>,
    /// A replicated lease's log progress (R2, R6), for status.
    pub(crate) replica: Option<Arc<ReplicaShared>>,
}

impl LeaseShared {
    pub(crate) fn new(name: LeaseName, replica: Option<Arc<ReplicaShared>>) -> Arc<Self> {
        Arc::new(LeaseShared {
            name,
            replica,
            view: Mutex::new(LeaseView {
                no_master_since: Some(Instant::now()),
                ..LeaseView::default()
            }),
            watch: OnceLock::new(),
        })
    }

    /// The view; a panic elsewhere never poisons it for good (it holds plain data).
    pub(crate) fn view(&self) -> MutexGuard<'_, LeaseView> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lease this node holds with authority at `now`, if any.
    pub(crate) fn held_at(&self, now: Instant) -> Option<Held> {
        self.view().held.filter(|h| now < h.deadline)
    }

    pub(crate) fn master(&self) -> Option<MasterInfo> {
        self.view().master
    }

    /// Notes a change of master in the view, and tells the watchers if there are any.
    pub(crate) fn master_changed(&self, now: Instant, master: Option<MasterInfo>) {
        let mut view = self.view();
        view.note_master(now, master);
        if let Some(watch) = self.watch.get() {
            watch.send_replace(master);
        }
    }

    /// A watch of the master, starting from the one known now.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Option<MasterInfo>> {
        let view = self.view();
        self.watch
            .get_or_init(|| watch::Sender::new(view.master))
            .subscribe()
    }
}

/// Proof, checked on use, that this node holds a lease: valid from the election until
/// the tenure ends (surrender, or `deadline - margin` on the clock, whichever is first).
///
/// Check [`LeaseGuard::is_valid`] right before acting as master, and hand the
/// [`LeaseGuard::token`] to any resource that can reject stale writers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LeaseGuard {
    shared: Arc<LeaseShared>,
    term: u64,
}

impl LeaseGuard {
    pub(crate) fn new(shared: Arc<LeaseShared>, term: u64) -> Self {
        LeaseGuard { shared, term }
    }

    /// The tenure this guard belongs to.
    pub(crate) fn term(&self) -> u64 {
        self.term
    }

    /// The lease.
    pub fn lease(&self) -> &LeaseName {
        &self.shared.name
    }

    /// Whether this node still holds the lease of this tenure, now.
    pub fn is_valid(&self) -> bool {
        self.held().is_some()
    }

    /// The current fencing token of this tenure, while it is valid.
    pub fn token(&self) -> Option<Ballot> {
        self.held().map(|h| h.token)
    }

    /// When this tenure's authority ends unless renewed, while it is valid.
    pub fn deadline(&self) -> Option<Instant> {
        self.held().map(|h| h.deadline)
    }

    fn held(&self) -> Option<Held> {
        let now = Instant::now();
        let view = self.shared.view();
        view.held
            .filter(|h| view.term == self.term && now < h.deadline)
    }
}
