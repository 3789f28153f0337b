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

use gen_paxos_core::{Ballot, LeaseName, Node, NodeId, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, warn};

use crate::callbacks::{Internal, LeaseMsg, Parked};
use crate::config::Config;
use crate::error::{CallError, Error};
use crate::events::ElectionEvent;
use crate::peer_configs::Change;
use crate::shared::NodeShared;
use crate::transport::{Delivery, Transport};
use crate::view::LeaseShared;
use crate::wire::{Frame, Wire};

mod apply;
mod ask_waiters;
mod commands;
mod frames;
mod overload;
pub(crate) mod persist;
pub(crate) mod replication;

/// What handles ask the driver.
#[derive(Debug)]
pub(crate) enum Cmd {
    Join {
        lease: LeaseName,
        priority: Option<u8>,
        shared: Arc<LeaseShared>,
        callbacks: Parked,
        /// A replicated lease's state machine.
        replica: Option<replication::ReplicaRt>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Append {
        lease: LeaseName,
        command: Vec<u8>,
        reply: oneshot::Sender<Result<u64, gen_paxos_core::log::AppendError>>,
    },
    /// `ask` (a value) or `get` (none).
    Ask {
        key: LeaseName,
        value: Option<Vec<u8>>,
        reply: oneshot::Sender<Result<Option<Vec<u8>>, crate::error::AskError>>,
    },
    Forget {
        key: LeaseName,
        reply: oneshot::Sender<Result<u64, crate::error::AskError>>,
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
    callbacks: Callbacks,
    /// A replicated lease's state machine.
    replica: Option<replication::ReplicaRt>,
}

/// Where a lease's `Leader` is: parked while it has nothing to do, or in its task.
enum Callbacks {
    Parked(Parked),
    /// The task and the channel that feeds it. Boxed messages: a channel allocates room
    /// for 32 of them when it is made (2.5 KiB unboxed).
    Running {
        tx: mpsc::UnboundedSender<Box<LeaseMsg>>,
        task: JoinHandle<()>,
    },
    /// The `Leader` panicked, or the node is stopping.
    Gone,
}

impl LeaseRt {
    /// Queues `msg` for the lease's callbacks, starting their task if it is parked.
    fn tell(&mut self, msg: LeaseMsg) {
        match std::mem::replace(&mut self.callbacks, Callbacks::Gone) {
            Callbacks::Parked(parked) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let _ = tx.send(Box::new(msg));
                let task = parked.resume(rx);
                self.callbacks = Callbacks::Running { tx, task };
            }
            Callbacks::Running { tx, task } => {
                let _ = tx.send(Box::new(msg));
                self.callbacks = Callbacks::Running { tx, task };
            }
            Callbacks::Gone => {}
        }
    }

    /// Whether the lease's `Leader` is still there to run callbacks.
    fn has_callbacks(&self) -> bool {
        !matches!(self.callbacks, Callbacks::Gone)
    }

    /// The task parked: keep its state, or start it again on what was queued meanwhile.
    fn parked(&mut self, parked: Parked, rx: mpsc::UnboundedReceiver<Box<LeaseMsg>>) {
        let Callbacks::Running { task, .. } = &mut self.callbacks else {
            return; // stopping (or, impossibly, parked twice): the state is dropped
        };
        if rx.is_empty() {
            self.callbacks = Callbacks::Parked(parked);
        } else {
            *task = parked.resume(rx);
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
    /// The replicated leases among `leases` (what runs after every input looks at these
    /// only: a node may hold 100,000 leases and one log).
    replicated: Vec<LeaseName>,
    cmd_rx: mpsc::UnboundedReceiver<Cmd>,
    /// A command taken from `cmd_rx` while gathering appends, handled next.
    deferred: Option<Cmd>,
    internal_rx: mpsc::UnboundedReceiver<Internal>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    calls: HashMap<u64, PendingCall>,
    call_deadlines: BTreeSet<(Instant, u64)>,
    next_call_id: u64,
    last_heard: HashMap<NodeId, Instant>,
    next_heartbeat: Instant,
    overload: overload::OverloadReport,
    /// How late timers run and how long inputs take (copied out at each heartbeat).
    lag: crate::lag::Lag,
    /// When the current turn's first input read the clock.
    turn_began: Option<Instant>,
    /// The clock as read for the input being handled (once per input).
    now: Instant,
    ts: Timestamp,
    /// Calls to send once the core's outputs are out (see `apply.rs`).
    ready_calls: Vec<u64>,
    /// The storage thread, if the node has storage.
    persister: Option<persist::Persister>,
    /// Appends waiting for their acknowledgement, by lease and slot.
    appends:
        HashMap<(LeaseName, u64), oneshot::Sender<Result<u64, gen_paxos_core::log::AppendError>>>,
    /// `ask`, `get` and `forget` callers, by key.
    asks: ask_waiters::AskWaiters,
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
    pub(crate) persister: Option<persist::Persister>,
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
            overload: overload::OverloadReport::default(),
            lag: crate::lag::Lag::default(),
            turn_began: None,
            config: parts.config,
            epoch: parts.epoch,
            wall_at_epoch: parts.wall_at_epoch,
            node: parts.node,
            leases: HashMap::new(),
            replicated: Vec::new(),
            cmd_rx: parts.cmd_rx,
            deferred: None,
            internal_rx: parts.internal_rx,
            internal_tx: parts.internal_tx,
            calls: HashMap::new(),
            call_deadlines: BTreeSet::new(),
            next_call_id: 0,
            last_heard,
            now: parts.epoch,
            ts: Timestamp::ZERO,
            ready_calls: Vec::new(),
            persister: parts.persister,
            appends: HashMap::new(),
            asks: ask_waiters::AskWaiters::default(),
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
                self.handle_timer(wake);
                self.end_turn();
                continue;
            }
            immediate = false;
            tokio::select! {
                biased;
                () = sleep_until(wake) => self.handle_timer(wake),
                // While a command met in gathering appends waits, newer ones wait behind it.
                cmd = self.cmd_rx.recv(), if self.deferred.is_none() => match cmd {
                    Some(Cmd::Stop { done }) => break done,
                    Some(cmd) => self.handle_command(cmd),
                    None => break None,
                },
                Some(internal) = self.internal_rx.recv() => self.handle_internal(internal),
                incoming = self.transport.recv() => match incoming {
                    Some(incoming) => self.handle_frames(incoming),
                    None => {
                        debug!(node = %self.id, "transport closed: stopping");
                        break None;
                    }
                },
                // Last: a chain of gathered appends cannot hold back timers or replies.
                () = std::future::ready(()), if self.deferred.is_some() => {
                    match self.deferred.take() {
                        Some(Cmd::Stop { done }) => break done,
                        Some(cmd) => self.handle_command(cmd),
                        None => {}
                    }
                }
            }
            self.end_turn();
        };
        self.stop().await;
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    // ---- time -----------------------------------------------------------------------------

    /// Reads the clock once for one input, keeps the reading for everything the input
    /// leads to, and raises the ballot floor (T4).
    fn read_clock(&mut self) -> (Instant, Timestamp) {
        let now = Instant::now();
        let since = self.local(now.saturating_duration_since(self.epoch));
        let millis = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
        self.core
            .raise_ballot_floor(self.wall_at_epoch.saturating_add(millis));
        self.turn_began.get_or_insert(now);
        self.now = now;
        self.ts = Timestamp::from_duration(since);
        (self.now, self.ts)
    }

    /// Counts the turn that just ended (its inputs read the clock first when it began).
    fn end_turn(&mut self) {
        if let Some(began) = self.turn_began.take() {
            self.lag.turns.observe(began.elapsed());
        }
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

    /// The timers due at `due` (the wake-up the loop slept until), and how late it ran.
    fn handle_timer(&mut self, due: Instant) {
        let (now, ts) = self.read_clock();
        self.lag
            .timer_lateness
            .observe(now.saturating_duration_since(due));
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
        let stats = self.core.stats();
        self.overload.check(now, &stats);
        self.node
            .set_core_stats(stats, self.core.acceptor_entries());
        self.node.set_lag(self.lag);
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
            for rt in self.leases.values_mut() {
                if rt.shared.held_at(now).is_some() {
                    rt.tell(LeaseMsg::PeerDown(peer));
                }
            }
        }
    }

    // ---- inputs ---------------------------------------------------------------------------

    // ---- outputs --------------------------------------------------------------------------

    /// This node's fencing token for `lease`, if it holds the lease with authority at `ts`.
    pub(super) fn held_token(&self, ts: Timestamp, lease: &LeaseName) -> Option<Ballot> {
        self.core
            .master(lease)
            .filter(|m| m.exact && self.core.is_master(ts, lease))
            .map(|m| m.token)
    }

    /// Sends a frame made by `make` reliably to every other member.
    pub(super) fn send_to_peers(&self, make: impl Fn() -> Frame) {
        for &peer in self.core.members() {
            if peer != self.id {
                self.transport
                    .send(peer, self.wire(make()), Delivery::Reliable);
            }
        }
    }

    /// A frame with this node's fingerprint digest in its header (F1).
    pub(super) fn wire(&self, frame: Frame) -> Wire {
        Wire {
            fingerprint: self.digest,
            frame,
        }
    }

    /// Publishes a change in a peer's configuration.
    pub(super) fn announce(&self, peer: NodeId, change: Option<Change>) {
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
    pub(super) fn flush(&mut self) {
        self.flush_as(Delivery::BestEffort);
    }

    /// [`Driver::flush`] with a chosen delivery. At shutdown the Releases go reliably: the
    /// transport's close finishes streams before closing connections, but drops datagrams
    /// still queued, and a lost Release would make the others wait for the lease to expire.
    fn flush_as(&mut self, delivery: Delivery) {
        while let Some(event) = self.core.poll_event() {
            self.apply(event);
        }
        self.after_log_events();
        self.persist();
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
        // Calls that waited for a master go after the core's messages.
        let ts = self.ts;
        for id in std::mem::take(&mut self.ready_calls) {
            self.dispatch_call(ts, id);
        }
    }

    // ---- stopping -------------------------------------------------------------------------

    /// Surrenders and releases everything (P6), lets the callbacks finish (bounded), then
    /// closes the transport.
    async fn stop(&mut self) {
        let (_, ts) = self.read_clock();
        self.core.shutdown(ts);
        self.flush_as(Delivery::Reliable);
        for (_, call) in self.calls.drain() {
            let _ = call.reply.send(Err(CallError::Stopped));
        }
        // Closing the channels ends the running tasks once they have worked through them;
        // parked ones have nothing to do.
        let mut running = Vec::new();
        for rt in self.leases.values_mut() {
            if let Callbacks::Running { task, .. } =
                std::mem::replace(&mut rt.callbacks, Callbacks::Gone)
            {
                running.push(task);
            }
        }
        // What the shutdown wrote reaches the disk before the node is gone.
        if let Some(persister) = &mut self.persister {
            persister.finish();
        }
        let bound = Instant::now() + self.config.lease_duration;
        for task in running {
            if tokio::time::timeout_at(bound, task).await.is_err() {
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
