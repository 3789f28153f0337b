//! Frames from peers: hellos and fingerprints (F1), protocol batches for the core,
//! heartbeats, and the gen_leader calls, casts, broadcasts and sync payloads.

use gen_paxos_core::NodeId;
use tracing::{debug, trace};

use super::Driver;
use crate::callbacks::{LeaseMsg, Responder};
use crate::error::Refusal;
use crate::events::ElectionEvent;
use crate::transport::{Delivery, Transport};
use crate::wire::{Frame, Wire};

impl<T: Transport<Wire>> Driver<T> {
    /// A frame from peer `from` (authenticated by the transport).
    pub(super) fn handle_frame(&mut self, from: NodeId, wire: Wire) {
        let (now, ts) = self.read_clock();
        if from == self.id {
            return;
        }
        let Wire { fingerprint, frame } = wire;
        let frame = match frame {
            Frame::Hello {
                fingerprint: theirs,
                wants_reply,
            } => {
                if theirs.digest() != fingerprint {
                    trace!(%from, "dropped a hello whose fingerprint does not match its header");
                    return;
                }
                self.core.handle_hello(ts, from, fingerprint, wants_reply);
                let change = self.node.lock_configs().hello(from, &theirs);
                self.announce(from, change);
                self.flush();
                return;
            }
            frame => frame,
        };
        if fingerprint != self.digest {
            // F1: refused whole, whatever it is. The core counts it (and records a voter's
            // mismatch, F2) and answers a protocol batch with its hello.
            let batch = match frame {
                Frame::Protocol(batch) => batch,
                _ => Vec::new(),
            };
            self.core.handle_message(ts, from, fingerprint, batch);
            let change = self.node.lock_configs().frame(from, fingerprint, true);
            self.announce(from, change);
            trace!(%from, "refused a message: the sender's cluster fingerprint differs");
            self.flush();
            return;
        }
        if self.core.members().binary_search(&from).is_err() {
            trace!(%from, "dropped a message from a non-member");
            return;
        }
        let change = self.node.lock_configs().frame(from, fingerprint, false);
        self.announce(from, change);
        self.last_heard.insert(from, now);
        if self.node.mark_up(from) {
            debug!(node = %self.id, peer = %from, "peer up");
            self.node.publish(ElectionEvent::PeerUp { node: from });
        }
        match frame {
            Frame::Protocol(batch) => {
                self.core.handle_message(ts, from, fingerprint, batch);
                self.flush();
            }
            Frame::Hello { .. } => {}
            Frame::Heartbeat => {
                // Tells the core the peer's fingerprint matches (no more probes for it).
                self.core.handle_message(ts, from, fingerprint, Vec::new());
                self.flush();
            }
            Frame::Call { lease, id, payload } => {
                let is_master = self.core.is_master(ts, &lease);
                match self.leases.get_mut(&lease).filter(|rt| rt.has_callbacks()) {
                    Some(rt) if is_master => {
                        let respond = Responder::remote(lease, from, id, self.internal_tx.clone());
                        rt.tell(LeaseMsg::Call {
                            from,
                            payload,
                            respond,
                        });
                    }
                    _ => {
                        let frame = Frame::Reply {
                            id,
                            result: Err(Refusal::NotMaster),
                        };
                        self.transport
                            .send(from, self.wire(frame), Delivery::Reliable);
                    }
                }
            }
            Frame::Reply { id, result } => {
                if self.calls.get(&id).is_some_and(|c| c.target == Some(from))
                    && let Some(call) = self.calls.remove(&id)
                {
                    let _ = call
                        .reply
                        .send(result.map_err(|r| r.into_error(&call.lease)));
                }
            }
            Frame::Cast { lease, payload } => {
                if self.core.is_master(ts, &lease)
                    && let Some(rt) = self.leases.get_mut(&lease)
                {
                    rt.tell(LeaseMsg::Cast { from, payload });
                }
            }
            Frame::Broadcast {
                lease,
                token,
                payload,
            } => {
                // A hint check: drop broadcasts of a master known to be superseded.
                let stale = self
                    .core
                    .master(&lease)
                    .is_some_and(|m| m.token > token && m.node != from);
                if !stale && let Some(rt) = self.leases.get_mut(&lease) {
                    rt.tell(LeaseMsg::FromLeader { from, payload });
                }
            }
            Frame::Sync {
                lease,
                token,
                payload,
            } => {
                if token.node == from
                    && let Some(rt) = self.leases.get_mut(&lease)
                {
                    rt.tell(LeaseMsg::Sync { from, payload });
                }
            }
        }
    }
}
