//! What a node tells its application.

use crate::ballot::Ballot;
use crate::id::{LeaseName, NodeId};
use crate::time::Timestamp;

/// Why a node stopped being master of a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SurrenderReason {
    /// The lease ran out (renewal failed, e.g. the node is cut off from a majority).
    Expired,
    /// The application resigned it.
    Resigned,
    /// Another owner was learned while this node still thought it held the lease.
    Lost,
    /// The node is shutting down.
    Shutdown,
    /// A voter was heard with another cluster fingerprint (F2): this node stopped acting
    /// until every voter it hears from matches again.
    ConfigMismatch,
}

impl SurrenderReason {
    /// A lowercase name (`expired`, `resigned`, `lost`, `shutdown`, `config-mismatch`).
    pub fn as_str(self) -> &'static str {
        match self {
            SurrenderReason::Expired => "expired",
            SurrenderReason::Resigned => "resigned",
            SurrenderReason::Lost => "lost",
            SurrenderReason::Shutdown => "shutdown",
            SurrenderReason::ConfigMismatch => "config-mismatch",
        }
    }
}

/// Who is master of a lease, as one node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
}

impl Event {
    /// The lease an event is about.
    pub fn lease(&self) -> &LeaseName {
        match self {
            Event::Elected { lease, .. }
            | Event::Renewed { lease, .. }
            | Event::Surrendered { lease, .. }
            | Event::MasterChanged { lease, .. } => lease,
        }
    }
}
