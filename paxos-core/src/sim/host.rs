//! A simulated host: its clock (offset and rate against real time) and its node.

use crate::id::NodeId;
use crate::node::Node;
use crate::time::Timestamp;

use super::queue::Payload;

#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub(super) offset: u64,
    pub(super) rate: f64,
}

impl Clock {
    pub(super) fn local(&self, real: u64) -> Timestamp {
        Timestamp::from_nanos(self.offset + (real as f64 * self.rate) as u64)
    }

    /// The first real instant at which the local clock reads at least `local`.
    pub(super) fn real(&self, local: Timestamp) -> u64 {
        if local == Timestamp::MAX {
            return u64::MAX;
        }
        let since = local.as_nanos().saturating_sub(self.offset);
        let mut real = ((since as f64) / self.rate).ceil() as u64;
        while self.local(real) < local {
            real += 1;
        }
        while real > 0 && self.local(real - 1) >= local {
            real -= 1;
        }
        real
    }
}

#[derive(Debug)]
pub(super) struct Host {
    pub(super) id: NodeId,
    /// This host's configuration (the same on every host unless `split`).
    pub(super) voters: Vec<NodeId>,
    pub(super) observers: Vec<NodeId>,
    pub(super) voter: bool,
    pub(super) priority: Option<u8>,
    pub(super) clock: Clock,
    pub(super) node: Option<Node>,
    pub(super) first_incarnation: u64,
    pub(super) epoch: u64,
    pub(super) paused: bool,
    pub(super) buffer: Vec<(NodeId, u64, Payload)>,
    pub(super) timer_gen: u64,
    pub(super) timer_at: u64,
    /// This host's wall clock minus real time, in ms (NTP-grade: within 100 ms).
    pub(super) wall_skew_ms: i64,
    /// When it last sent a Prepare (real time): it is probably mid-attempt.
    pub(super) last_prepare: u64,
    /// Its disk (the log and `ask`).
    pub(super) storage: super::replica::Storage,
}
