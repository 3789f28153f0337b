//! Typed events for observers of a node (logs, JSON output), besides the `Leader`
//! callbacks.

use gen_paxos_core::{Ballot, LeaseName, NodeId};
use tokio::time::Instant;

use crate::view::MasterInfo;
use gen_paxos_core::SurrenderReason;

/// Something that happened on a node, from [`crate::Election::events`]. Events of one
/// lease arrive in protocol order; a receiver that falls behind by more than the channel
/// capacity loses the oldest (tokio `broadcast` semantics).
///
/// Not the same thing as the core's [`gen_paxos_core::Event`]: that one is the sans-IO
/// node's output, drained by the runtime after every input, with deadlines on the core's
/// clock; this one is what the runtime publishes to observers, with deadlines as tokio
/// instants (already minus the surrender margin) and what only the runtime sees (peers
/// down and up, a panicked callback, configuration conflicts by peer, shutdown). The
/// driver maps every core event exhaustively, so a new core event cannot be dropped
/// unnoticed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElectionEvent {
    /// This node became master.
    Elected {
        /// The lease.
        lease: LeaseName,
        /// The fencing token.
        token: Ballot,
        /// When authority ends unless renewed (deadline minus margin).
        deadline: Instant,
    },
    /// This node renewed its lease.
    Renewed {
        /// The lease.
        lease: LeaseName,
        /// The new fencing token.
        token: Ballot,
        /// The new end of authority.
        deadline: Instant,
    },
    /// This node, master of a replicated lease, has its log ready (R2): every entry chosen
    /// before its tenure is applied to its state machine, and its `Leader` is told it was
    /// elected. Follows `Elected` of the same token; never published for a lease without a
    /// log.
    Ready {
        /// The lease.
        lease: LeaseName,
        /// The fencing token of the tenure.
        token: Ballot,
        /// How many log entries (slots) the master knows chosen, recovered or not: its
        /// state holds all of them.
        entries: u64,
    },
    /// This node stopped being master (its authority had already ended when this is seen).
    Surrendered {
        /// The lease.
        lease: LeaseName,
        /// The token it held.
        token: Ballot,
        /// Why.
        reason: SurrenderReason,
    },
    /// This node's view of the master changed (another node, itself, or none).
    MasterChanged {
        /// The lease.
        lease: LeaseName,
        /// The new master, if any is known.
        master: Option<MasterInfo>,
    },
    /// A peer stopped answering.
    PeerDown {
        /// The peer.
        node: NodeId,
    },
    /// A peer is answering again.
    PeerUp {
        /// The peer.
        node: NodeId,
    },
    /// A `Leader` callback panicked: the lease was surrendered and this node no longer
    /// stands for it.
    LeaderFailed {
        /// The lease.
        lease: LeaseName,
        /// The panic message, if it was a string.
        message: String,
    },
    /// A peer runs with another cluster configuration (its fingerprint differs): all its
    /// messages are refused. If it is one of this node's voters, this node stops acting
    /// until they match (F2).
    ConfigMismatch {
        /// The peer (a member, or a node that lists this one).
        node: NodeId,
        /// Each differing field as `field: ours X, theirs Y`.
        differences: Vec<String>,
    },
    /// A peer whose configuration differed now matches again.
    ConfigMatched {
        /// The peer.
        node: NodeId,
    },
    /// The node stopped (shutdown, handle dropped, or transport closed).
    Stopped,
}

impl ElectionEvent {
    /// The lease the event is about, if any.
    pub fn lease(&self) -> Option<&LeaseName> {
        match self {
            ElectionEvent::Elected { lease, .. }
            | ElectionEvent::Renewed { lease, .. }
            | ElectionEvent::Surrendered { lease, .. }
            | ElectionEvent::MasterChanged { lease, .. }
            | ElectionEvent::LeaderFailed { lease, .. } => Some(lease),
            _ => None,
        }
    }
}
