//! The `Leader` trait: the application's side of an election, after Erlang's gen_leader.

use async_trait::async_trait;
use gen_paxos_core::{Ballot, LeaseName, NodeId, SurrenderReason};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::view::{LeaseGuard, MasterInfo};

/// The application's side of one named election, modelled on Erlang's `gen_leader`.
///
/// | gen_leader | `Leader` | when |
/// |---|---|---|
/// | `init/1` | the value passed to [`crate::Election::join`] | on join |
/// | `elected/3` | [`Leader::on_elected`] | this node became master; may return a sync payload |
/// | `surrendered/3` | [`Leader::on_surrendered`] | this node stopped being master (`reason.was_master()`), or another node won (`other-elected`) |
/// | `handle_leader_call/4` | [`Leader::handle_leader_call`] | on the master, for [`crate::LeaseHandle::call`] |
/// | `handle_leader_cast/3` | [`Leader::handle_leader_cast`] | on the master, for [`crate::LeaseHandle::cast`] |
/// | `from_leader/3` | [`Leader::from_leader`] | on other nodes, for [`crate::LeaseHandle::broadcast`] |
/// | `handle_DOWN/3` | [`Leader::on_peer_down`] | on the master, when a voter stops answering |
/// | `gen_leader:leader_node/1` | [`crate::Election::master`] | any time |
/// | `alive/1`, `down/1`, `candidates/1`, `workers/1` | [`crate::Election::alive`], [`crate::Election::down`], [`crate::Election::candidates`], [`crate::Election::observers`] | any time |
///
/// Differences from gen_leader: authority is a *lease*, not a belief. The master holds it
/// until a deadline and must stop acting when [`LeaseInfo::guard`] says so, even if
/// `on_surrendered` has not run yet (it is queued behind any callback still running).
/// Every payload (`Message`) is one serde type per lease, carried as bytes.
///
/// The callbacks of one lease run one at a time, in protocol order, on a task of their
/// own: a slow callback delays only later callbacks of the same lease, never renewal or
/// other leases. A callback that panics ends the node's candidacy for that lease: the
/// lease is surrendered, the panic is reported as [`crate::ElectionEvent::LeaderFailed`],
/// and other leases carry on.
#[async_trait]
pub trait Leader: Send + 'static {
    /// Payloads of calls, replies, casts, broadcasts and the sync payload.
    type Message: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// This node became master (gen_leader `elected/3`). The lease's authority lasts
    /// while `lease.guard.is_valid()`; renewal runs meanwhile, however long this takes.
    /// The returned payload, if any, is delivered to the losing candidates'
    /// [`Leader::on_surrendered`].
    async fn on_elected(&mut self, lease: &LeaseInfo) -> Option<Self::Message>;

    /// This node is not master (gen_leader `surrendered/3`). It runs in two cases, told
    /// apart by [`SurrenderReason::was_master`]:
    ///
    /// - **This node's authority ended** (`was_master()` is true; reason `expired`,
    ///   `resigned`, `lost`, `shutdown` or `config-mismatch`; `info.token` is the token it
    ///   held): stop acting now. It is told no later than its deadline minus the surrender
    ///   margin, unless one of its own callbacks is still running then (the guard is
    ///   invalid at that bound either way).
    /// - **Another node was elected** while this node stood as a candidate (reason
    ///   `other-elected`, at every election it did not win; `info.token` is `None`): there
    ///   is nothing to stop; `info.master` and `info.sync` carry the new master and its
    ///   sync payload when known.
    ///
    /// Never called on a node that neither held nor stood for the lease.
    async fn on_surrendered(&mut self, info: SurrenderInfo<Self::Message>);

    /// A request for the master (gen_leader `handle_leader_call/4`). `None` tells the
    /// caller that calls are not handled (the default).
    async fn handle_leader_call(
        &mut self,
        _from: NodeId,
        _request: Self::Message,
    ) -> Option<Self::Message> {
        None
    }

    /// A one-way message for the master (gen_leader `handle_leader_cast/3`).
    async fn handle_leader_cast(&mut self, _from: NodeId, _message: Self::Message) {}

    /// A payload the master broadcast (gen_leader `from_leader/3`); runs on every other
    /// node that joined the lease.
    #[allow(clippy::wrong_self_convention, reason = "gen_leader's callback name")]
    async fn from_leader(&mut self, _from: NodeId, _message: Self::Message) {}

    /// On the master: voter `node` stopped answering (gen_leader `handle_DOWN/3`).
    async fn on_peer_down(&mut self, _node: NodeId) {}
}

/// The lease a node was elected to, as given to [`Leader::on_elected`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeaseInfo {
    /// The lease.
    pub name: LeaseName,
    /// The fencing token at election (it grows on every renewal; see the guard).
    pub token: Ballot,
    /// When authority ends unless renewed (deadline minus the surrender margin).
    pub deadline: Instant,
    /// Valid while this tenure lasts; check it before acting.
    pub guard: LeaseGuard,
}

/// What [`Leader::on_surrendered`] is told.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SurrenderInfo<M> {
    /// The lease.
    pub lease: LeaseName,
    /// Why.
    pub reason: SurrenderReason,
    /// The token this node held, when it was master.
    pub token: Option<Ballot>,
    /// The new master, when known.
    pub master: Option<MasterInfo>,
    /// The new master's sync payload (what its `on_elected` returned), when known.
    pub sync: Option<M>,
}

/// A [`Leader`] without callbacks, for a service that asks instead of being told: it
/// checks [`crate::LeaseHandle::guard`] before each write, or reads
/// [`crate::Election::events`].
///
/// ```
/// # async fn demo(election: gen_paxos_election::Election) -> Result<(), gen_paxos_election::Error> {
/// use gen_paxos_election::{Candidacy, NoCallbacks};
/// let lease = election.join("db", NoCallbacks, Candidacy::candidate()).await?;
/// // Before each write: the token while this node holds the lease, else `None`.
/// if let Some(token) = lease.guard().and_then(|guard| guard.token()) {
///     println!("master: write with token {token}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCallbacks;

#[async_trait]
impl Leader for NoCallbacks {
    type Message = ();

    async fn on_elected(&mut self, _lease: &LeaseInfo) -> Option<()> {
        None
    }

    async fn on_surrendered(&mut self, _info: SurrenderInfo<()>) {}
}
