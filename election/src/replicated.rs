//! Replicated state for services (docs/REPLICATION.md): a [`StateMachine`] kept the same on
//! every node of a lease through the core's replicated log, and per-key consensus (`ask`).
//!
//! Join a lease with [`crate::Election::join_replicated`]: the master appends commands
//! ([`ReplicatedLease::append`] returns once the command is chosen, with its index); every
//! node applies the chosen commands in index order; the master reads its state with no
//! round trip while it is ready and its lease holds ([`ReplicatedLease::read`], R6); any
//! node reads its own copy, maybe stale, with [`ReplicatedLease::read_stale`]. `on_elected`
//! of a replicated lease runs only once the new master recovered the log (R2): its state
//! holds every command any earlier master had acknowledged.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use gen_paxos_core::LeaseName;
pub use gen_paxos_core::log::AppendError;
use tokio::sync::oneshot;

use crate::driver::Cmd;
use crate::driver::replication::ReplicaRt;
pub use crate::error::AskError;
use crate::error::Error;
use crate::handle::{Candidacy, Election, LeaseHandle};
use crate::leader::Leader;
pub use crate::state_machine::StateMachine;
use crate::state_machine::{ReplicaShared, lock};

/// Why a lease read was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// This node does not hold the lease: read on the master, or use
    /// [`ReplicatedLease::read_stale`].
    #[error("not master")]
    NotMaster,
    /// This node holds the lease but has not finished recovering the log.
    #[error("not ready (recovering the log)")]
    NotReady,
}

/// A lease joined with a replicated state machine `S`: the lease's handle (see
/// [`ReplicatedLease::lease`]) plus appends and reads. Cheap to clone.
pub struct ReplicatedLease<M, S> {
    pub(crate) lease: LeaseHandle<M>,
    pub(crate) shared: Arc<ReplicaShared>,
    pub(crate) state: Arc<Mutex<S>>,
}

impl<M, S> Clone for ReplicatedLease<M, S> {
    fn clone(&self) -> Self {
        ReplicatedLease {
            lease: self.lease.clone(),
            shared: self.shared.clone(),
            state: self.state.clone(),
        }
    }
}

impl<M, S> std::fmt::Debug for ReplicatedLease<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedLease")
            .field("lease", &self.lease)
            .field("shared", &self.shared)
            .finish()
    }
}

impl<M, S> ReplicatedLease<M, S>
where
    M: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    S: StateMachine,
{
    /// The lease's handle: master, guard, resign, gen_leader calls.
    pub fn lease(&self) -> &LeaseHandle<M> {
        &self.lease
    }

    /// The lease's name.
    pub fn name(&self) -> &LeaseName {
        self.lease.name()
    }

    /// R4: appends `command` to the log and waits until it is chosen; returns its index.
    /// Only the master whose log is ready takes appends. [`AppendError::Lost`] means the
    /// lease ended while the command was in flight: it may still be chosen (a later
    /// master finds it) or not.
    pub async fn append(&self, command: impl Into<Vec<u8>>) -> Result<u64, AppendError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::Append {
            lease: self.lease.name().clone(),
            command: command.into(),
            reply,
        };
        if self.lease.election().command(cmd).is_err() {
            return Err(AppendError::NotMaster);
        }
        rx.await.unwrap_or(Err(AppendError::Lost))
    }

    /// R6: runs `read` on this node's state if it is the master, its log is ready and its
    /// lease holds at this instant: the state holds every command acknowledged anywhere
    /// before the call (a linearizable read, with no round trip).
    pub fn read<R>(&self, read: impl FnOnce(&S) -> R) -> Result<R, ReadError> {
        if !self.lease.is_master() {
            return Err(ReadError::NotMaster);
        }
        let state = lock(&self.state);
        if !self.shared.ready.load(Ordering::Acquire) {
            return Err(ReadError::NotReady);
        }
        Ok(read(&state))
    }

    /// Runs `read` on this node's copy of the state, whatever its role: it may miss
    /// commands chosen recently (a follower applies them as it learns of them).
    pub fn read_stale<R>(&self, read: impl FnOnce(&S) -> R) -> R {
        read(&lock(&self.state))
    }

    /// Every index below this is applied on this node.
    pub fn applied(&self) -> u64 {
        self.shared.applied.load(Ordering::Acquire)
    }
}

impl Election {
    /// Joins lease `name` like [`Election::join`], with a replicated state machine `state`
    /// (docs/REPLICATION.md): see [`ReplicatedLease`]. The node must have storage
    /// ([`Election::start_with_storage`]); a node restarted on its storage restores
    /// `state` from its latest snapshot and catches up from the log. `on_elected` runs
    /// only once this node, elected, recovered the log (R2).
    pub async fn join_replicated<L: Leader, S: StateMachine>(
        &self,
        name: impl AsRef<str>,
        leader: L,
        candidacy: Candidacy,
        state: S,
    ) -> Result<ReplicatedLease<L::Message, S>, Error> {
        let state = Arc::new(Mutex::new(state));
        let shared = Arc::new(ReplicaShared::default());
        let replica = ReplicaRt {
            shared: shared.clone(),
            applier: Box::new(state.clone()),
            since_snapshot: 0,
            pending_elected: None,
        };
        let lease = self
            .join_with(name, leader, candidacy, Some(replica))
            .await?;
        Ok(ReplicatedLease {
            lease,
            shared,
            state,
        })
    }

    /// R8, the original gen_paxos's `ask(Key, Value)`: the value chosen for `key` (the
    /// first proposal to win, the same for every caller until a [`Election::forget`]).
    /// Any node with storage may ask; no master is needed.
    pub async fn ask(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<Vec<u8>, AskError> {
        match self.ask_inner(key, Some(value.into())).await? {
            Some(chosen) => Ok(chosen),
            None => Err(AskError::Stopped),
        }
    }

    /// The value chosen for `key`, or `None` if none is (linearizable: it asks a majority).
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AskError> {
        self.ask_inner(key, None).await
    }

    /// Closes `key`'s current instance and opens the next (numbered, never revived):
    /// later `ask`s choose afresh. Returns the instance closed.
    pub async fn forget(&self, key: &str) -> Result<u64, AskError> {
        let key = LeaseName::new(key).map_err(|e| AskError::InvalidKey(e.to_string()))?;
        let (reply, rx) = oneshot::channel();
        self.command(Cmd::Forget { key, reply })
            .map_err(|_| AskError::Stopped)?;
        self.wait(rx).await
    }

    async fn ask_inner(
        &self,
        key: &str,
        value: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, AskError> {
        let key = LeaseName::new(key).map_err(|e| AskError::InvalidKey(e.to_string()))?;
        let (reply, rx) = oneshot::channel();
        self.command(Cmd::Ask { key, value, reply })
            .map_err(|_| AskError::Stopped)?;
        self.wait(rx).await
    }

    async fn wait<R>(&self, rx: oneshot::Receiver<Result<R, AskError>>) -> Result<R, AskError> {
        let limit = self.config().call_timeout();
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AskError::Stopped),
            Err(_) => Err(AskError::Timeout(limit)),
        }
    }
}
