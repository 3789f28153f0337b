//! What the runtime sends between nodes: protocol batches plus the messages of the
//! gen_leader-style API, with user payloads type-erased to bytes (see [`crate::codec`]).

use paxos_core::{Ballot, Envelope, LeaseName};
use serde::{Deserialize, Serialize};

use crate::error::Refusal;

/// One message between two runtimes. Transports carry it as an opaque serializable value:
/// build a transport as `QuicTransport<election::Wire>` or `MemoryTransport<Wire>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wire(pub(crate) Frame);

impl Wire {
    /// Whether this is a lease-protocol batch (as opposed to a call, cast, broadcast,
    /// sync payload or heartbeat). Useful to fault-inject the two kinds separately.
    pub fn is_protocol(&self) -> bool {
        matches!(self.0, Frame::Protocol(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Frame {
    /// PaxosLease messages, batched over leases.
    Protocol(Vec<Envelope>),
    /// Liveness only.
    Heartbeat,
    /// A leader call (`id` is the caller's).
    Call {
        lease: LeaseName,
        id: u64,
        payload: Vec<u8>,
    },
    /// The answer to a call.
    Reply {
        id: u64,
        result: Result<Vec<u8>, Refusal>,
    },
    /// A leader cast.
    Cast { lease: LeaseName, payload: Vec<u8> },
    /// A payload the master sends to every node.
    Broadcast {
        lease: LeaseName,
        token: Ballot,
        payload: Vec<u8>,
    },
    /// What a new master's `on_elected` returned, for the losing candidates.
    Sync {
        lease: LeaseName,
        token: Ballot,
        payload: Option<Vec<u8>>,
    },
}
