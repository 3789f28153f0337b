//! Errors for configuration and commands.

use std::time::Duration;

use crate::id::{LeaseName, NodeId};

/// What can go wrong when configuring or commanding a node. Bad input from the network is
/// never an error: it is dropped and counted (see [`crate::Stats`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The voter set is empty.
    #[error("the voter set is empty")]
    NoVoters,
    /// More voters than the protocol supports.
    #[error("at most 64 voters are supported, got {0}")]
    TooManyVoters(usize),
    /// A node id appears twice among the voters and observers.
    #[error("node {0} is listed twice among voters and observers")]
    DuplicateMember(NodeId),
    /// This node is neither a voter nor an observer.
    #[error("this node ({0}) is neither a voter nor an observer")]
    SelfNotMember(NodeId),
    /// The voter set has one member and [`crate::Config::single_node`] is not set.
    #[error(
        "the voter set is only node {0}: a one-voter cluster elects itself without asking \
         anyone; list the other voters, or confirm a single-node cluster explicitly"
    )]
    SingleVoter(NodeId),
    /// The cluster name is too long or has control characters.
    #[error("invalid cluster name {0:?}: at most 255 bytes, no control characters")]
    InvalidClusterName(String),
    /// The clock-rate bound is outside `[0, 1)`.
    #[error("rho (maximum clock-rate error) must be in [0, 1), got {0}")]
    InvalidRho(f64),
    /// The lease duration is zero or too long.
    #[error("lease duration must be between 1 ms and 1 day, got {0:?}")]
    InvalidLeaseDuration(Duration),
    /// The surrender margin leaves no authority.
    #[error("surrender margin {margin:?} must be shorter than the lease duration {lease:?}")]
    InvalidMargin {
        /// The margin asked for.
        margin: Duration,
        /// The lease duration.
        lease: Duration,
    },
    /// The renewal point is outside the lease.
    #[error("renewal must start after a fraction of the lease in (0, 1), got {0}")]
    InvalidRenewFraction(f64),
    /// A timing setting that must be positive is zero.
    #[error("{0} must be positive")]
    ZeroDuration(&'static str),
    /// A lease name is empty, too long or has control characters.
    #[error("invalid lease name {0:?}: 1 to 255 bytes, no control characters")]
    InvalidLeaseName(String),
    /// An observer asked to be a candidate.
    #[error("node {0} is an observer and cannot be a candidate")]
    ObserverCandidate(NodeId),
    /// The lease was not joined on this node.
    #[error("lease {0} was not joined on this node")]
    UnknownLease(LeaseName),
    /// A candidate priority above the maximum.
    #[error("priority must be at most 3, got {0}")]
    InvalidPriority(u8),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}
