//! A joined lease's `Leader` callbacks run in a task of their own, fed by the driver through
//! a channel: the driver never awaits user code, and the callbacks of one lease never run
//! concurrently.
//!
//! The task exists only while it has work. With nothing queued and no sync payload awaited
//! it hands its state back to the driver ([`Parked`]: the `Leader` and what the task
//! remembers, no task and no channel) and ends; the driver starts it again with the next
//! message. A lease that is only renewed sends its callbacks nothing, so a node holding
//! 100,000 leases keeps 100,000 parked values, not 100,000 tasks and channels (about 1.3 KB
//! per lease, docs/lease-memory.md).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use gen_paxos_core::{Ballot, LeaseName, NodeId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use crate::codec;
use crate::error::{CallError, Refusal};
use crate::leader::{Leader, LeaseInfo, SurrenderInfo};
use crate::view::{LeaseShared, MasterInfo};
use gen_paxos_core::SurrenderReason;

/// What the driver tells a lease task, in protocol order.
#[derive(Debug)]
pub(crate) enum LeaseMsg {
    Elected(LeaseInfo),
    Surrendered {
        token: Ballot,
        reason: SurrenderReason,
    },
    MasterChanged(Option<MasterInfo>),
    Sync {
        from: NodeId,
        payload: Option<Vec<u8>>,
    },
    Call {
        from: NodeId,
        payload: Vec<u8>,
        respond: Responder,
    },
    Cast {
        from: NodeId,
        payload: Vec<u8>,
    },
    FromLeader {
        from: NodeId,
        payload: Vec<u8>,
    },
    PeerDown(NodeId),
}

/// What lease tasks tell the driver.
#[derive(Debug)]
pub(crate) enum Internal {
    /// The sync payload `on_elected` returned for tenure `term`.
    Sync {
        lease: LeaseName,
        term: u64,
        payload: Option<Vec<u8>>,
    },
    /// The answer to a call from a peer.
    Reply {
        to: NodeId,
        id: u64,
        result: Result<Vec<u8>, Refusal>,
    },
    /// A callback panicked; the task is gone.
    Panicked { lease: LeaseName, message: String },
    /// The task found nothing to do and ended; `rx` is its channel, on which the driver may
    /// have queued more since.
    Parked {
        lease: LeaseName,
        task: Parked,
        rx: mpsc::UnboundedReceiver<Box<LeaseMsg>>,
    },
    /// The storage thread made request `token` (and every earlier one) durable.
    Persisted { token: u64 },
    /// The storage thread failed for good.
    PersistFailed { error: String },
    /// The storage grew: rewrite it to a checkpoint.
    CheckpointWanted,
}

/// Where the answer to a call goes. Dropped unanswered (e.g. by a panicking callback), it
/// answers with a failure, so no caller waits for nothing.
#[derive(Debug)]
pub(crate) struct Responder {
    lease: LeaseName,
    to: Option<Target>,
}

#[derive(Debug)]
enum Target {
    Local(oneshot::Sender<Result<Vec<u8>, CallError>>),
    Remote {
        node: NodeId,
        id: u64,
        internal: mpsc::UnboundedSender<Internal>,
    },
}

impl Responder {
    pub(crate) fn local(
        lease: LeaseName,
        reply: oneshot::Sender<Result<Vec<u8>, CallError>>,
    ) -> Self {
        Responder {
            lease,
            to: Some(Target::Local(reply)),
        }
    }

    pub(crate) fn remote(
        lease: LeaseName,
        node: NodeId,
        id: u64,
        internal: mpsc::UnboundedSender<Internal>,
    ) -> Self {
        Responder {
            lease,
            to: Some(Target::Remote { node, id, internal }),
        }
    }

    pub(crate) fn respond(mut self, result: Result<Vec<u8>, Refusal>) {
        self.send(result);
    }

    fn send(&mut self, result: Result<Vec<u8>, Refusal>) {
        match self.to.take() {
            Some(Target::Local(reply)) => {
                let _ = reply.send(result.map_err(|r| r.into_error(&self.lease)));
            }
            Some(Target::Remote { node, id, internal }) => {
                let _ = internal.send(Internal::Reply {
                    to: node,
                    id,
                    result,
                });
            }
            None => {}
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.send(Err(Refusal::Failed("the leader failed".into())));
    }
}

/// Everything a lease task needs besides its `Leader`.
pub(crate) struct TaskContext {
    pub(crate) shared: Arc<LeaseShared>,
    pub(crate) internal: mpsc::UnboundedSender<Internal>,
    pub(crate) local: NodeId,
    /// Whether this node stands for the lease: only candidates lose elections.
    pub(crate) candidate: bool,
    pub(crate) max_payload: usize,
    pub(crate) sync_timeout: Duration,
    /// The node's count of callback tasks (`NodeShared::callback_tasks`).
    pub(crate) tasks: Arc<AtomicU64>,
}

/// A lease's callbacks while they have nothing to do: its `Leader` and the task's memory,
/// without a task.
pub(crate) struct Parked(Box<dyn Resume>);

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parked")
    }
}

impl Parked {
    /// A new lease's callbacks, not started yet.
    pub(crate) fn new<L: Leader>(leader: L, ctx: TaskContext) -> Self {
        Parked(Box::new(Task {
            leader,
            ctx,
            announced: None,
            pending: None,
            early_sync: None,
        }))
    }

    /// Starts the task that works through `rx`, the channel the driver feeds.
    pub(crate) fn resume(self, rx: mpsc::UnboundedReceiver<Box<LeaseMsg>>) -> JoinHandle<()> {
        self.0.resume(rx)
    }
}

trait Resume: Send {
    fn resume(self: Box<Self>, rx: mpsc::UnboundedReceiver<Box<LeaseMsg>>) -> JoinHandle<()>;
}

impl<L: Leader> Resume for Task<L> {
    /// The task reports a panic of its `Leader` to the driver itself (a second task
    /// awaiting it only to see the panic cost about 380 bytes per lease).
    fn resume(self: Box<Self>, rx: mpsc::UnboundedReceiver<Box<LeaseMsg>>) -> JoinHandle<()> {
        let lease = self.ctx.shared.name.clone();
        let internal = self.ctx.internal.clone();
        let tasks = self.ctx.tasks.clone();
        tasks.fetch_add(1, Ordering::Relaxed);
        let callbacks = CatchPanic(Box::pin(run(*self, rx)));
        tokio::spawn(async move {
            let ended = callbacks.await;
            tasks.fetch_sub(1, Ordering::Relaxed);
            if let Err(payload) = ended {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a leader callback panicked".into());
                warn!(%lease, %message, "a leader callback panicked: surrendering the lease");
                let _ = internal.send(Internal::Panicked { lease, message });
            }
        })
    }
}

/// A future that ends with the panic's payload if polling it panics (it is not polled
/// again after that).
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future<Output = ()>> Future for CatchPanic<F> {
    type Output = Result<(), Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// A losing candidate's `on_surrendered`, waiting for the new master's sync payload.
struct Pending {
    master: MasterInfo,
    until: Instant,
}

struct Task<L: Leader> {
    leader: L,
    ctx: TaskContext,
    /// The node a candidate's `on_surrendered(OtherElected)` last ran for.
    announced: Option<NodeId>,
    pending: Option<Pending>,
    /// A sync payload that arrived before its master was learned.
    early_sync: Option<(NodeId, Option<Vec<u8>>)>,
}

async fn run<L: Leader>(mut task: Task<L>, mut rx: mpsc::UnboundedReceiver<Box<LeaseMsg>>) {
    loop {
        // Nothing queued and no sync payload awaited: give the state back to the driver
        // and end. (A closed channel parks too: the driver has stopped, nothing is pending.)
        if task.pending.is_none() && rx.is_empty() {
            let internal = task.ctx.internal.clone();
            let lease = task.ctx.shared.name.clone();
            let _ = internal.send(Internal::Parked {
                lease,
                task: Parked(Box::new(task)),
                rx,
            });
            return;
        }
        let until = task.pending.as_ref().map(|p| p.until);
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(msg) => task.handle(*msg).await,
                None => break,
            },
            () = sleep_until(until.unwrap_or_else(Instant::now)), if until.is_some() => {
                task.fire_pending(None).await;
            }
        }
    }
    // The driver stopped: tell a waiting candidate what is known.
    task.fire_pending(None).await;
}

impl<L: Leader> Task<L> {
    async fn handle(&mut self, msg: LeaseMsg) {
        match msg {
            LeaseMsg::Elected(info) => {
                self.fire_pending(None).await;
                self.announced = Some(self.ctx.local);
                let term = info.guard.term();
                let sync = self.leader.on_elected(&info).await;
                let payload = sync.and_then(|s| self.encode(&s));
                let _ = self.ctx.internal.send(Internal::Sync {
                    lease: self.ctx.shared.name.clone(),
                    term,
                    payload,
                });
            }
            LeaseMsg::Surrendered { token, reason } => {
                self.fire_pending(None).await;
                self.announced = None;
                let info = SurrenderInfo {
                    lease: self.ctx.shared.name.clone(),
                    reason,
                    token: Some(token),
                    master: self
                        .ctx
                        .shared
                        .master()
                        .filter(|m| m.node != self.ctx.local),
                    sync: None,
                };
                self.leader.on_surrendered(info).await;
            }
            LeaseMsg::MasterChanged(master) => {
                let Some(master) =
                    master.filter(|m| m.node != self.ctx.local && self.ctx.candidate)
                else {
                    return;
                };
                if self.announced == Some(master.node) {
                    return;
                }
                self.fire_pending(None).await;
                self.announced = Some(master.node);
                match self.early_sync.take() {
                    Some((from, payload)) if from == master.node => {
                        self.surrendered_to(master, payload).await;
                    }
                    _ => {
                        self.pending = Some(Pending {
                            master,
                            until: Instant::now() + self.ctx.sync_timeout,
                        });
                    }
                }
            }
            LeaseMsg::Sync { from, payload } => match &self.pending {
                Some(p) if p.master.node == from => self.fire_pending(Some(payload)).await,
                _ => self.early_sync = Some((from, payload)),
            },
            LeaseMsg::Call {
                from,
                payload,
                respond,
            } => {
                if self.ctx.shared.held_at(Instant::now()).is_none() {
                    respond.respond(Err(Refusal::NotMaster));
                    return;
                }
                let Some(request) = self.decode(&payload) else {
                    respond.respond(Err(Refusal::Failed("unreadable request".into())));
                    return;
                };
                let answer = self.leader.handle_leader_call(from, request).await;
                let result = match answer {
                    None => Err(Refusal::NotHandled),
                    Some(reply) => self
                        .encode(&reply)
                        .ok_or_else(|| Refusal::Failed("the reply cannot be encoded".into())),
                };
                respond.respond(result);
            }
            LeaseMsg::Cast { from, payload } => {
                if let Some(message) = self.decode(&payload) {
                    self.leader.handle_leader_cast(from, message).await;
                }
            }
            LeaseMsg::FromLeader { from, payload } => {
                self.fire_pending(None).await;
                if let Some(message) = self.decode(&payload) {
                    self.leader.from_leader(from, message).await;
                }
            }
            LeaseMsg::PeerDown(node) => self.leader.on_peer_down(node).await,
        }
    }

    /// Runs a waiting candidate's `on_surrendered`, with the sync payload if it came.
    async fn fire_pending(&mut self, payload: Option<Option<Vec<u8>>>) {
        if let Some(p) = self.pending.take() {
            self.surrendered_to(p.master, payload.flatten()).await;
        }
    }

    async fn surrendered_to(&mut self, master: MasterInfo, payload: Option<Vec<u8>>) {
        let sync = payload.and_then(|p| self.decode(&p));
        let info = SurrenderInfo {
            lease: self.ctx.shared.name.clone(),
            reason: SurrenderReason::OtherElected,
            token: None,
            master: Some(master),
            sync,
        };
        self.leader.on_surrendered(info).await;
    }

    fn encode<T: Serialize>(&self, value: &T) -> Option<Vec<u8>> {
        codec::encode(value, self.ctx.max_payload)
            .inspect_err(|e| warn!(lease = %self.ctx.shared.name, error = %e, "payload not sent"))
            .ok()
    }

    /// Payloads come from peers: a bad one is dropped, never a panic.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Option<T> {
        codec::decode(bytes, self.ctx.max_payload)
            .inspect_err(|e| debug!(lease = %self.ctx.shared.name, error = %e, "dropped a payload"))
            .ok()
    }
}
