//! Frames from peers: hellos and fingerprints (F1), protocol batches for the core,
//! heartbeats, and the gen_leader calls, casts, broadcasts and sync payloads.

use gen_paxos_core::NodeId;
use tracing::{debug, trace};

use super::Driver;
use crate::callbacks::{LeaseMsg, Responder};
use crate::error::Refusal;
use crate::events::ElectionEvent;
use crate::transport::{Delivery, Incoming, Transport};
use crate::wire::{Frame, Wire};

/// Frames taken in one turn at most: the first, and those already waiting behind it.
/// Bounds how long timers and commands wait behind a queue of frames.
pub(crate) const FRAMES_PER_TURN: usize = 64;

impl<T: Transport<Wire>> Driver<T> {
    /// `first` and the frames already waiting behind it (up to [`FRAMES_PER_TURN`]),
    /// each handled on its own reading of the clock, then the core's events and
    /// transmits for all of them at once: the answers to frames that queued up while the
    /// driver was busy leave together, one batch per peer, rather than a datagram each.
    /// Holding transmits back is safe (the network may delay them as much); the events
    /// are still applied before any transmit leaves (P6).
    pub(super) fn handle_frames(&mut self, first: Incoming<Wire>) {
        self.handle_frame(first.from, first.message);
        for _ in 1..FRAMES_PER_TURN {
            let Some(next) = self.transport.try_recv() else {
                break;
            };
            self.handle_frame(next.from, next.message);
        }
        self.flush();
    }

    /// A frame from peer `from` (authenticated by the transport). Protocol batches and
    /// heartbeats leave their outputs for [`Driver::flush`].
    fn handle_frame(&mut self, from: NodeId, wire: Wire) {
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
            }
            Frame::Hello { .. } => {}
            Frame::Heartbeat => {
                // Tells the core the peer's fingerprint matches (no more probes for it).
                self.core.handle_message(ts, from, fingerprint, Vec::new());
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
    use std::time::Duration;

    use gen_paxos_core::{Ballot, Envelope, Incarnation, LeaseName, Message, NodeId};

    use crate::config::Config;
    use crate::handle::Election;
    use crate::transport::{Delivery, Incoming, Transport};
    use crate::wire::{Frame, Wire};

    /// A transport the test feeds by hand and whose sends it reads.
    #[derive(Default)]
    struct Scripted {
        inbox: Mutex<VecDeque<Incoming<Wire>>>,
        ready: tokio::sync::Notify,
        sent: Mutex<Vec<(NodeId, Wire)>>,
    }

    #[derive(Clone, Default)]
    struct Handle(Arc<Scripted>);

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[async_trait::async_trait]
    impl Transport<Wire> for Handle {
        fn local_id(&self) -> NodeId {
            NodeId(1)
        }
        fn send(&self, to: NodeId, message: Wire, _: Delivery) {
            lock(&self.0.sent).push((to, message));
        }
        async fn recv(&self) -> Option<Incoming<Wire>> {
            loop {
                let notified = self.0.ready.notified();
                if let Some(m) = self.try_recv() {
                    return Some(m);
                }
                notified.await;
            }
        }
        fn try_recv(&self) -> Option<Incoming<Wire>> {
            lock(&self.0.inbox).pop_front()
        }
        async fn close(&self) {}
    }

    /// Waits (real time, bounded) until `pick` finds something in what node 1 sent.
    async fn wait_for<R>(t: &Handle, pick: impl Fn(&[(NodeId, Wire)]) -> Option<R>) -> R {
        for _ in 0..500 {
            if let Some(r) = pick(&lock(&t.0.sent)) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "node 1 never sent what the test waits for: {:?}",
            lock(&t.0.sent)
        );
    }

    fn promises(wire: &Wire) -> usize {
        match &wire.frame {
            Frame::Protocol(batch) => batch
                .iter()
                .filter(|e| matches!(e.message, Message::Promise { .. }))
                .count(),
            _ => 0,
        }
    }

    #[tokio::test]
    async fn frames_waiting_together_are_answered_in_one_batch() {
        const LEASES: usize = 10;
        let t = Handle::default();
        let mut config = Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
        config.ballot_floor = Some(1_000_000);
        config.incarnation = Some(1001);
        config.lease_duration = Duration::from_millis(200);
        let election = Election::start(config, t.clone()).expect("a valid configuration");
        // A node that starts votes for nobody for about a lease (its quarantine).
        tokio::time::sleep(Duration::from_millis(600)).await;
        // Node 1's digest, from the first thing it sends peer 2 (a hello or a heartbeat).
        let digest = wait_for(&t, |sent| {
            sent.iter()
                .find(|(to, _)| *to == NodeId(2))
                .map(|(_, w)| w.fingerprint)
        })
        .await;
        // Ten Prepares from peer 2, a frame each, all waiting when node 1 looks.
        {
            let mut inbox = lock(&t.0.inbox);
            for i in 0..LEASES {
                let ballot = Ballot {
                    counter: 1_000_100,
                    incarnation: Incarnation(2001),
                    node: NodeId(2),
                };
                let envelope = Envelope {
                    lease: LeaseName::new(format!("lease-{i}")).expect("a valid name"),
                    message: Message::Prepare { ballot },
                };
                inbox.push_back(Incoming {
                    from: NodeId(2),
                    message: Wire {
                        fingerprint: digest,
                        frame: Frame::Protocol(vec![envelope]),
                    },
                });
            }
        }
        t.0.ready.notify_one();
        wait_for(&t, |sent| {
            let promised: usize = sent.iter().map(|(_, w)| promises(w)).sum();
            (promised >= LEASES).then_some(())
        })
        .await;
        let frames: Vec<usize> = lock(&t.0.sent)
            .iter()
            .filter(|(to, _)| *to == NodeId(2))
            .map(|(_, w)| promises(w))
            .filter(|&n| n > 0)
            .collect();
        assert_eq!(
            frames,
            vec![LEASES],
            "the ten Promises leave in one frame, not a frame per Prepare"
        );
        election.shutdown().await;
    }
}
