//! Status queries: serializable questions and answers about a node's view, for tools such
//! as the command-line `status` (e.g. over `transport-quic`'s status-client streams).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gen_paxos_core::{Ballot, LeaseName, NodeId};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::peer_configs::PeerConfig;
use crate::view::LeaseShared;

/// A question about a node's view.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StatusRequest {
    /// Only this lease (all joined leases when `None`).
    pub lease: Option<String>,
    /// Only leases whose names sort after this one: the last name of the previous page.
    pub after: Option<String>,
    /// At most this many leases in the answer (`None`: all of them; 0: none, the counts
    /// and the load only). A node with many leases answers in pages: a reply must fit
    /// one frame (16 MiB at most; 300,000 leases do not).
    pub max_leases: Option<u32>,
}

impl StatusRequest {
    /// A question about every lease.
    pub fn all() -> Self {
        StatusRequest::default()
    }

    /// A question about one lease.
    pub fn lease(name: impl Into<String>) -> Self {
        StatusRequest {
            lease: Some(name.into()),
            ..StatusRequest::default()
        }
    }

    /// A question about the first `max_leases` leases whose names sort after `after` (all
    /// names when `None`); the reply says whether more follow ([`StatusReply::more`]).
    pub fn page(after: Option<String>, max_leases: u32) -> Self {
        StatusRequest {
            lease: None,
            after,
            max_leases: Some(max_leases),
        }
    }
}

/// The leases a request asks about, among a node's joined leases (`all`, in name order):
/// in name order, and whether leases past the last of them were left out.
pub(crate) fn page_of(
    all: &BTreeMap<LeaseName, Arc<LeaseShared>>,
    request: &StatusRequest,
) -> (Vec<Arc<LeaseShared>>, bool) {
    if let Some(name) = &request.lease {
        return (all.get(name.as_str()).cloned().into_iter().collect(), false);
    }
    let max = request
        .max_leases
        .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let from = match &request.after {
        Some(after) => Bound::Excluded(after.as_str()),
        None => Bound::Unbounded,
    };
    let mut rest = all
        .range::<str, _>((from, Bound::Unbounded))
        .map(|(_, l)| l);
    let page: Vec<Arc<LeaseShared>> = rest.by_ref().take(max).cloned().collect();
    (page, rest.next().is_some())
}

impl LeaseStatus {
    /// `lease` as this node sees it at `now`.
    pub(crate) fn of(lease: &LeaseShared, now: Instant) -> LeaseStatus {
        let master = lease.master();
        let replica = lease.replica.as_ref();
        LeaseStatus {
            lease: lease.name.clone(),
            master: master.map(|m| m.node),
            token: master.map(|m| m.token),
            expires_in: master.map(|m| m.expires.saturating_duration_since(now)),
            exact: master.is_some_and(|m| m.exact),
            applied: replica.map(|r| r.applied.load(Ordering::Acquire)),
            ready: replica.is_some_and(|r| r.ready.load(Ordering::Acquire)),
        }
    }
}

/// A node's answer to a [`StatusRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StatusReply {
    /// The answering node.
    pub node: NodeId,
    /// Voters that answer (this one included).
    pub alive: Vec<NodeId>,
    /// Voters that stopped answering.
    pub down: Vec<NodeId>,
    /// The leases asked about, sorted by name (an unknown name is simply absent).
    pub leases: Vec<LeaseStatus>,
    /// Leases past the last one in `leases` were left out ([`StatusRequest::max_leases`]):
    /// ask again with [`StatusRequest::after`] set to its name.
    pub more: bool,
    /// Leases joined on this node, whatever the request asked about.
    pub joined: u64,
    /// Of those, the leases with a known master.
    pub with_master: u64,
    /// The answering node's cluster fingerprint digest.
    pub fingerprint: u64,
    /// Whether it has stopped acting because a voter runs with another configuration
    /// (F2): it holds no lease and votes for nobody until they match.
    pub in_conflict: bool,
    /// Every member, and every other node that contacted it, with its fingerprint.
    pub peers: Vec<PeerConfig>,
    /// What the node holds and what it holds back (overload).
    pub load: Load,
}

/// What a node holds, and what it holds back when its attempts are answered late
/// (docs/PROTOCOL.md, "Overload: renewals first").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Load {
    /// Leases this node is master of now.
    pub held: u64,
    /// Fresh acquisitions waiting for their turn.
    pub deferred: u64,
    /// Fresh acquisitions allowed per second now (the configured `attempt_rate` unless
    /// attempts were answered late).
    pub attempt_rate: u64,
    /// Times that rate was halved because attempts were answered late.
    pub attempt_rate_cuts: u64,
    /// Times an attempt sent Prepare or Accept again to voters that had not answered.
    pub retransmissions: u64,
    /// Leases whose `Leader` callbacks have work now (queued, running, or waiting for a
    /// new master's sync payload); the others cost no task.
    #[serde(default)]
    pub callbacks_busy: u64,
    /// The most leases this node takes while its renewals are answered late (set when it
    /// shed load, raised as answers come quickly again); 0: it never shed.
    #[serde(default)]
    pub hold_limit: u64,
    /// Leases this node gave up to shed load (reason `overload`), since start.
    #[serde(default)]
    pub shed: u64,
}

impl Load {
    /// The node's load now: the leases it holds (from the views, live) and the core's
    /// counters (as of the driver's last heartbeat).
    pub(crate) fn of(node: &crate::shared::NodeShared) -> Load {
        let now = tokio::time::Instant::now();
        let held = node
            .read_leases()
            .values()
            .filter(|l| l.view().holds(now))
            .count();
        let (s, _) = node.core_stats();
        Load {
            held: held as u64,
            deferred: s.deferred_acquisitions,
            attempt_rate: s.attempt_rate,
            attempt_rate_cuts: s.attempt_rate_cuts,
            retransmissions: s.retransmissions,
            hold_limit: s.hold_limit,
            shed: s.shed,
            callbacks_busy: node
                .callback_tasks
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// One lease as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LeaseStatus {
    /// The lease name.
    pub lease: LeaseName,
    /// The master, if known.
    pub master: Option<NodeId>,
    /// Its fencing token.
    pub token: Option<Ballot>,
    /// Time left until its authority ends, on the answering node's clock.
    pub expires_in: Option<Duration>,
    /// Whether `expires_in` is exact (the answering node is the master) or an estimate.
    pub exact: bool,
    /// A replicated lease: how many log entries the answering node has applied (`None`
    /// for a lease without a log).
    pub applied: Option<u64>,
    /// A replicated lease: the answering node is its master with the log ready (it
    /// serves lease reads and appends).
    pub ready: bool,
}
