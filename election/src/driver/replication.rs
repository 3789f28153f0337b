//! The driver's side of the replicated log and `ask` (docs/REPLICATION.md): the core's
//! persist requests go to the storage thread and its confirmations come back (R3);
//! chosen entries are applied to the lease's state machine in order and snapshots taken;
//! appends wait for their acknowledgement; `on_elected` of a replicated lease waits until
//! the log is ready (R2), and the ready flag lease reads check is kept (R6); `ask`
//! answers go to their callers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gen_paxos_core::LeaseName;
use gen_paxos_core::ask::AskEvent;
use gen_paxos_core::log::{AppendError, LogEvent, Value};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::ask_waiters::{AskWaiter, Round};
use super::persist::Job;
use super::{Cmd, Driver};
use crate::callbacks::LeaseMsg;
use crate::error::AskError;
use crate::events::ElectionEvent;
use crate::leader::LeaseInfo;
use crate::state_machine::{Applier, ReplicaShared};
use crate::transport::Transport;
use crate::wire::Wire;

/// Most appends handed to the core together (see [`Driver::append`]).
const MAX_GATHERED: usize = 256;

/// A replicated lease on this node.
pub(crate) struct ReplicaRt {
    pub(crate) shared: Arc<ReplicaShared>,
    pub(crate) applier: Box<dyn Applier>,
    /// Entries applied since the last snapshot (a snapshot is due at
    /// `Config::snapshot_every`; the core's hint makes it due at once).
    pub(crate) since_snapshot: u64,
    /// `Elected` waits here until the log is ready (R2).
    pub(crate) pending_elected: Option<LeaseInfo>,
}

impl std::fmt::Debug for ReplicaRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaRt")
            .field("shared", &self.shared)
            .field("pending_elected", &self.pending_elected.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Transport<Wire>> Driver<T> {
    /// Hands the core's persist requests to the storage thread (none without storage).
    pub(super) fn persist(&mut self) {
        let Some(persister) = &self.persister else {
            return;
        };
        while let Some(request) = self.core.poll_persist() {
            persister.send(Job::Append(request));
        }
    }

    /// The storage thread made `token` (and every earlier request) durable.
    pub(super) fn persisted(&mut self, token: u64) {
        let ts = self.ts;
        self.core.handle_persisted(ts, token);
        self.flush();
    }

    /// The storage thread failed for good.
    pub(super) fn persist_failed(&mut self, error: &str) {
        let ts = self.ts;
        self.node.storage_failed.store(true, Ordering::Release);
        warn!(node = %self.id, %error, "storage failed: the leases go on; the log and ask stop on this node, and it stands no more for its replicated leases");
        self.core.handle_persist_failed(ts);
        // A master that can write nothing can choose nothing: it hands its replicated
        // leases over (its appends in flight fail with an unknown outcome) and stands no
        // more for them.
        for lease in self.replicated.clone() {
            let _ = self.core.join(ts, lease.clone(), None);
            let _ = self.core.resign(ts, &lease);
        }
        self.flush();
    }

    /// The storage grew: rewrite it to the node's checkpoint (after every request polled).
    pub(super) fn checkpoint(&mut self) {
        self.persist();
        if let Some(persister) = &self.persister {
            persister.send(Job::Rewrite(self.core.checkpoint()));
        }
    }

    /// One event of `lease`'s log.
    pub(super) fn apply_log(&mut self, lease: LeaseName, event: LogEvent) {
        let Some(rt) = self.leases.get_mut(&lease) else {
            return;
        };
        let Some(replica) = rt.replica.as_mut() else {
            return;
        };
        match event {
            LogEvent::Chosen { slot, value } => {
                if let Value::Data(command) = &value {
                    replica.applier.apply(slot, command);
                }
                replica.shared.applied.store(slot + 1, Ordering::Release);
                replica.since_snapshot += 1;
            }
            LogEvent::InstallSnapshot { upto, data } => {
                replica.applier.restore(&data);
                replica.shared.applied.store(upto, Ordering::Release);
                replica.since_snapshot = 0;
                info!(node = %self.id, %lease, upto, "installed a snapshot from a peer");
            }
            LogEvent::SnapshotNeeded { .. } => {
                replica.since_snapshot = replica.since_snapshot.max(self.config.snapshot_every);
            }
            LogEvent::Ready { chosen } => {
                debug!(node = %self.id, %lease, chosen, "log ready");
                if let Some(info) = replica.pending_elected.take() {
                    let token = info.token;
                    rt.tell(LeaseMsg::Elected(info));
                    self.node.publish(ElectionEvent::Ready {
                        lease,
                        token,
                        entries: chosen,
                    });
                }
            }
            LogEvent::Appended { slot } => {
                if let Some(reply) = self.appends.remove(&(lease, slot)) {
                    let _ = reply.send(Ok(slot));
                }
            }
            LogEvent::AppendFailed { slot, reason } => {
                if let Some(reply) = self.appends.remove(&(lease, slot)) {
                    let _ = reply.send(Err(reason));
                }
            }
        }
    }

    /// After the core's events of an input: ready flags (R6) and snapshots due.
    pub(super) fn after_log_events(&mut self) {
        let ts = self.ts;
        let mut due = Vec::new();
        for name in &self.replicated {
            let Some(replica) = self.leases.get_mut(name).and_then(|rt| rt.replica.as_mut()) else {
                continue;
            };
            let ready = self.core.is_ready(ts, name);
            replica.shared.ready.store(ready, Ordering::Release);
            if replica.since_snapshot >= self.config.snapshot_every {
                replica.since_snapshot = 0;
                due.push(name.clone());
            }
        }
        for name in due {
            let Some(replica) = self.leases.get(&name).and_then(|rt| rt.replica.as_ref()) else {
                continue;
            };
            let applied = self.core.log_applied(&name).unwrap_or(0);
            let data = replica.applier.snapshot();
            match self.core.compact_log(ts, &name, applied, data) {
                Ok(start) => debug!(node = %self.id, lease = %name, start, "log compacted"),
                Err(e) => warn!(node = %self.id, lease = %name, error = %e, "snapshot refused"),
            }
        }
    }

    /// R4: an append of `command` to `lease`'s log, answered when it is chosen, with every
    /// append to the same lease already waiting behind it (up to [`MAX_GATHERED`]): the
    /// core sends one Accept, and each acceptor makes one write, for all of them. A
    /// different command found while gathering is kept for the driver's loop.
    pub(super) fn append(
        &mut self,
        lease: LeaseName,
        command: Vec<u8>,
        reply: oneshot::Sender<Result<u64, AppendError>>,
    ) {
        let mut commands = vec![command];
        let mut replies = vec![reply];
        while commands.len() < MAX_GATHERED && self.deferred.is_none() {
            match self.cmd_rx.try_recv() {
                Ok(Cmd::Append {
                    lease: next,
                    command,
                    reply,
                }) if next == lease => {
                    commands.push(command);
                    replies.push(reply);
                }
                Ok(other) => self.deferred = Some(other),
                Err(_) => break,
            }
        }
        let ts = self.ts;
        match self.core.append_batch(ts, &lease, commands) {
            Ok(slots) => {
                for (slot, reply) in slots.zip(replies) {
                    self.appends.insert((lease.clone(), slot), reply);
                }
            }
            // None of them was appended.
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e));
                }
            }
        }
        self.flush();
    }

    fn replica_mut(&mut self, lease: &LeaseName) -> Option<&mut ReplicaRt> {
        self.leases
            .get_mut(lease)
            .and_then(|rt| rt.replica.as_mut())
    }

    /// `Elected` of a replicated lease: told to the `Leader` once the log is ready.
    /// Returns the info back if the lease is not replicated.
    pub(super) fn defer_elected(
        &mut self,
        lease: &LeaseName,
        info: LeaseInfo,
    ) -> Option<LeaseInfo> {
        match self.replica_mut(lease) {
            Some(replica) => {
                replica.shared.ready.store(false, Ordering::Release);
                replica.pending_elected = Some(info);
                None
            }
            None => Some(info),
        }
    }

    /// `Surrendered` of a replicated lease: whether its `Leader` was told it was elected
    /// (if not, it is not told of the surrender either).
    pub(super) fn end_tenure(&mut self, lease: &LeaseName) -> bool {
        match self.replica_mut(lease) {
            Some(replica) => {
                replica.shared.ready.store(false, Ordering::Release);
                replica.pending_elected.take().is_none()
            }
            None => true,
        }
    }

    /// An `ask`, `get` (`value` is `None`) or `forget` from a handle.
    pub(super) fn ask(&mut self, key: LeaseName, value: Option<Vec<u8>>, waiter: AskWaiter) {
        let ts = self.ts;
        if self.persister.is_none() {
            match waiter {
                AskWaiter::Value(reply) => {
                    let _ = reply.send(Err(AskError::NoStorage));
                }
                AskWaiter::Forget(reply) => {
                    let _ = reply.send(Err(AskError::NoStorage));
                }
            }
            return;
        }
        match waiter {
            AskWaiter::Forget(reply) => {
                self.asks.forget(&key, reply);
                self.core.forget(ts, &key);
            }
            AskWaiter::Value(reply) => {
                // A caller that comes while a round is in flight waits for the next.
                if let Some(round) = self.asks.value(&key, value, reply) {
                    self.start_round(round);
                }
            }
        }
        self.flush();
    }

    fn start_round(&mut self, round: Round) {
        let ts = self.ts;
        match round.value {
            Some(value) => self.core.ask(ts, &round.key, value),
            None => self.core.get(ts, &round.key),
        }
    }

    /// An `ask` answer: to every caller waiting for it.
    pub(super) fn apply_ask(&mut self, event: AskEvent) {
        let next = match event {
            AskEvent::Decided { key, value, .. } => self.asks.answered(&key, Some(value.to_vec())),
            AskEvent::Undecided { key, .. } => self.asks.answered(&key, None),
            AskEvent::Forgotten { key, instance } => {
                self.asks.forgotten(&key, instance);
                None
            }
        };
        // Those who came while that round was in flight: a round of their own (the
        // driver flushes after applying the core's events).
        if let Some(round) = next {
            self.start_round(round);
        }
    }

    /// Joins `lease` with a state machine: restores it from the snapshot the node has.
    pub(super) fn join_replicated(&mut self, lease: &LeaseName) -> Result<(), crate::error::Error> {
        if self.persister.is_none() {
            return Err(crate::error::Error::NoStorage);
        }
        self.core.enable_log(lease)?;
        if let Some(rt) = self.leases.get(lease)
            && let Some(replica) = &rt.replica
            && let Some((upto, data)) = self.core.log_snapshot(lease)
        {
            replica.applier.restore(&data);
            replica.shared.applied.store(upto, Ordering::Release);
        }
        Ok(())
    }
}
