//! What a node tells its application.

use crate::ballot::Ballot;
use crate::id::{LeaseName, NodeId};
use crate::time::Timestamp;

/// Why a node is not (or no longer) master of a lease: the reason of a
/// [`Event::Surrendered`], and of the runtime's `Leader::on_surrendered`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SurrenderReason {
    /// Renewal failed until the deadline: this node could not reach a majority (it is
    /// cut off, or too many voters are down).
    Expired,
    /// The application resigned the lease.
    Resigned,
    /// Another owner was seen while this node still thought it held the lease.
    Lost,
    /// The node is shutting down.
    Shutdown,
    /// One of this node's voters runs with another cluster fingerprint (F2): this node
    /// stopped acting until every voter it hears from matches again.
    ConfigMismatch,
    /// The node gave the lease up to shed load: its renewals were answered so late that
    /// keeping everything it held would have lost all of it (see
    /// [`crate::Config::shed_load`]). It stays a candidate and takes leases again as its
    /// answers come quickly.
    Overload,
    /// This node never held the lease: as a candidate, it saw another node elected
    /// (gen_leader's `surrendered/3` on the losers). The core never gives it in a
    /// [`Event::Surrendered`]; runtimes use it when they tell a losing candidate.
    OtherElected,
}

impl SurrenderReason {
    /// A lowercase name (`expired`, `resigned`, `lost`, `shutdown`, `config-mismatch`,
    /// `overload`, `other-elected`).
    pub fn as_str(self) -> &'static str {
        match self {
            SurrenderReason::Expired => "expired",
            SurrenderReason::Resigned => "resigned",
            SurrenderReason::Lost => "lost",
            SurrenderReason::Shutdown => "shutdown",
            SurrenderReason::ConfigMismatch => "config-mismatch",
            SurrenderReason::Overload => "overload",
            SurrenderReason::OtherElected => "other-elected",
        }
    }

    /// Whether this node held the lease and its authority ended (every reason but
    /// [`SurrenderReason::OtherElected`]).
    pub fn was_master(self) -> bool {
        self != SurrenderReason::OtherElected
    }
}

impl std::fmt::Display for SurrenderReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is master of a lease, as one node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Master {
    /// The master.
    pub node: NodeId,
    /// Its fencing token.
    pub token: Ballot,
    /// Local time at which its authority ends: exact on the master itself (its deadline
    /// minus the surrender margin), an estimate from the last `Learn` elsewhere (L1).
    pub expires: Timestamp,
    /// True on the master itself, where `expires` is authoritative.
    pub exact: bool,
}

/// Something the application must know. Pull them with [`crate::Node::poll_event`], and
/// act on them before sending the node's transmits (P6: stop acting, then release).
///
/// Not `#[non_exhaustive]`: a runtime must handle every event, so a new one is a breaking
/// change its compiler reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Event {
    /// This node became master (P4).
    Elected {
        /// The lease.
        lease: LeaseName,
        /// The fencing token (the lease's ballot).
        token: Ballot,
        /// Local time at which authority ends unless renewed (`d` minus the margin).
        deadline: Timestamp,
    },
    /// This node renewed its lease; the token and deadline move forward.
    Renewed {
        /// The lease.
        lease: LeaseName,
        /// The new fencing token.
        token: Ballot,
        /// The new deadline.
        deadline: Timestamp,
    },
    /// This node is no longer master and must stop acting at once.
    Surrendered {
        /// The lease.
        lease: LeaseName,
        /// The token it held.
        token: Ballot,
        /// Why.
        reason: SurrenderReason,
    },
    /// This node's view of who is master changed (another owner, itself, or none).
    MasterChanged {
        /// The lease.
        lease: LeaseName,
        /// The new master, if any is known.
        master: Option<Master>,
    },
    /// The master this node knows of (another node) renewed: its token and estimated
    /// expiry moved (L1). Who is master did not change.
    MasterRenewed {
        /// The lease.
        lease: LeaseName,
        /// The master, with its new token and estimated expiry.
        master: Master,
    },
    /// The replicated log of `lease` (docs/REPLICATION.md).
    Log {
        /// The lease.
        lease: LeaseName,
        /// What happened.
        event: crate::log::LogEvent,
    },
    /// Per-key consensus (`ask`, `get`, `forget`) answered.
    Ask(crate::ask::AskEvent),
}

impl Event {
    /// The lease an event is about (for `ask`, the key).
    pub fn lease(&self) -> &LeaseName {
        match self {
            Event::Elected { lease, .. }
            | Event::Renewed { lease, .. }
            | Event::Surrendered { lease, .. }
            | Event::MasterChanged { lease, .. }
            | Event::MasterRenewed { lease, .. }
            | Event::Log { lease, .. } => lease,
            Event::Ask(
                crate::ask::AskEvent::Decided { key, .. }
                | crate::ask::AskEvent::Undecided { key, .. }
                | crate::ask::AskEvent::Forgotten { key, .. },
            ) => key,
        }
    }
}
