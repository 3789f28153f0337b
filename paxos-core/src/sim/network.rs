//! The simulated network: delivery (or buffering for a paused host), loss, duplication,
//! delays, stragglers and partitions.

use crate::id::NodeId;
use crate::message::Message;
use crate::rng::Rng;
use crate::time::nanos;

use super::queue::{Ev, Payload};
use super::{MAX_NORMAL_DELAY, Sim};

impl Sim<'_> {
    pub(super) fn deliver(&mut self, to: usize, from: NodeId, digest: u64, payload: Payload) {
        if self.hosts[to].node.is_some() && !self.hosts[to].paused {
            self.node_mut(to);
        }
        let h = &mut self.hosts[to];
        let Some(node) = h.node.as_mut() else {
            return;
        };
        if h.paused {
            h.buffer.push((from, digest, payload));
            return;
        }
        let local = h.clock.local(self.now);
        self.report.steps += 1;
        match payload {
            Payload::Batch(batch) => {
                self.report.deliveries += batch.len() as u64;
                node.handle_message(local, from, digest, batch);
            }
            Payload::Hello { wants_reply } => node.handle_hello(local, from, digest, wants_reply),
        }
        self.pump(to);
    }

    pub(super) fn route(&mut self, from: usize, to: NodeId, digest: u64, payload: Payload) {
        let Some(to) = self.hosts.iter().position(|h| h.id == to) else {
            return;
        };
        if let Payload::Batch(messages) = &payload {
            if self.cfg.trace && std::env::var_os("SIM_TRACE_MESSAGES").is_some() {
                for e in messages {
                    let line = format!("  {} -> {}: {} {:?}", from + 1, to + 1, e.lease, e.message);
                    self.note(|| line);
                }
            }
            if messages
                .iter()
                .any(|e| matches!(e.message, Message::Prepare { .. }))
            {
                self.hosts[from].last_prepare = self.now;
            }
        }
        let n = self.hosts.len();
        if self.cut[from * n + to] || self.rng.chance(self.loss) {
            return;
        }
        let from_id = self.hosts[from].id;
        let lease = nanos(self.cfg.lease_duration);
        let delay = |rng: &mut Rng, healed: bool| {
            if !healed && rng.chance(0.02) {
                // A straggler: reordered far behind its successors.
                rng.below(lease * 3 / 2)
            } else {
                50_000 + rng.below(nanos(MAX_NORMAL_DELAY) - 50_000)
            }
        };
        let deliver = |payload: Payload| Ev::Deliver {
            to,
            from: from_id,
            digest,
            payload,
        };
        if self.rng.chance(self.dup) {
            let d = delay(&mut self.rng, self.healed);
            self.push(self.now + d, deliver(payload.clone()));
        }
        if !self.healed && self.rng.chance(0.005) {
            // Redelivered much later, possibly after the addressee restarted.
            let d = lease / 2 + self.rng.below(lease * 3);
            self.push(self.now + d, deliver(payload.clone()));
        }
        let d = delay(&mut self.rng, self.healed);
        self.push(self.now + d, deliver(payload));
    }
}
