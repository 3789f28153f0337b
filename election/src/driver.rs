//! The driver: one task per node that owns the protocol core, the transport and the clock.
//!
//! Every input (a command, a message, a timer) is handled the same way: read the clock
//! once, raise the ballot floor (T4), hand the input to the core, then drain the core's
//! events — updating the state guards and `is_master` read, queueing callbacks, publishing
//! events — and only then send its transmits (P6: the application is told to stop before a
//! Release leaves). The driver never awaits user code.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use paxos_core::{Ballot, Event, LeaseName, Master, Message, Node, NodeId, Timestamp};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, trace, warn};

use crate::callbacks::{Internal, LeaseMsg, Responder};
use crate::config::Config;
use crate::error::{CallError, Error, Refusal};
use crate::events::ElectionEvent;
use crate::handle::NodeShared;
use crate::leader::{LeaseInfo, SurrenderReason};
use crate::peer_configs::Change;
use crate::transport::{Delivery, Transport};
use crate::view::{Held, LeaseGuard, LeaseShared, MasterInfo};
use crate::wire::{Frame, Wire};

/// What handles ask the driver.
#[derive(Debug)]
pub(crate) enum Cmd {
    Join {
        lease: LeaseName,
        priority: Option<u8>,
        shared: Arc<LeaseShared>,
        task: mpsc::UnboundedSender<LeaseMsg>,
        supervisor: JoinHandle<()>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Resign {
        lease: LeaseName,
        reply: oneshot::Sender<Result<bool, Error>>,
    },
    Call {
        lease: LeaseName,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, CallError>>,
    },
    Cast {
        lease: LeaseName,
        payload: Vec<u8>,
    },
    Broadcast {
        lease: LeaseName,
        payload: Vec<u8>,
    },
    Stop {
        done: Option<oneshot::Sender<()>>,
    },
}

struct LeaseRt {
    shared: Arc<LeaseShared>,
    /// The callback task; `None` once its `Leader` panicked.
    task: Option<mpsc::UnboundedSender<LeaseMsg>>,
}

impl LeaseRt {
    fn tell(&self, msg: LeaseMsg) {
        if let Some(task) = &self.task {
            let _ = task.send(msg);
        }
    }
}

struct PendingCall {
    lease: LeaseName,
    /// The master the call went to; `None` while waiting for one.
    target: Option<NodeId>,
    /// The request, until it is sent.
    payload: Option<Vec<u8>>,
    reply: oneshot::Sender<Result<Vec<u8>, CallError>>,
    started: Instant,
}

pub(crate) struct Driver<T> {
    core: Node,
    /// The core's fingerprint digest, in the header of every frame sent (F1).
    digest: u64,
    transport: T,
    config: Config,
    id: NodeId,
    epoch: Instant,
    /// Unix milliseconds at `epoch`: the ballot floor advances from it with the monotonic
    /// clock, so tokens follow real time without trusting a wall clock that may step.
    wall_at_epoch: u64,
    node: Arc<NodeShared>,
    leases: HashMap<LeaseName, LeaseRt>,
    cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    calls: HashMap<u64, PendingCall>,
    call_deadlines: BTreeSet<(Instant, u64)>,
    next_call_id: u64,
    last_heard: HashMap<NodeId, Instant>,
    next_heartbeat: Instant,
    supervisors: Vec<JoinHandle<()>>,
}

/// The parts of a driver made before its task starts.
pub(crate) struct DriverParts<T> {
    pub(crate) core: Node,
    pub(crate) transport: T,
    pub(crate) config: Config,
    pub(crate) epoch: Instant,
    pub(crate) wall_at_epoch: u64,
    pub(crate) node: Arc<NodeShared>,
    pub(crate) cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    pub(crate) internal_rx: mpsc::UnboundedReceiver<Internal>,
    pub(crate) internal_tx: mpsc::UnboundedSender<Internal>,
}

impl<T: Transport<Wire>> Driver<T> {
    pub(crate) fn new(parts: DriverParts<T>) -> Self {
        let last_heard = parts
            .core
            .members()
            .iter()
            .filter(|&&m| m != parts.core.id())
            .map(|&m| (m, parts.epoch))
            .collect();
        Driver {
            id: parts.core.id(),
            digest: parts.core.fingerprint_digest(),
            core: parts.core,
            transport: parts.transport,
            next_heartbeat: parts.epoch,
            config: parts.config,
            epoch: parts.epoch,
            wall_at_epoch: parts.wall_at_epoch,
            node: parts.node,
            leases: HashMap::new(),
            cmd_rx: parts.cmd_rx,
            internal_rx: parts.internal_rx,
            internal_tx: parts.internal_tx,
            calls: HashMap::new(),
            call_deadlines: BTreeSet::new(),
            next_call_id: 0,
            last_heard,
            supervisors: Vec::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        let mut immediate = false;
        let done = loop {
            let wake = self.next_wakeup();
            if !immediate && wake <= Instant::now() {
                // Already due: handle it now. The timer wheel would round the wake-up up to
                // its millisecond tick, adding up to a millisecond to every attempt. At
                // most once in a row, so the channels below are always polled in between.
                immediate = true;
                self.on_timer();
                continue;
            }
            immediate = false;
            tokio::select! {
                biased;
                () = sleep_until(wake) => self.on_timer(),
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Cmd::Stop { done }) => break done,
                    Some(cmd) => self.on_command(cmd),
                    None => break None,
                },
                Some(internal) = self.internal_rx.recv() => self.on_internal(internal),
                incoming = self.transport.recv() => match incoming {
                    Some(incoming) => self.on_wire(incoming.from, incoming.message),
                    None => {
                        debug!(node = %self.id, "transport closed: stopping");
                        break None;
                    }
                },
            }
        };
        self.stop().await;
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    // ---- time -----------------------------------------------------------------------------

    /// Reads the clock once for one input and raises the ballot floor (T4).
    fn now(&mut self) -> (Instant, Timestamp) {
        let now = Instant::now();
        let since = self.local(now.saturating_duration_since(self.epoch));
        let millis = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
        self.core
            .raise_ballot_floor(self.wall_at_epoch.saturating_add(millis));
        (now, Timestamp::from_duration(since))
    }

    fn instant(&self, t: Timestamp) -> Instant {
        let far = || self.epoch + Duration::from_secs(100 * 365 * 86_400);
        let real = match self.config.clock_rate {
            None => Some(t.as_duration()),
            // Rounded up, so a timer never fires before the scaled clock reaches `t`.
            Some(rate) => Duration::try_from_secs_f64(t.as_duration().as_secs_f64() / rate)
                .ok()
                .and_then(|d| d.checked_add(Duration::from_micros(1))),
        };
        real.and_then(|d| self.epoch.checked_add(d))
            .unwrap_or_else(far)
    }

    /// The local clock's elapsed time for `real` elapsed time: the same, unless the
    /// test-only `clock_rate` scales it.
    fn local(&self, real: Duration) -> Duration {
        match self.config.clock_rate {
            None => real,
            Some(rate) => {
                Duration::try_from_secs_f64(real.as_secs_f64() * rate).unwrap_or(Duration::MAX)
            }
        }
    }

    fn next_wakeup(&self) -> Instant {
        let mut wake = self.next_heartbeat;
        if let Some(t) = self.core.poll_timeout() {
            wake = wake.min(self.instant(t));
        }
        if let Some(&(t, _)) = self.call_deadlines.first() {
            wake = wake.min(t);
        }
        wake
    }

    fn on_timer(&mut self) {
        let (now, ts) = self.now();
        if self.core.poll_timeout().is_some_and(|t| t <= ts) {
            self.core.handle_timeout(ts);
            self.flush();
        }
        if now >= self.next_heartbeat {
            self.heartbeat(now);
        }
        while let Some(&(at, id)) = self.call_deadlines.first() {
            if at > now {
                break;
            }
            self.call_deadlines.pop_first();
            if let Some(call) = self.calls.remove(&id) {
                let waited = now.saturating_duration_since(call.started);
                let error = match call.target {
                    None => CallError::NoMaster {
                        lease: call.lease,
                        waited,
                    },
                    Some(_) => CallError::Timeout {
                        lease: call.lease,
                        waited,
                    },
                };
                let _ = call.reply.send(Err(error));
            }
        }
    }

    /// Heartbeats to every peer, and the liveness verdicts (gen_leader's `DOWN`).
    fn heartbeat(&mut self, now: Instant) {
        self.next_heartbeat = now + self.config.heartbeat_interval();
        // What the metrics read: copied here, a few times a lease, not at every input.
        self.node
            .set_core_stats(self.core.stats(), self.core.acceptor_entries());
        let timeout = self.config.peer_timeout();
        let mut newly_down = Vec::new();
        for (&peer, &heard) in &self.last_heard {
            let heartbeat = Wire {
                fingerprint: self.digest,
                frame: Frame::Heartbeat,
            };
            self.transport.send(peer, heartbeat, Delivery::BestEffort);
            if now.saturating_duration_since(heard) > timeout && self.node.mark_down(peer) {
                newly_down.push(peer);
            }
        }
        newly_down.sort_unstable();
        for peer in newly_down {
            debug!(node = %self.id, %peer, "peer down");
            self.node.publish(ElectionEvent::PeerDown { node: peer });
            if !self.core.voters().contains(&peer) {
                continue;
            }
            for rt in self.leases.values() {
                if rt.shared.held_at(now).is_some() {
                    rt.tell(LeaseMsg::PeerDown(peer));
                }
            }
        }
    }

    // ---- inputs ---------------------------------------------------------------------------

    fn on_command(&mut self, cmd: Cmd) {
        let (now, ts) = self.now();
        match cmd {
            Cmd::Join {
                lease,
                priority,
                shared,
                task,
                supervisor,
                reply,
            } => {
                self.supervisors.push(supervisor);
                if self.leases.contains_key(&lease) {
                    let _ = reply.send(Err(Error::AlreadyJoined(lease)));
                    return;
                }
                match self.core.join(ts, lease.clone(), priority) {
                    Ok(()) => {
                        self.node.insert_lease(shared.clone());
                        self.leases.insert(
                            lease,
                            LeaseRt {
                                shared,
                                task: Some(task),
                            },
                        );
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Cmd::Resign { lease, reply } => {
                let result = self.core.resign(ts, &lease).map_err(|e| match e {
                    paxos_core::Error::UnknownLease(l) => Error::UnknownLease(l),
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
                    if let Some(rt) = self.leases.get(&lease) {
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
    fn dispatch_call(&mut self, ts: Timestamp, id: u64) {
        let Some(lease) = self.calls.get(&id).map(|c| c.lease.clone()) else {
            return;
        };
        if self.core.is_master(ts, &lease) {
            if let Some(call) = self.calls.remove(&id) {
                let respond = Responder::local(lease.clone(), call.reply);
                if let (Some(rt), Some(payload)) = (self.leases.get(&lease), call.payload) {
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

    fn on_internal(&mut self, internal: Internal) {
        let (now, ts) = self.now();
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
                    view.term == term && view.held.is_some_and(|h| now < h.deadline)
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
                    rt.task = None;
                }
                // The Leader value is gone: stand no more, and surrender now (P6).
                let _ = self.core.join(ts, lease.clone(), None);
                let _ = self.core.resign(ts, &lease);
                self.node
                    .publish(ElectionEvent::LeaderFailed { lease, message });
                self.flush();
            }
        }
    }

    fn on_wire(&mut self, from: NodeId, wire: Wire) {
        let (now, ts) = self.now();
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
                let learned: Vec<LeaseName> = batch
                    .iter()
                    .filter(|e| matches!(e.message, Message::Learn { .. }))
                    .map(|e| e.lease.clone())
                    .collect();
                self.core.handle_message(ts, from, fingerprint, batch);
                self.flush();
                // Renewals of a remote master move its estimated expiry (L1).
                for lease in learned {
                    self.refresh_view(&lease);
                }
            }
            Frame::Hello { .. } => {}
            Frame::Heartbeat => {
                // Tells the core the peer's fingerprint matches (no more probes for it).
                self.core.handle_message(ts, from, fingerprint, Vec::new());
                self.flush();
            }
            Frame::Call { lease, id, payload } => {
                match self.leases.get(&lease).filter(|rt| rt.task.is_some()) {
                    Some(rt) if self.core.is_master(ts, &lease) => {
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
                    && let Some(rt) = self.leases.get(&lease)
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
                if !stale && let Some(rt) = self.leases.get(&lease) {
                    rt.tell(LeaseMsg::FromLeader { from, payload });
                }
            }
            Frame::Sync {
                lease,
                token,
                payload,
            } => {
                if token.node == from
                    && let Some(rt) = self.leases.get(&lease)
                {
                    rt.tell(LeaseMsg::Sync { from, payload });
                }
            }
        }
    }

    // ---- outputs --------------------------------------------------------------------------

    /// This node's fencing token for `lease`, if it holds the lease with authority at `ts`.
    fn held_token(&self, ts: Timestamp, lease: &LeaseName) -> Option<Ballot> {
        self.core
            .master(lease)
            .filter(|m| m.exact && self.core.is_master(ts, lease))
            .map(|m| m.token)
    }

    /// Sends a frame made by `make` reliably to every other member.
    fn send_to_peers(&self, make: impl Fn() -> Frame) {
        for &peer in self.core.members() {
            if peer != self.id {
                self.transport
                    .send(peer, self.wire(make()), Delivery::Reliable);
            }
        }
    }

    /// A frame with this node's fingerprint digest in its header (F1).
    fn wire(&self, frame: Frame) -> Wire {
        Wire {
            fingerprint: self.digest,
            frame,
        }
    }

    /// Publishes a change in a peer's configuration.
    fn announce(&self, peer: NodeId, change: Option<Change>) {
        match change {
            Some(Change::Mismatch(differences)) => {
                self.node.publish(ElectionEvent::ConfigMismatch {
                    node: peer,
                    differences,
                });
            }
            Some(Change::Matched) => {
                self.node
                    .publish(ElectionEvent::ConfigMatched { node: peer });
            }
            None => {}
        }
    }

    /// Events first (the state the application sees, then callbacks), transmits after
    /// (P6).
    fn flush(&mut self) {
        self.flush_as(Delivery::BestEffort);
    }

    /// [`Driver::flush`] with a chosen delivery. At shutdown the Releases go reliably: the
    /// transport's close finishes streams before closing connections, but drops datagrams
    /// still queued, and a lost Release would make the others wait for the lease to expire.
    fn flush_as(&mut self, delivery: Delivery) {
        while let Some(event) = self.core.poll_event() {
            self.apply(event);
        }
        let conflict = self.core.in_conflict();
        if self.node.conflict.swap(conflict, Ordering::AcqRel) != conflict {
            if conflict {
                warn!(node = %self.id, "a voter runs with another cluster configuration: this node holds no lease and votes for nobody until it matches");
            } else {
                info!(node = %self.id, "every voter heard from matches this node's configuration again: acting again");
            }
        }
        while let Some(transmit) = self.core.poll_transmit() {
            let frame = self.wire(Frame::Protocol(transmit.messages));
            self.transport.send(transmit.to, frame, delivery);
        }
        // Hellos may go to nodes outside the configuration that contacted this one; a
        // transport that cannot reach them drops them.
        while let Some(hello) = self.core.poll_hello() {
            let frame = self.wire(Frame::Hello {
                fingerprint: self.core.fingerprint().clone(),
                wants_reply: hello.wants_reply,
            });
            self.transport.send(hello.to, frame, Delivery::BestEffort);
        }
    }

    fn master_info(&self, m: Master) -> MasterInfo {
        MasterInfo {
            node: m.node,
            token: m.token,
            expires: self.instant(m.expires),
            exact: m.exact,
        }
    }

    fn refresh_view(&mut self, lease: &LeaseName) {
        let info = self.core.master(lease).map(|m| self.master_info(m));
        if let Some(rt) = self.leases.get(lease) {
            rt.shared.view().note_master(Instant::now(), info);
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Elected {
                lease,
                token,
                deadline,
            } => {
                let deadline = self.instant(deadline);
                let Some(rt) = self.leases.get(&lease) else {
                    return;
                };
                let term = {
                    let mut view = rt.shared.view();
                    view.term += 1;
                    view.held = Some(Held { token, deadline });
                    let me = MasterInfo {
                        node: self.id,
                        token,
                        expires: deadline,
                        exact: true,
                    };
                    view.note_master(Instant::now(), Some(me));
                    view.term
                };
                debug!(node = %self.id, %lease, %token, "elected");
                rt.tell(LeaseMsg::Elected(LeaseInfo {
                    name: lease.clone(),
                    token,
                    deadline,
                    guard: LeaseGuard::new(rt.shared.clone(), term),
                }));
                self.node.publish(ElectionEvent::Elected {
                    lease,
                    token,
                    deadline,
                });
            }
            Event::Renewed {
                lease,
                token,
                deadline,
            } => {
                let deadline = self.instant(deadline);
                let Some(rt) = self.leases.get(&lease) else {
                    return;
                };
                {
                    let mut view = rt.shared.view();
                    view.held = Some(Held { token, deadline });
                    let me = MasterInfo {
                        node: self.id,
                        token,
                        expires: deadline,
                        exact: true,
                    };
                    view.note_master(Instant::now(), Some(me));
                }
                self.node.publish(ElectionEvent::Renewed {
                    lease,
                    token,
                    deadline,
                });
            }
            Event::Surrendered {
                lease,
                token,
                reason,
            } => {
                let reason = SurrenderReason::from_core(reason);
                let master = self.core.master(&lease).map(|m| self.master_info(m));
                let Some(rt) = self.leases.get(&lease) else {
                    return;
                };
                {
                    // Authority ends here, before any Release is sent (P6).
                    let mut view = rt.shared.view();
                    view.held = None;
                    view.note_master(Instant::now(), master);
                }
                self.node.count_surrender(reason);
                debug!(node = %self.id, %lease, %token, %reason, "surrendered");
                rt.tell(LeaseMsg::Surrendered { token, reason });
                self.node.publish(ElectionEvent::Surrendered {
                    lease,
                    token,
                    reason,
                });
            }
            Event::MasterChanged { lease, master } => {
                let info = master.map(|m| self.master_info(m));
                let Some(rt) = self.leases.get(&lease) else {
                    return;
                };
                rt.shared.view().note_master(Instant::now(), info);
                rt.shared.watch.send_replace(info);
                rt.tell(LeaseMsg::MasterChanged(info));
                self.node.publish(ElectionEvent::MasterChanged {
                    lease: lease.clone(),
                    master: info,
                });
                self.master_changed(&lease, info);
            }
            _ => {}
        }
    }

    /// Calls in flight to a master that is no more fail; calls waiting for one go.
    fn master_changed(&mut self, lease: &LeaseName, master: Option<MasterInfo>) {
        let new = master.map(|m| m.node);
        let mut failed = Vec::new();
        let mut waiting = Vec::new();
        for (&id, call) in &self.calls {
            if &call.lease != lease {
                continue;
            }
            match call.target {
                Some(target) if Some(target) != new => failed.push(id),
                None if new.is_some() => waiting.push(id),
                _ => {}
            }
        }
        for id in failed {
            if let Some(call) = self.calls.remove(&id) {
                let _ = call
                    .reply
                    .send(Err(CallError::MasterChanged(lease.clone())));
            }
        }
        if !waiting.is_empty() {
            let (_, ts) = self.now();
            waiting.sort_unstable();
            for id in waiting {
                self.dispatch_call(ts, id);
            }
        }
    }

    // ---- stopping -------------------------------------------------------------------------

    /// Surrenders and releases everything (P6), lets the callbacks finish (bounded), then
    /// closes the transport.
    async fn stop(&mut self) {
        let (_, ts) = self.now();
        self.core.shutdown(ts);
        self.flush_as(Delivery::Reliable);
        for (_, call) in self.calls.drain() {
            let _ = call.reply.send(Err(CallError::Stopped));
        }
        for rt in self.leases.values_mut() {
            rt.task = None;
        }
        let bound = Instant::now() + self.config.lease_duration;
        for supervisor in self.supervisors.drain(..) {
            if tokio::time::timeout_at(bound, supervisor).await.is_err() {
                warn!(node = %self.id, "a leader callback did not finish in time at shutdown");
                break;
            }
        }
        self.transport.close().await;
        self.node.set_stopped();
        self.node.publish(ElectionEvent::Stopped);
        debug!(node = %self.id, "stopped");
    }
}

/// Lets `broadcast` senders be cheap to keep around.
pub(crate) fn event_channel() -> broadcast::Sender<ElectionEvent> {
    broadcast::Sender::new(4096)
}
