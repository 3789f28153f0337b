//! The simulator's event queue: what can happen, ordered by real time and insertion.

use crate::id::NodeId;
use crate::message::Envelope;

/// What travels between hosts: a batch or a hello, with the sender's fingerprint digest.
#[derive(Debug, Clone)]
pub(super) enum Payload {
    Batch(Vec<Envelope>),
    Hello { wants_reply: bool },
}

#[derive(Debug)]
pub(super) enum Ev {
    Deliver {
        to: usize,
        from: NodeId,
        digest: u64,
        payload: Payload,
    },
    Timer {
        host: usize,
        generation: u64,
    },
    Fault,
    Restart {
        host: usize,
        epoch: u64,
    },
    Resume {
        host: usize,
        epoch: u64,
    },
    HealPartition {
        generation: u64,
    },
    EndLossBurst {
        generation: u64,
    },
    Heal,
    /// A client request on a host (the log and `ask` workload).
    Client {
        host: usize,
    },
    /// A host's write `token` reaches its disk.
    Synced {
        host: usize,
        epoch: u64,
        token: u64,
    },
}

pub(super) struct Queued {
    pub(super) at: u64,
    pub(super) seq: u64,
    pub(super) ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}
