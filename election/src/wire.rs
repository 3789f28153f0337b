//! What the runtime sends between nodes: protocol batches plus the messages of the
//! gen_leader-style API, with user payloads type-erased to bytes (see [`crate::codec`]).

use gen_paxos_core::{Ballot, Envelope, Fingerprint, LeaseName};
use serde::{Deserialize, Serialize};

use crate::error::Refusal;

/// One message between two runtimes. Transports carry it as an opaque serializable value:
/// build a transport as `QuicTransport<gen_paxos_election::Wire>` or `MemoryTransport<Wire>`.
///
/// Every message carries its sender's cluster fingerprint digest
/// ([`gen_paxos_core::Fingerprint::digest`]): a node refuses every message whose digest differs
/// from its own, whatever it is (F1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wire {
    pub(crate) fingerprint: u64,
    pub(crate) frame: Frame,
}

impl Wire {
    /// Whether this is a lease-protocol batch (as opposed to a call, cast, broadcast,
    /// sync payload, heartbeat or hello). Useful to fault-inject the two kinds separately.
    pub fn is_protocol(&self) -> bool {
        matches!(self.frame, Frame::Protocol(_))
    }

    /// The sender's cluster fingerprint digest.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// A lease-protocol batch exactly as a driver sends it, from a node whose fingerprint
    /// digest is `fingerprint`. For tools and tests that speak the protocol directly (for
    /// example to check that a node refuses a crafted message); a node never needs it.
    pub fn protocol(fingerprint: u64, batch: Vec<Envelope>) -> Wire {
        Wire {
            fingerprint,
            frame: Frame::Protocol(batch),
        }
    }

    /// A hello carrying `fingerprint` in full (its digest goes in the header), asking for
    /// the peer's hello back if `wants_reply`. For tools and tests, like
    /// [`Wire::protocol`].
    pub fn hello(fingerprint: Fingerprint, wants_reply: bool) -> Wire {
        Wire {
            fingerprint: fingerprint.digest(),
            frame: Frame::Hello {
                fingerprint,
                wants_reply,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Frame {
    /// PaxosLease messages, batched over leases.
    Protocol(Vec<Envelope>),
    /// The sender's whole fingerprint, so a receiver with another one can say which
    /// settings differ; `wants_reply` asks for the receiver's hello back (a probe).
    Hello {
        fingerprint: Fingerprint,
        wants_reply: bool,
    },
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
