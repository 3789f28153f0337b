//! Node configuration and the timing derived from it (T2, T3).

use std::time::Duration;

use crate::error::Error;
use crate::fingerprint::Fingerprint;
use crate::id::NodeId;
use crate::time::nanos;

/// Highest candidate priority: each level below it waits one [`Config::jitter`] step longer
/// before trying for a free lease.
pub const MAX_PRIORITY: u8 = 3;

/// Most voters a cluster may have (promise and accept sets are bit sets).
pub const MAX_VOTERS: usize = 64;

/// How one node takes part in the cluster. Start from [`Config::new`] and change fields.
///
/// All nodes of a cluster must use the same `lease_duration` and `rho`: the acceptor
/// exclusion and the quarantine are derived from them. (An `Accept` carries the proposer's
/// lease duration and acceptors never exclude for less than it needs, as a defence.)
#[derive(Debug, Clone)]
pub struct Config {
    /// This node.
    pub node: NodeId,
    /// The fixed voter set: every voter is an acceptor and a learner for every lease.
    pub voters: Vec<NodeId>,
    /// Learner-only nodes: they are told who is master but never vote or stand.
    pub observers: Vec<NodeId>,
    /// `D_P`: how long a lease lasts on the owner's clock, from the moment Prepare is sent.
    pub lease_duration: Duration,
    /// Maximum clock-rate error of any node: local clocks run at `[1 - rho, 1 + rho]` of
    /// real time. Default 0.001 (0.1%).
    pub rho: f64,
    /// The owner stops acting (surrenders) this long before its lease deadline `d`.
    pub surrender_margin: Duration,
    /// Renewal starts when this fraction of the lease has elapsed. Default 1/3.
    pub renew_fraction: f64,
    /// Unanswered Prepare/Accept messages are re-sent this often within an attempt.
    pub retransmit_interval: Duration,
    /// Random spread added to attempts so candidates rarely collide; also the step between
    /// candidate priorities. Default 0.5% of the lease, at least 1 ms (10 ms for a 2 s
    /// lease): for priorities to decide who wins a free lease, a step must exceed an
    /// attempt's four message delays.
    pub jitter: Duration,
    /// Renewals start on a grid of at most this step, so the renewals due within a step
    /// leave together, in one batch per peer: fewer datagrams and wake-ups per renewal, for
    /// renewing up to one step later. A node holding many leases uses a finer step, down
    /// to one jitter step, so that about 200 renewals fall in each (500 while it holds
    /// at most 5,000), and a node holding so few that fewer than 10 would, one jitter
    /// step ([`Timing::renewal_step`]).
    /// Default 5% of the lease (100 ms for a 2 s lease; for leases under 20 ms the
    /// jitter's 1 ms floor decides); cut to a quarter of the time from the renewal point
    /// to the surrender point if longer.
    pub renewal_grid: Duration,
    /// Most protocol messages in one batch to one peer.
    pub max_batch: usize,
    /// Most bytes of lease-protocol messages in one batch to one peer, by an upper bound
    /// of their size in a compact encoding ([`crate::Envelope::size_bound`]); default
    /// 1,000, so a batch fits one QUIC datagram even at the smallest path MTU (1,200
    /// bytes). A batch too large for a datagram goes on a transport's stream, where one
    /// lost packet holds up everything behind it and late messages are still delivered,
    /// late: under load that turned into every renewal failing at once. Log and `ask`
    /// messages, whose size depends on their values, are batched by count alone.
    pub max_batch_bytes: usize,
    /// Fresh acquisitions (not renewals) this node starts per second, at most, after a
    /// burst of [`Config::attempt_burst`]: beyond what the cluster can answer within a
    /// lease, concurrent attempts only time out and retry, and nothing is ever acquired.
    /// Default 10,000; renewals are never held back.
    pub attempt_rate: u32,
    /// Fresh acquisitions that may start at once before [`Config::attempt_rate`] applies
    /// (0 counts as 1). Default 1,000.
    pub attempt_burst: u32,
    /// An optional cluster name, part of the [`crate::Fingerprint`]: nodes of clusters
    /// with different names refuse each other. At most 255 bytes, no control characters.
    pub cluster: String,
    /// The runtime's wire-format version, part of the [`crate::Fingerprint`] (the runtime
    /// sets it; nodes that cannot read each other's frames are a different cluster).
    pub wire_version: u16,
    /// Confirms that a voter set of one node is meant: a one-voter cluster elects itself
    /// without asking anyone, so a node that was meant to join others but was started
    /// without its peers would be a second master. Refused unless this is set.
    pub single_node: bool,
    /// Most lease names this node keeps acceptor state for (default 1,000,000). Entries
    /// for names nobody has used for a quarantine `Q` are pruned; beyond the cap, messages
    /// for new names are dropped and counted ([`crate::Stats::dropped_over_capacity`]).
    pub max_acceptor_entries: usize,
    /// Renew a held lease in one round trip (P7: Accept at a fresh ballot, no Prepare).
    /// Default `true`; `false` renews with Prepare and Accept like a fresh acquisition
    /// (twice the messages).
    pub one_round_renewals: bool,
    /// Shed load when renewals are answered too late to keep everything held (answered
    /// Accept rounds waiting in queues, their smoothed round trip over the shortest one
    /// seen in the last 10 s, for more than two retransmission intervals): give up an
    /// eighth of the held leases (reason `Overload`), at most once per renewal interval
    /// plus two retransmission intervals, and take no more than the rest until answers
    /// come quickly again (the cap then grows by a 64th per retransmission interval while
    /// the node is near it). Default `true`; with `false` an overloaded node keeps trying
    /// to renew everything, and may lose all of it at once.
    pub shed_load: bool,
    /// Test-only: deliberately break one protocol rule. See [`crate::UnsafeRule`].
    #[cfg(feature = "unsafe-rules")]
    pub unsafe_rule: Option<crate::UnsafeRule>,
}

impl Config {
    /// Defaults for a node of the given voter set: lease 2 s, `rho` 0.1%, margin 5% of the
    /// lease, renewal after a third, retransmit every 5% of the lease, jitter 0.5% of the
    /// lease (at least 1 ms).
    pub fn new(node: NodeId, voters: Vec<NodeId>) -> Self {
        let mut config = Config {
            node,
            voters,
            observers: Vec::new(),
            lease_duration: Duration::from_secs(2),
            rho: 0.001,
            surrender_margin: Duration::ZERO,
            renew_fraction: 1.0 / 3.0,
            retransmit_interval: Duration::ZERO,
            jitter: Duration::ZERO,
            renewal_grid: Duration::ZERO,
            max_batch: 64,
            max_batch_bytes: 1_000,
            attempt_rate: 10_000,
            attempt_burst: 1_000,
            cluster: String::new(),
            wire_version: 0,
            single_node: false,
            max_acceptor_entries: 1_000_000,
            one_round_renewals: true,
            shed_load: true,
            #[cfg(feature = "unsafe-rules")]
            unsafe_rule: None,
        };
        config.set_lease_duration(Duration::from_secs(2));
        config
    }

    /// Sets the lease duration and the settings that scale with it (margin, retransmit
    /// interval, jitter, renewal grid) to their defaults for that duration.
    pub fn set_lease_duration(&mut self, lease: Duration) -> &mut Self {
        self.lease_duration = lease;
        self.surrender_margin = lease / 20;
        self.retransmit_interval = (lease / 20).max(Duration::from_millis(1));
        self.jitter = (lease / 200).max(Duration::from_millis(1));
        self.renewal_grid = lease / 20;
        self
    }

    /// The fingerprint of the settings every node of the cluster must share.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::new(
            &self.cluster,
            self.wire_version,
            &self.voters,
            &self.observers,
            self.lease_duration,
            self.rho,
        )
    }

    /// Checks the configuration and derives the protocol timing.
    pub fn timing(&self) -> Result<Timing, Error> {
        if self.voters.is_empty() {
            return Err(Error::NoVoters);
        }
        if self.voters.len() > MAX_VOTERS {
            return Err(Error::TooManyVoters(self.voters.len()));
        }
        let mut all: Vec<NodeId> = self.voters.iter().chain(&self.observers).copied().collect();
        all.sort_unstable();
        if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::DuplicateMember(w[0]));
        }
        if !all.contains(&self.node) {
            return Err(Error::SelfNotMember(self.node));
        }
        if self.voters.len() == 1 && !self.single_node {
            return Err(Error::SingleVoter(self.voters[0]));
        }
        if self.cluster.len() > 255 || self.cluster.chars().any(char::is_control) {
            return Err(Error::InvalidClusterName(
                self.cluster.chars().take(64).collect(),
            ));
        }
        if self.max_acceptor_entries == 0 {
            return Err(Error::ZeroDuration("max acceptor entries"));
        }
        if !(self.rho.is_finite() && (0.0..1.0).contains(&self.rho)) {
            return Err(Error::InvalidRho(self.rho));
        }
        let lease = self.lease_duration;
        if lease < Duration::from_millis(1) || lease > Duration::from_secs(86_400) {
            return Err(Error::InvalidLeaseDuration(lease));
        }
        if self.surrender_margin >= lease {
            return Err(Error::InvalidMargin {
                margin: self.surrender_margin,
                lease,
            });
        }
        if !(self.renew_fraction.is_finite()
            && self.renew_fraction > 0.0
            && self.renew_fraction < 1.0)
        {
            return Err(Error::InvalidRenewFraction(self.renew_fraction));
        }
        let renew_after = lease.mul_f64(self.renew_fraction);
        if renew_after >= lease - self.surrender_margin {
            return Err(Error::InvalidRenewFraction(self.renew_fraction));
        }
        // A grid step takes at most a quarter of the time a renewal has.
        let slack = (lease - self.surrender_margin).saturating_sub(renew_after);
        let renewal_grid = self.renewal_grid.max(self.jitter).min(slack / 4);
        if self.retransmit_interval.is_zero() {
            return Err(Error::ZeroDuration("retransmit interval"));
        }
        if self.max_batch == 0 {
            return Err(Error::ZeroDuration("max batch"));
        }
        if self.max_batch_bytes == 0 {
            return Err(Error::ZeroDuration("max batch bytes"));
        }
        if self.attempt_rate == 0 {
            return Err(Error::ZeroDuration("attempt rate"));
        }
        let exclusion = acceptor_duration(lease, self.rho);
        Ok(Timing {
            lease,
            exclusion,
            // T3: Q >= D_P (1 + rho) / (1 - rho), the same bound as D_A.
            quarantine: exclusion,
            margin: self.surrender_margin,
            renew_after,
            retransmit: self.retransmit_interval,
            jitter: self.jitter,
            renewal_grid,
            rho: self.rho,
        })
    }
}

/// Renewals a node aims to send per step of its renewal grid: with fewer leases held the
/// grid is as coarse as [`Config::renewal_grid`] allows, with many it shrinks towards one
/// jitter step, so a step's burst stays about this size (a 40 ms grid at 100,000 leases
/// made bursts of 2,000 renewals per node).
const RENEWALS_PER_STEP: u64 = 200;

/// A node holding at most [`LIGHT_HOLDER`] leases aims at this many renewals per step
/// instead: its bursts are few and cost mostly per datagram and per wake-up, so larger ones
/// are cheaper per renewal (0.84-0.88 of the cost at 10,000 leases on 3 nodes). A node
/// holding more keeps 200: bursts of 500 from nodes holding tens of thousands, arriving at
/// peers near their limit, were part of what collapsed 100,000 leases at a 2 s lease
/// (docs/overload.md).
const LIGHT_RENEWALS_PER_STEP: u64 = 500;

/// The most leases a node may hold and still renew [`LIGHT_RENEWALS_PER_STEP`] per step.
const LIGHT_HOLDER: u64 = 5_000;

/// Below this many renewals per step of the grid, renewals rarely share a datagram, and a
/// coarse step would only start them later: such a node renews on the jitter step.
const FEWEST_PER_STEP: u64 = 10;

impl Timing {
    /// The renewal grid's step for a node holding `held` leases: the step in which about
    /// 500 of their renewals fall due while it holds at most 5,000, about 200 beyond, at
    /// least one jitter step and at most `renewal_grid`; one jitter step (or
    /// `renewal_grid` if finer) when even the coarsest step would hold fewer than 10.
    pub fn renewal_step(&self, held: u64) -> Duration {
        let renew = nanos(self.renew_after);
        let burst = if held <= LIGHT_HOLDER {
            LIGHT_RENEWALS_PER_STEP
        } else {
            RENEWALS_PER_STEP
        };
        let per_step = renew.saturating_mul(burst) / held.max(1);
        let step = Duration::from_nanos(per_step)
            .max(self.jitter)
            .min(self.renewal_grid);
        if u128::from(held) * u128::from(nanos(step))
            < u128::from(renew) * u128::from(FEWEST_PER_STEP)
        {
            return self.jitter.min(self.renewal_grid);
        }
        step
    }
}

/// T2: the shortest acceptor exclusion `D_A` with `D_P (1 + rho) <= D_A (1 - rho)`,
/// rounded up to the next nanosecond (plus one, against floating-point rounding).
pub fn acceptor_duration(lease: Duration, rho: f64) -> Duration {
    let scaled = (nanos(lease) as f64) * (1.0 + rho) / (1.0 - rho);
    Duration::from_nanos((scaled.ceil() as u64).saturating_add(1))
}

/// The protocol timing of a validated [`Config`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// `D_P`, the proposer's lease duration.
    pub lease: Duration,
    /// `D_A`, how long an acceptor excludes other owners after accepting (T2).
    pub exclusion: Duration,
    /// `Q`, how long a (re)started acceptor stays silent (T3).
    pub quarantine: Duration,
    /// How long before `d` the owner surrenders.
    pub margin: Duration,
    /// When renewal starts, after the lease's Prepare was sent.
    pub renew_after: Duration,
    /// Retransmission interval within an attempt.
    pub retransmit: Duration,
    /// Random spread and priority step.
    pub jitter: Duration,
    /// The step of the grid renewals start on (at least `jitter`).
    pub renewal_grid: Duration,
    /// The clock-rate bound.
    pub rho: f64,
}
