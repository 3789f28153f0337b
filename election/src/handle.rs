//! The election handle: start a node, join leases, ask who is master, resign, shut down.

use std::hash::{BuildHasher, RandomState};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use gen_paxos_core::{Incarnation, LeaseName, Node, NodeId, Timestamp};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::callbacks::{self, Parked, TaskContext};
use crate::codec;
use crate::config::Config;
use crate::driver::{Cmd, Driver, DriverParts};
use crate::error::{CallError, Error};
use crate::events::ElectionEvent;
use crate::leader::Leader;
use crate::peer_configs::PeerConfig;
use crate::shared::NodeShared;
use crate::status::{LeaseStatus, StatusReply, StatusRequest};
use crate::transport::Transport;
use crate::view::{LeaseGuard, LeaseShared, MasterInfo};
use crate::wire::Wire;

/// How a node takes part in one lease's election.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Candidacy {
    /// Stands for the lease. Priority 0 to 3 ([`gen_paxos_core::MAX_PRIORITY`]): a lower one
    /// waits one jitter step longer per level before trying for a free lease, so a higher
    /// one usually wins when the lease is free.
    Candidate {
        /// 0 (least preferred) to 3 (most preferred, the default).
        priority: u8,
    },
    /// Learns who is master and receives broadcasts, but never stands.
    Observer,
}

impl Candidacy {
    /// A candidate of the default priority: the highest (3), which tries for a free lease
    /// without an extra wait. Give less preferred nodes a lower priority.
    pub fn candidate() -> Self {
        Candidacy::Candidate {
            priority: gen_paxos_core::MAX_PRIORITY,
        }
    }

    /// A candidate of priority `priority` (0 to 3).
    pub fn with_priority(priority: u8) -> Self {
        Candidacy::Candidate { priority }
    }

    fn priority(self) -> Option<u8> {
        match self {
            Candidacy::Candidate { priority } => Some(priority),
            Candidacy::Observer => None,
        }
    }
}

struct Inner {
    shared: Arc<NodeShared>,
    config: Config,
    cmd: mpsc::UnboundedSender<Cmd>,
    internal: mpsc::UnboundedSender<callbacks::Internal>,
    driver: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    /// The last handle is gone: resign everything rather than hold leases until expiry.
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Stop { done: None });
    }
}

/// A running node: the handle to its driver task. Cheap to clone; when the last clone
/// (and the last [`LeaseHandle`]) is dropped, the node resigns every lease and stops.
///
/// Start one with [`Election::start`], then [`Election::join`] named leases.
#[derive(Clone)]
pub struct Election {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("node", &self.inner.shared.id)
            .finish_non_exhaustive()
    }
}

impl Election {
    /// Starts node `config.node` over `transport`: validates the configuration and spawns
    /// the driver task. Must be called inside a tokio runtime. The node's acceptor stays
    /// silent for one acceptor duration after start (the restart quarantine, A4), so the
    /// first election takes at least that long.
    ///
    /// A node started this way keeps no storage: it can elect, but refuses replicated
    /// leases and `ask` ([`Error::NoStorage`]); see [`Election::start_with_storage`].
    pub fn start<T: Transport<Wire>>(config: Config, transport: T) -> Result<Election, Error> {
        Election::start_inner(config, transport, None)
    }

    /// [`Election::start`] with `storage` for replicated leases and `ask` (for example
    /// [`crate::storage::DiskStorage`] on a directory of its own). What the storage holds
    /// is read first: a node restarted on its storage recovers its log and `ask` state. If
    /// it cannot be read (a corrupt record), the node says so in one line and starts
    /// without acting as a log or `ask` acceptor (it never guesses); its leases work.
    pub fn start_with_storage<T: Transport<Wire>, S: crate::storage::Storage>(
        config: Config,
        transport: T,
        storage: S,
    ) -> Result<Election, Error> {
        Election::start_inner(config, transport, Some(Box::new(storage)))
    }

    fn start_inner<T: Transport<Wire>>(
        config: Config,
        transport: T,
        storage: Option<Box<dyn crate::storage::Storage>>,
    ) -> Result<Election, Error> {
        config.validate()?;
        if transport.local_id() != config.node {
            return Err(Error::IdMismatch {
                transport: transport.local_id(),
                config: config.node,
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let random = RandomState::new().hash_one((config.node, SystemTime::now()));
        let wall_at_epoch = config.ballot_floor.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        });
        let incarnation = Incarnation(config.incarnation.unwrap_or(random));
        let seed = config.seed.unwrap_or(random.rotate_left(32));
        let core = Node::new(
            config.core_config(),
            Timestamp::ZERO,
            incarnation,
            wall_at_epoch,
            seed,
        )?;
        let mut core = core;
        let shared = Arc::new(NodeShared::new(&config, &core));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let persister = storage.map(|mut storage| {
            let failed = match storage.load() {
                Ok(records) => {
                    core.restore(records);
                    false
                }
                Err(e) => {
                    tracing::error!(node = %config.node, error = %e, "storage unreadable: this node does not act as a log or ask acceptor");
                    core.handle_persist_failed(Timestamp::ZERO);
                    shared.storage_failed.store(true, Ordering::Release);
                    true
                }
            };
            crate::driver::persist::Persister::spawn(
                config.node,
                storage,
                failed,
                internal_tx.clone(),
            )
        });
        let driver = Driver::new(DriverParts {
            core,
            transport,
            config: config.clone(),
            epoch: Instant::now(),
            wall_at_epoch,
            node: shared.clone(),
            cmd_rx,
            internal_rx,
            internal_tx: internal_tx.clone(),
            persister,
        });
        let task = runtime.spawn(driver.run());
        Ok(Election {
            inner: Arc::new(Inner {
                shared,
                config,
                cmd: cmd_tx,
                internal: internal_tx,
                driver: Mutex::new(Some(task)),
            }),
        })
    }

    /// Whether this node's storage failed (or could not be read at start): it then answers
    /// no more as a log or `ask` acceptor; its leases go on.
    pub fn storage_failed(&self) -> bool {
        self.inner.shared.storage_failed.load(Ordering::Acquire)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.shared.id
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Joins the election for lease `name` with its own `leader`, as a candidate or an
    /// observer. Returns the lease's typed handle.
    pub async fn join<L: Leader>(
        &self,
        name: impl AsRef<str>,
        leader: L,
        candidacy: Candidacy,
    ) -> Result<LeaseHandle<L::Message>, Error> {
        self.join_with(name, leader, candidacy, None).await
    }

    /// [`Election::join`], with a replicated lease's state machine.
    pub(crate) async fn join_with<L: Leader>(
        &self,
        name: impl AsRef<str>,
        leader: L,
        candidacy: Candidacy,
        replica: Option<crate::driver::replication::ReplicaRt>,
    ) -> Result<LeaseHandle<L::Message>, Error> {
        let lease = LeaseName::new(name)?;
        let shared = LeaseShared::new(lease.clone(), replica.as_ref().map(|r| r.shared.clone()));
        let callbacks = Parked::new(
            leader,
            TaskContext {
                shared: shared.clone(),
                internal: self.inner.internal.clone(),
                local: self.id(),
                candidate: candidacy.priority().is_some(),
                max_payload: self.inner.config.max_payload_len,
                sync_timeout: self.inner.config.sync_timeout(),
                tasks: self.inner.shared.callback_tasks.clone(),
            },
        );
        let (reply, rx) = oneshot::channel();
        self.command(Cmd::Join {
            lease,
            priority: candidacy.priority(),
            shared: shared.clone(),
            callbacks,
            replica,
            reply,
        })?;
        rx.await.map_err(|_| Error::Stopped)??;
        Ok(LeaseHandle {
            election: self.clone(),
            shared,
            _message: PhantomData,
        })
    }

    /// Who is master of `lease` as this node sees it: exact on the master itself, the
    /// learned estimate elsewhere (see [`MasterInfo::exact`]); `None` if unknown or not
    /// joined.
    pub fn master(&self, lease: &str) -> Option<MasterInfo> {
        self.inner.shared.lease(lease)?.master()
    }

    /// Whether this node holds `lease` with authority now (before deadline minus margin).
    pub fn is_master(&self, lease: &str) -> bool {
        self.guard(lease).is_some()
    }

    /// A guard for the current tenure of `lease`, if this node holds it now.
    pub fn guard(&self, lease: &str) -> Option<LeaseGuard> {
        let shared = self.inner.shared.lease(lease)?;
        let term = {
            let view = shared.view();
            view.held.filter(|h| Instant::now() < h.deadline)?;
            view.term
        };
        Some(LeaseGuard::new(shared, term))
    }

    /// A watch of `lease`'s master: it changes when another node (or this one, or nobody)
    /// becomes master as this node sees it (not on renewals).
    pub fn watch(&self, lease: &str) -> Option<watch::Receiver<Option<MasterInfo>>> {
        Some(self.inner.shared.lease(lease)?.subscribe())
    }

    /// Every event of this node from now on (elections, renewals, surrenders, master
    /// changes, peers up and down).
    pub fn events(&self) -> broadcast::Receiver<ElectionEvent> {
        self.inner.shared.events.subscribe()
    }

    /// Resigns `lease` now: this node stops acting (its `on_surrendered` runs with
    /// [`crate::SurrenderReason::Resigned`]) and releases the lease, so another candidate
    /// takes over within a few message delays. This node stays a candidate but holds off
    /// for one lease duration. Returns whether it was master.
    pub async fn resign(&self, lease: &str) -> Result<bool, Error> {
        let lease = LeaseName::new(lease)?;
        let (reply, rx) = oneshot::channel();
        self.command(Cmd::Resign { lease, reply })?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Resigns every lease, lets queued callbacks finish (at most one lease duration),
    /// closes the transport and returns. Other handles fail with [`Error::Stopped`]
    /// afterwards.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self.command(Cmd::Stop { done: Some(done) }).is_ok() {
            let _ = rx.await;
        }
        let driver = self
            .inner
            .driver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(driver) = driver {
            let _ = driver.await;
        }
    }

    /// Whether the node has stopped.
    pub fn is_stopped(&self) -> bool {
        self.inner.shared.stopped.load(Ordering::Acquire)
    }

    /// Test support: stops the node abruptly, as if its process died. No lease is
    /// released and no callback runs; the transport is dropped.
    #[cfg(feature = "test-util")]
    pub fn crash(&self) {
        if let Some(driver) = self
            .inner
            .driver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            driver.abort();
        }
        self.inner.shared.set_stopped();
    }

    /// Voters heard from within the peer timeout (gen_leader `alive/1`), this node
    /// included if it votes. A peer never heard from since start is down.
    pub fn alive(&self) -> Vec<NodeId> {
        let down = self.down();
        self.inner
            .shared
            .voters
            .iter()
            .copied()
            .filter(|v| !down.contains(v))
            .collect()
    }

    /// Voters that stopped answering (gen_leader `down/1`).
    pub fn down(&self) -> Vec<NodeId> {
        let down = self
            .inner
            .shared
            .down
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner
            .shared
            .voters
            .iter()
            .copied()
            .filter(|v| down.contains(v))
            .collect()
    }

    /// The nodes that may stand for a lease: the voters (gen_leader `candidates/1`).
    /// Which of them stand for a given lease is each node's choice at join.
    pub fn candidates(&self) -> Vec<NodeId> {
        self.inner.shared.voters.clone()
    }

    /// The learner-only nodes (gen_leader `workers/1`).
    pub fn observers(&self) -> Vec<NodeId> {
        self.inner.shared.observers.clone()
    }

    /// The names of the leases joined on this node, sorted.
    pub fn leases(&self) -> Vec<LeaseName> {
        self.inner.shared.read_leases().keys().cloned().collect()
    }

    /// Answers a status query from this node's view (for `status` tools).
    pub fn status(&self, request: &StatusRequest) -> StatusReply {
        let now = Instant::now();
        let (joined, with_master, (page, more)) = {
            let all = self.inner.shared.read_leases();
            let with_master = all.values().filter(|l| l.master().is_some()).count();
            (
                all.len() as u64,
                with_master as u64,
                crate::status::page_of(&all, request),
            )
        };
        StatusReply {
            node: self.id(),
            alive: self.alive(),
            down: self.down(),
            leases: page.iter().map(|l| LeaseStatus::of(l, now)).collect(),
            more,
            joined,
            with_master,
            fingerprint: self.fingerprint().digest(),
            in_conflict: self.in_conflict(),
            peers: self.peer_configs(),
            load: crate::status::Load::of(&self.inner.shared),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<NodeShared> {
        &self.inner.shared
    }

    /// The core's counters, as of the driver's last heartbeat (a few times a lease).
    pub fn core_stats(&self) -> gen_paxos_core::Stats {
        self.inner.shared.core_stats().0
    }

    /// This node's cluster fingerprint: what every node of its cluster must share.
    pub fn fingerprint(&self) -> gen_paxos_core::Fingerprint {
        self.inner.shared.lock_configs().fingerprint().clone()
    }

    /// Every member, and every other node that contacted this one, with the fingerprint it
    /// sent and whether its messages are refused.
    pub fn peer_configs(&self) -> Vec<PeerConfig> {
        self.inner.shared.lock_configs().snapshot()
    }

    /// Whether this node has stopped acting because one of its voters runs with another
    /// cluster configuration (it holds no lease and votes for nobody until they match).
    pub fn in_conflict(&self) -> bool {
        self.inner.shared.conflict.load(Ordering::Acquire)
    }

    pub(crate) fn command(&self, cmd: Cmd) -> Result<(), Error> {
        self.inner.cmd.send(cmd).map_err(|_| Error::Stopped)
    }
}

/// The typed handle of one joined lease: its master, and the gen_leader calls.
/// Cheap to clone; it keeps the node running.
pub struct LeaseHandle<M> {
    election: Election,
    shared: Arc<LeaseShared>,
    _message: PhantomData<fn(M) -> M>,
}

impl<M> Clone for LeaseHandle<M> {
    fn clone(&self) -> Self {
        LeaseHandle {
            election: self.election.clone(),
            shared: self.shared.clone(),
            _message: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for LeaseHandle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseHandle")
            .field("lease", &self.shared.name)
            .field("node", &self.election.id())
            .finish_non_exhaustive()
    }
}

impl<M> LeaseHandle<M>
where
    M: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    /// The lease.
    pub fn name(&self) -> &LeaseName {
        &self.shared.name
    }

    /// The node this handle belongs to.
    pub fn election(&self) -> &Election {
        &self.election
    }

    /// Who is master, as this node sees it.
    pub fn master(&self) -> Option<MasterInfo> {
        self.shared.master()
    }

    /// Whether this node holds the lease with authority now.
    pub fn is_master(&self) -> bool {
        self.shared.held_at(Instant::now()).is_some()
    }

    /// A guard for the current tenure, if this node holds the lease now.
    pub fn guard(&self) -> Option<LeaseGuard> {
        self.election.guard(self.shared.name.as_str())
    }

    /// A watch of the master (see [`Election::watch`]).
    pub fn watch(&self) -> watch::Receiver<Option<MasterInfo>> {
        self.shared.subscribe()
    }

    /// Resigns the lease (see [`Election::resign`]).
    pub async fn resign(&self) -> Result<bool, Error> {
        self.election.resign(self.shared.name.as_str()).await
    }

    /// Sends `request` to the master's [`Leader::handle_leader_call`] and returns its
    /// reply (gen_leader `leader_call`). Waits for a master if none is known; fails with a
    /// clear error after at most the call timeout, or as soon as the master changes.
    pub async fn call(&self, request: M) -> Result<M, CallError> {
        let max = self.election.inner.config.max_payload_len;
        let payload = codec::encode(&request, max)?;
        let (reply, rx) = oneshot::channel();
        self.election
            .command(Cmd::Call {
                lease: self.shared.name.clone(),
                payload,
                reply,
            })
            .map_err(|_| CallError::Stopped)?;
        // The driver answers within the call timeout; this bound only guards against a
        // driver that died.
        let bound = self.election.inner.config.call_timeout() * 2;
        let bytes = match tokio::time::timeout(bound, rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(CallError::Stopped),
            Err(_) => {
                return Err(CallError::Timeout {
                    lease: self.shared.name.clone(),
                    waited: bound,
                });
            }
        };
        Ok(codec::decode(&bytes, max)?)
    }

    /// Sends `message` to the master's [`Leader::handle_leader_cast`] (gen_leader
    /// `leader_cast`); dropped if no master is known.
    pub fn cast(&self, message: M) -> Result<(), CallError> {
        let payload = codec::encode(&message, self.election.inner.config.max_payload_len)?;
        self.election
            .command(Cmd::Cast {
                lease: self.shared.name.clone(),
                payload,
            })
            .map_err(|_| CallError::Stopped)
    }

    /// On the master: sends `message` to [`Leader::from_leader`] on every other node that
    /// joined the lease (gen_leader `broadcast`), reliably while connections live.
    pub fn broadcast(&self, message: M) -> Result<(), CallError> {
        if !self.is_master() {
            return Err(CallError::NotMaster(self.shared.name.clone()));
        }
        let payload = codec::encode(&message, self.election.inner.config.max_payload_len)?;
        self.election
            .command(Cmd::Broadcast {
                lease: self.shared.name.clone(),
                payload,
            })
            .map_err(|_| CallError::Stopped)
    }
}
