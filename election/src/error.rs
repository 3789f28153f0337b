//! Errors of the runtime: starting a node, joining leases, and calls to the master.

use std::time::Duration;

use gen_paxos_core::LeaseName;
use serde::{Deserialize, Serialize};

use crate::codec::CodecError;
use crate::config::ConfigError;

/// What can go wrong when starting or commanding a node.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration was refused.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The protocol core refused a command (bad lease name, observer as candidate...).
    #[error(transparent)]
    Protocol(#[from] gen_paxos_core::Error),
    /// The transport's node id is not the configured one.
    #[error("the transport speaks for node {transport}, the configuration for node {config}")]
    IdMismatch {
        /// The transport's id.
        transport: gen_paxos_core::NodeId,
        /// The configured id.
        config: gen_paxos_core::NodeId,
    },
    /// The lease was joined on this node already.
    #[error("lease {0} is already joined on this node")]
    AlreadyJoined(LeaseName),
    /// The lease was not joined on this node.
    #[error("lease {0} was not joined on this node")]
    UnknownLease(LeaseName),
    /// The node was shut down (or its transport closed).
    #[error("the node has stopped")]
    Stopped,
    /// A replicated lease (or `ask`) needs storage: start the node with
    /// [`crate::Election::start_with_storage`] (the tool: `--data-dir`).
    #[error(
        "this node has no storage for a replicated lease (start it with storage, e.g. --data-dir)"
    )]
    NoStorage,
    /// Not called inside a tokio runtime.
    #[error("the election runtime must be started inside a tokio runtime")]
    NoRuntime,
}

impl Error {
    /// Whether the node has stopped.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Error::Stopped)
    }
}

/// Why a leader call, cast or broadcast failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No master was known for the lease within the call timeout.
    #[error("no master is known for lease {lease} after {waited:?}")]
    NoMaster {
        /// The lease.
        lease: LeaseName,
        /// How long the call waited.
        waited: Duration,
    },
    /// The master changed (or its lease ran out) while the call was in flight.
    #[error("the master of lease {0} changed while the call was in flight")]
    MasterChanged(LeaseName),
    /// The master did not reply within the call timeout.
    #[error("the master of lease {lease} did not reply within {waited:?}")]
    Timeout {
        /// The lease.
        lease: LeaseName,
        /// How long the call waited.
        waited: Duration,
    },
    /// The addressed node (or this node, for a broadcast) is not master of the lease.
    #[error("not the master of lease {0}")]
    NotMaster(LeaseName),
    /// The master's `Leader` does not handle calls (it returned `None`).
    #[error("the master of lease {0} does not handle leader calls")]
    NotHandled(LeaseName),
    /// The master failed while handling the call (its `Leader` panicked or could not read
    /// the request).
    #[error("the master of lease {lease} failed to handle the call: {reason}")]
    Failed {
        /// The lease.
        lease: LeaseName,
        /// What went wrong.
        reason: String,
    },
    /// The payload could not be encoded or decoded.
    #[error("cannot encode or decode the payload: {0}")]
    Codec(#[from] CodecError),
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
}

impl CallError {
    /// Whether trying again later may succeed (the master was unknown, changed, or slow).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CallError::NoMaster { .. }
                | CallError::MasterChanged(_)
                | CallError::Timeout { .. }
                | CallError::NotMaster(_)
        )
    }
}

/// A call refused by the master, as it travels back to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Refusal {
    NotMaster,
    NotHandled,
    Failed(String),
}

impl Refusal {
    pub(crate) fn into_error(self, lease: &LeaseName) -> CallError {
        match self {
            Refusal::NotMaster => CallError::NotMaster(lease.clone()),
            Refusal::NotHandled => CallError::NotHandled(lease.clone()),
            Refusal::Failed(reason) => CallError::Failed {
                lease: lease.clone(),
                reason,
            },
        }
    }
}

/// Why `ask`, `get` or `forget` did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// This node was started without storage: it cannot take part in `ask`.
    #[error("this node has no storage (start it with one, e.g. --data-dir)")]
    NoStorage,
    /// The node stopped.
    #[error("the node stopped")]
    Stopped,
    /// The key is not a valid name (1 to 255 bytes of UTF-8 without control characters).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// No majority answered in time: the outcome is unknown (an `ask` may still be chosen,
    /// a `forget` may still close the instance); asking again is safe.
    #[error("no majority answered within {0:?}: outcome unknown")]
    Timeout(std::time::Duration),
}
