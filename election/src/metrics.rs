//! What operators ask of a node, as Prometheus metrics, and its health.
//!
//! [`Election::metrics`] returns a [`prometheus_client`] collector: register it in the
//! service's own registry (`registry.register_collector(Box::new(election.metrics()))`)
//! and serve that registry however the service serves HTTP; the `gen-paxos` tool serves it
//! on `--metrics ADDR` together with the transport's. Values are read when scraped: the
//! core's counters as of the driver's last heartbeat (a few times a lease), the rest live.
//!
//! Per lease (label `lease`, the first [`PER_LEASE_LIMIT`] leases by name):
//! `gen_paxos_lease_master` (1 while this node holds the lease, like client-go's
//! `leader_election_master_status`), `gen_paxos_lease_master_known`,
//! `gen_paxos_lease_elections_total` (won here), `gen_paxos_lease_master_changes_total`,
//! `gen_paxos_lease_no_master_seconds_total`. Per node: leases joined, held and without a
//! master; renewals and failed renewals; attempts, retransmissions, the fresh-acquisition
//! rate in force, its cuts and the acquisitions it defers (overload); elections;
//! surrenders by `reason`; protocol messages received, sent and dropped by `cause`; acceptor entries and pruned
//! entries; voters alive; whether the node is in conflict; peers whose configuration
//! differs and the frames refused from them.

use std::sync::Arc;

use gen_paxos_core::NodeId;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::time::Instant;

use crate::handle::Election;
use crate::shared::NodeShared;

/// Leases with series of their own; a node with more reports the first ones by name
/// (and the node-wide counts cover all).
pub const PER_LEASE_LIMIT: usize = 1_000;

/// The node's metrics, read at each scrape. See the module docs for the list.
#[derive(Debug, Clone)]
pub struct ElectionMetrics {
    node: Arc<NodeShared>,
}

/// Whether a node can do its job, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// A majority of the voters is reachable with a matching configuration, and this node
    /// is not in conflict: it can take part in elections.
    pub healthy: bool,
    /// Voters heard from within the peer timeout whose fingerprint matches (this node
    /// included, if it votes and is not in conflict).
    pub reachable: Vec<NodeId>,
    /// How many voters make a majority.
    pub majority: usize,
    /// Whether this node stopped acting because a voter's configuration differs.
    pub in_conflict: bool,
}

/// Whether every joined lease has a known master, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// Every lease this node joined has a known master now.
    pub ready: bool,
    /// The leases without one (sorted).
    pub without_master: Vec<String>,
}

/// See [`Election::health`].
fn health(node: &NodeShared) -> Health {
    let down = node.down_set();
    let configs = node.lock_configs().snapshot();
    let in_conflict = node.conflict.load(std::sync::atomic::Ordering::Acquire);
    let me = node.id();
    let voters = node.voter_ids();
    let reachable: Vec<NodeId> = voters
        .iter()
        .copied()
        .filter(|&v| {
            if v == me {
                !in_conflict
            } else {
                !down.contains(&v) && configs.iter().any(|p| p.node == v && p.matches)
            }
        })
        .collect();
    let majority = voters.len() / 2 + 1;
    Health {
        healthy: !in_conflict && reachable.len() >= majority,
        reachable,
        majority,
        in_conflict,
    }
}

impl Election {
    /// The node's metrics, to register in a [`prometheus_client`] registry.
    pub fn metrics(&self) -> ElectionMetrics {
        ElectionMetrics {
            node: self.shared().clone(),
        }
    }

    /// Whether this node reaches a majority of voters with a matching configuration.
    pub fn health(&self) -> Health {
        health(self.shared())
    }

    /// Whether every lease this node joined has a known master now.
    pub fn readiness(&self) -> Readiness {
        let now = Instant::now();
        let mut without_master: Vec<String> = self
            .shared()
            .lease_list()
            .iter()
            .filter(|l| l.master().is_none_or(|m| m.expires <= now))
            .map(|l| l.name.to_string())
            .collect();
        without_master.sort_unstable();
        Readiness {
            ready: without_master.is_empty(),
            without_master,
        }
    }
}

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn histogram(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    h: &crate::lag::Histogram,
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        h.sum_secs(),
        h.count(),
        &h.buckets(),
        None,
    )
}

fn gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

/// A family of counters (or gauges) over one label.
fn family<L: AsRef<str>, V: Copy>(
    e: &mut DescriptorEncoder<'_>,
    (name, help, kind): (&str, &str, MetricType),
    key: &'static str,
    items: &[(L, V)],
    write: impl Fn(V, prometheus_client::encoding::MetricEncoder<'_>) -> std::fmt::Result,
) -> std::fmt::Result {
    if items.is_empty() {
        return Ok(());
    }
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for (label, v) in items {
        let labels = [(key, label.as_ref())];
        write(*v, m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counters<L: AsRef<str>>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    key: &'static str,
    items: &[(L, u64)],
) -> std::fmt::Result {
    family(e, (name, help, MetricType::Counter), key, items, |v, m| {
        ConstCounter::new(v).encode(m)
    })
}

fn gauges<L: AsRef<str>>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    key: &'static str,
    items: &[(L, i64)],
) -> std::fmt::Result {
    family(e, (name, help, MetricType::Gauge), key, items, |v, m| {
        ConstGauge::new(v).encode(m)
    })
}

fn counters_f64<L: AsRef<str>>(
    e: &mut DescriptorEncoder<'_>,
    (name, help): (&str, &str),
    key: &'static str,
    items: &[(L, f64)],
) -> std::fmt::Result {
    family(e, (name, help, MetricType::Counter), key, items, |v, m| {
        ConstCounter::new(v).encode(m)
    })
}

impl Collector for ElectionMetrics {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let now = Instant::now();
        let node = &self.node;
        // Per lease: the first names in name order (taken under the map's lock, the counts
        // over every lease), the text encoded after it.
        let (mut master, mut known, mut won, mut changes, mut dark) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut held, mut without) = (0i64, 0i64);
        let joined = {
            let all = node.read_leases();
            for (i, lease) in all.values().enumerate() {
                let view = lease.view();
                let holds = view.holds(now);
                let is_known = view.master.is_some_and(|m| now < m.expires);
                held += i64::from(holds);
                without += i64::from(!is_known);
                if i < PER_LEASE_LIMIT {
                    let name = &lease.name;
                    master.push((name.clone(), i64::from(holds)));
                    known.push((name.clone(), i64::from(is_known)));
                    won.push((name.clone(), view.term));
                    changes.push((name.clone(), view.master_changes));
                    dark.push((name.clone(), view.no_master_time(now).as_secs_f64()));
                }
            }
            all.len()
        };
        gauges(
            &mut e,
            "gen_paxos_lease_master",
            "1 while this node holds the lease (authority), else 0",
            "lease",
            &master,
        )?;
        gauges(
            &mut e,
            "gen_paxos_lease_master_known",
            "1 while this node knows a master of the lease",
            "lease",
            &known,
        )?;
        counters(
            &mut e,
            "gen_paxos_lease_elections",
            "Times this node was elected master of the lease",
            "lease",
            &won,
        )?;
        counters(
            &mut e,
            "gen_paxos_lease_master_changes",
            "Changes of the master this node knows (to another node or to none)",
            "lease",
            &changes,
        )?;
        counters_f64(
            &mut e,
            (
                "gen_paxos_lease_no_master_seconds",
                "Seconds this node knew no master of the lease",
            ),
            "lease",
            &dark,
        )?;
        gauge(
            &mut e,
            "gen_paxos_leases_joined",
            "Leases this node joined",
            joined as i64,
        )?;
        gauge(
            &mut e,
            "gen_paxos_leases_held",
            "Leases this node holds",
            held,
        )?;
        gauge(
            &mut e,
            "gen_paxos_callbacks_busy",
            "Leases whose Leader callbacks have work now (queued, running, or awaiting a sync payload)",
            i64::try_from(
                node.callback_tasks
                    .load(std::sync::atomic::Ordering::Relaxed),
            )
            .unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut e,
            "gen_paxos_leases_without_master",
            "Joined leases with no known master",
            without,
        )?;

        // The core, as of the last heartbeat.
        let (s, entries) = node.core_stats();
        counter(
            &mut e,
            "gen_paxos_elections",
            "Times this node became master (all leases)",
            s.elections,
        )?;
        counter(
            &mut e,
            "gen_paxos_renewals",
            "Successful renewals (all leases)",
            s.renewals,
        )?;
        counter(
            &mut e,
            "gen_paxos_renewals_failed",
            "Renewal attempts that did not renew (retried until the surrender point)",
            s.renewals_failed,
        )?;
        counter(
            &mut e,
            "gen_paxos_attempts",
            "Attempts started (acquisitions and renewals)",
            s.attempts,
        )?;
        gauge(
            &mut e,
            "gen_paxos_attempt_rate",
            "Fresh acquisitions allowed per second now (cut while attempts are answered late)",
            i64::try_from(s.attempt_rate).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut e,
            "gen_paxos_attempt_rate_cuts",
            "Times the fresh-acquisition rate was halved because attempts were answered late",
            s.attempt_rate_cuts,
        )?;
        gauge(
            &mut e,
            "gen_paxos_hold_limit",
            "Most leases this node takes while its renewals are answered late (0: it never shed load)",
            i64::try_from(s.hold_limit).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut e,
            "gen_paxos_leases_shed",
            "Leases given up to shed load (surrendered with reason overload)",
            s.shed,
        )?;
        gauge(
            &mut e,
            "gen_paxos_acquisitions_deferred",
            "Leases whose fresh acquisition waits in the queue for its turn",
            i64::try_from(s.deferred_acquisitions).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut e,
            "gen_paxos_retransmissions",
            "Times an attempt sent Prepare or Accept again to voters that had not answered",
            s.retransmissions,
        )?;
        counter(
            &mut e,
            "gen_paxos_messages_received",
            "Protocol messages handled",
            s.messages_received,
        )?;
        counter(
            &mut e,
            "gen_paxos_messages_sent",
            "Protocol messages queued for peers",
            s.messages_sent,
        )?;
        let dropped = [
            ("unknown_sender", s.dropped_unknown_sender),
            ("spoofed", s.dropped_spoofed),
            ("invalid", s.dropped_invalid),
            ("config_mismatch", s.dropped_mismatched),
            ("absurd_ballot", s.dropped_absurd_ballot),
            ("conflict", s.dropped_conflicted),
            ("over_capacity", s.dropped_over_capacity),
            ("quarantine", s.dropped_quarantined),
            ("stale", s.stale_responses),
        ]
        .map(|(k, v)| (k.to_string(), v));
        counters(
            &mut e,
            "gen_paxos_messages_dropped",
            "Protocol messages dropped, by cause",
            "cause",
            &dropped,
        )?;
        gauge(
            &mut e,
            "gen_paxos_acceptor_entries",
            "Lease names this node keeps acceptor state for",
            entries as i64,
        )?;
        counter(
            &mut e,
            "gen_paxos_acceptors_pruned",
            "Acceptor entries forgotten after a quarantine unused",
            s.pruned_acceptors,
        )?;
        let lag = node.lag();
        histogram(
            &mut e,
            "gen_paxos_driver_timer_lateness_seconds",
            "How long after it was due the driver handled each timer (renewals start on \
             timers: a renewal this late is that much closer to its lease's end)",
            &lag.timer_lateness,
        )?;
        histogram(
            &mut e,
            "gen_paxos_driver_turn_seconds",
            "How long each input (a message, a command, a timer) kept the driver busy",
            &lag.turns,
        )?;
        counter(
            &mut e,
            "gen_paxos_conflicts",
            "Times this node stopped acting because a voter's configuration differed",
            s.conflicts,
        )?;

        let surrenders: Vec<(String, u64)> = node
            .surrenders()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        counters(
            &mut e,
            "gen_paxos_surrenders",
            "Surrenders (authority ended), by reason",
            "reason",
            &surrenders,
        )?;

        // Peers.
        let health = health(node);
        gauge(
            &mut e,
            "gen_paxos_voters_reachable",
            "Voters reachable with a matching configuration (this one included)",
            health.reachable.len() as i64,
        )?;
        gauge(
            &mut e,
            "gen_paxos_voters_majority",
            "Voters that make a majority",
            health.majority as i64,
        )?;
        gauge(
            &mut e,
            "gen_paxos_in_conflict",
            "1 while a voter runs with another configuration and this node does not act",
            i64::from(health.in_conflict),
        )?;
        let configs = node.lock_configs().snapshot();
        let mismatched: Vec<(String, i64)> = configs
            .iter()
            .map(|p| {
                (
                    p.node.to_string(),
                    i64::from(p.fingerprint.is_some() && !p.matches),
                )
            })
            .collect();
        gauges(
            &mut e,
            "gen_paxos_peer_config_mismatch",
            "1 while the peer's cluster fingerprint differs from this node's",
            "peer",
            &mismatched,
        )?;
        let refused: Vec<(String, u64)> = configs
            .iter()
            .map(|p| (p.node.to_string(), p.refused))
            .collect();
        counters(
            &mut e,
            "gen_paxos_peer_refused_frames",
            "Frames refused from the peer because its fingerprint differed",
            "peer",
            &refused,
        )?;
        Ok(())
    }
}
