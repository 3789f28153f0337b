//! Commands from the handles and requests from the callback tasks: join, resign, calls,
//! casts, broadcasts, sync payloads, replies, a panicked `Leader`.

use gen_paxos_core::{LeaseName, Master, Timestamp};
use tracing::trace;

use super::{Callbacks, Cmd, Driver, LeaseRt, PendingCall};
use crate::callbacks::{Internal, LeaseMsg, Responder};
use crate::error::{CallError, Error};
use crate::events::ElectionEvent;
use crate::transport::{Delivery, Transport};
use crate::wire::{Frame, Wire};

impl<T: Transport<Wire>> Driver<T> {
    /// A command from a handle.
    pub(super) fn handle_command(&mut self, cmd: Cmd) {
        let (now, ts) = self.read_clock();
        match cmd {
            Cmd::Join {
                lease,
                priority,
                shared,
                callbacks,
                replica,
                reply,
            } => {
                if self.leases.contains_key(&lease) {
                    let _ = reply.send(Err(Error::AlreadyJoined(lease)));
                    return;
                }
                let replicated = replica.is_some();
                if replicated && self.persister.is_none() {
                    let _ = reply.send(Err(Error::NoStorage));
                    return;
                }
                self.leases.insert(
                    lease.clone(),
                    LeaseRt {
                        shared: shared.clone(),
                        callbacks: Callbacks::Parked(callbacks),
                        replica,
                    },
                );
                let result = if replicated {
                    self.join_replicated(&lease)
                } else {
                    Ok(())
                }
                .and_then(|()| Ok(self.core.join(ts, lease.clone(), priority)?));
                match result {
                    Ok(()) => {
                        self.node.insert_lease(shared);
                        if replicated {
                            self.replicated.push(lease);
                        }
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        self.leases.remove(&lease);
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Cmd::Append {
                lease,
                command,
                reply,
            } => self.append(lease, command, reply),
            Cmd::Ask { key, value, reply } => {
                self.ask(key, value, super::ask_waiters::AskWaiter::Value(reply));
            }
            Cmd::Forget { key, reply } => {
                self.ask(key, None, super::ask_waiters::AskWaiter::Forget(reply));
            }
            Cmd::Resign { lease, reply } => {
                let result = self.core.resign(ts, &lease).map_err(|e| match e {
                    gen_paxos_core::Error::UnknownLease(l) => Error::UnknownLease(l),
                    e => e.into(),
                });
                self.flush();
                let _ = reply.send(result);
            }
            Cmd::Call {
                lease,
                payload,
                reply,
            } => {
                if !self.leases.contains_key(&lease) {
                    let _ = reply.send(Err(CallError::NotMaster(lease)));
                    return;
                }
                let id = self.next_call_id;
                self.next_call_id += 1;
                let deadline = now + self.config.call_timeout();
                self.call_deadlines.insert((deadline, id));
                self.calls.insert(
                    id,
                    PendingCall {
                        lease,
                        target: None,
                        payload: Some(payload),
                        reply,
                        started: now,
                    },
                );
                self.dispatch_call(ts, id);
            }
            Cmd::Cast { lease, payload } => {
                if self.core.is_master(ts, &lease) {
                    if let Some(rt) = self.leases.get_mut(&lease) {
                        rt.tell(LeaseMsg::Cast {
                            from: self.id,
                            payload,
                        });
                    }
                } else if let Some(m) = self.remote_master(ts, &lease) {
                    let cast = Frame::Cast { lease, payload };
                    self.transport
                        .send(m.node, self.wire(cast), Delivery::Reliable);
                } else {
                    trace!(%lease, "cast dropped: no master known");
                }
            }
            Cmd::Broadcast { lease, payload } => {
                let Some(token) = self.held_token(ts, &lease) else {
                    return;
                };
                self.send_to_peers(|| Frame::Broadcast {
                    lease: lease.clone(),
                    token,
                    payload: payload.clone(),
                });
            }
            Cmd::Stop { .. } => {}
        }
    }

    /// Sends a call to the master (itself or a peer), or leaves it waiting for one.
    pub(super) fn dispatch_call(&mut self, ts: Timestamp, id: u64) {
        let Some(lease) = self.calls.get(&id).map(|c| c.lease.clone()) else {
            return;
        };
        if self.core.is_master(ts, &lease) {
            if let Some(call) = self.calls.remove(&id) {
                let respond = Responder::local(lease.clone(), call.reply);
                if let (Some(rt), Some(payload)) = (self.leases.get_mut(&lease), call.payload) {
                    rt.tell(LeaseMsg::Call {
                        from: self.id,
                        payload,
                        respond,
                    });
                }
            }
        } else if let Some(m) = self.remote_master(ts, &lease)
            && let Some(call) = self.calls.get_mut(&id)
            && let Some(payload) = call.payload.take()
        {
            call.target = Some(m.node);
            let frame = Frame::Call { lease, id, payload };
            self.transport
                .send(m.node, self.wire(frame), Delivery::Reliable);
        }
    }

    /// Another node believed master with time left (L1: a hint, good for routing).
    fn remote_master(&self, ts: Timestamp, lease: &LeaseName) -> Option<Master> {
        self.core
            .master(lease)
            .filter(|m| !m.exact && m.node != self.id && ts < m.expires)
    }

    /// A request from a lease's callback task.
    pub(super) fn handle_internal(&mut self, internal: Internal) {
        let (now, ts) = self.read_clock();
        match internal {
            Internal::Sync {
                lease,
                term,
                payload,
            } => {
                let Some(rt) = self.leases.get(&lease) else {
                    return;
                };
                let current = {
                    let view = rt.shared.view();
                    view.term == term && view.holds(now)
                };
                let Some(token) = self.held_token(ts, &lease).filter(|_| current) else {
                    return;
                };
                self.send_to_peers(|| Frame::Sync {
                    lease: lease.clone(),
                    token,
                    payload: payload.clone(),
                });
            }
            Internal::Reply { to, id, result } => {
                let frame = Frame::Reply { id, result };
                self.transport
                    .send(to, self.wire(frame), Delivery::Reliable);
            }
            Internal::Panicked { lease, message } => {
                if let Some(rt) = self.leases.get_mut(&lease) {
                    rt.callbacks = Callbacks::Gone;
                }
                // The Leader value is gone: stand no more, and surrender now (P6).
                let _ = self.core.join(ts, lease.clone(), None);
                let _ = self.core.resign(ts, &lease);
                self.node
                    .publish(ElectionEvent::LeaderFailed { lease, message });
                self.flush();
            }
            Internal::Parked { lease, task, rx } => {
                if let Some(rt) = self.leases.get_mut(&lease) {
                    rt.parked(task, rx);
                }
            }
            Internal::Persisted { token } => self.persisted(token),
            Internal::PersistFailed { error } => self.persist_failed(&error),
            Internal::CheckpointWanted => self.checkpoint(),
        }
    }
}
