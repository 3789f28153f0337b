//! A deterministic simulator that checks exclusivity under faults (feature `sim`).
//!
//! One seed fixes everything: N voters (and sometimes an observer), each with its own
//! monotonic clock running at a rate within `[1 - rho, 1 + rho]` of real time and a random
//! offset; a network that loses, duplicates, reorders, delays and redelivers messages
//! (also after the addressee restarted); partitions (a node cut off, a majority/minority
//! split, one-way links, the "chained" and "quorum-loss" shapes); crashes with restarts
//! that lose all acceptor state; process pauses; resignations. No threads, no real time.
//!
//! A faulty-but-authenticated peer also forges messages now and then: a Prepare, Accept,
//! Release or Learn in its own name with an extreme ballot (near `2^64`, or just over or
//! under the ballot bound B1), also from an observer (B2).
//!
//! With [`SimConfig::split`] the cluster is misconfigured instead: two groups of nodes run
//! with different voter sets that share one node (see [`SimConfig::split`]).
//!
//! A run has a fault phase and then heals everything (restarts crashed nodes, resumes
//! paused ones, removes partitions and loss) and checks liveness. Invariants are checked on
//! simulated real time throughout:
//! - at most one node holds authority per lease at any instant, where a node's authority
//!   runs from its `Elected`/`Renewed` event to the earlier of its `Surrendered` event, its
//!   crash, or the real instant its local deadline passes (a paused node cannot extend it);
//! - fencing tokens increase from one owner to the next unless a majority restarted since;
//! - every activation is backed by a majority of distinct acceptors that accepted it;
//! - observers are never elected, and no acceptor accepts a ballot of a node that is not
//!   a voter.
//!
//! ```
//! use gen_paxos_core::sim::{SimConfig, run};
//! let report = run(&SimConfig::new(7, 3));
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! assert!(report.liveness_failure.is_none());
//! ```

pub mod check;
mod checker;
mod chosen;
mod faults;
mod host;
mod network;
mod nodes;
mod queue;
mod replica;
mod throughput;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use crate::id::{LeaseName, NodeId};
use crate::node::Node;
use crate::rng::Rng;
use crate::time::nanos;
use checker::{Checker, ms};
use host::{Clock, Host};
use queue::{Ev, Queued};
pub use throughput::LogBench;

#[cfg(feature = "unsafe-rules")]
use crate::UnsafeRule;

/// What to simulate. [`SimConfig::new`] gives the defaults the tests and `examples/sim` use.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Fixes every random choice of the run.
    pub seed: u64,
    /// How many voters.
    pub voters: usize,
    /// The configured clock-rate bound; clocks drift within it (beyond it with `clock-rate`).
    pub rho: f64,
    /// `D_P`.
    pub lease_duration: Duration,
    /// How long faults are injected before everything heals.
    pub fault_phase: Duration,
    /// Record a trace of notable steps (slower; used to replay a failing seed).
    pub trace: bool,
    /// Hash everything the nodes say (events, messages, hellos, wake-ups) into
    /// [`SimReport::digest`] (slower): two builds that give the same digests for the same
    /// seeds behaved the same.
    pub digest: bool,
    /// A misconfigured cluster: hosts 1 and 2 run with voters `{1, 2, 3}`, and on even
    /// seeds hosts 3, 4 and 5 with `{3, 4, 5}` (a half-done reconfiguration), on odd seeds
    /// host 3 alone as a confirmed single-node cluster. `voters` is ignored. The network
    /// loses, duplicates, delays and redelivers, and nodes resign and forge messages, but
    /// nothing crashes, pauses or is cut off: the fingerprint rule needs the shared node 3
    /// to be reachable (a split whose groups share no reachable node is undetectable).
    pub split: bool,
    /// Run the replicated log (on the first lease) and `ask` with a client workload,
    /// durable storage per host, and their checks (see `replica.rs`). Off, a run is
    /// exactly the lease-only run of earlier versions (same digests for the same seeds).
    pub log: bool,
    /// Renewals run both rounds (`Config::one_round_renewals` off, P7 unused). By default
    /// every fourth seed (seed % 4 == 3), so both ways of renewing are simulated.
    pub two_round_renewals: bool,
    /// Break one protocol rule on purpose.
    #[cfg(feature = "unsafe-rules")]
    pub unsafe_rule: Option<UnsafeRule>,
}

impl SimConfig {
    /// Seed `seed`, `voters` voters, `rho` 0.001, lease 1 s, 20 s of faults.
    pub fn new(seed: u64, voters: usize) -> Self {
        SimConfig {
            seed,
            voters,
            rho: 0.001,
            lease_duration: Duration::from_secs(1),
            fault_phase: Duration::from_secs(20),
            trace: false,
            digest: false,
            split: false,
            log: false,
            two_round_renewals: seed % 4 == 3,
            #[cfg(feature = "unsafe-rules")]
            unsafe_rule: None,
        }
    }

    fn on_baseline(&self) -> bool {
        #[cfg(feature = "unsafe-rules")]
        {
            self.unsafe_rule.is_some_and(UnsafeRule::on_baseline)
        }
        #[cfg(not(feature = "unsafe-rules"))]
        {
            false
        }
    }

    fn unsafe_is(&self, _rule: &str) -> bool {
        #[cfg(feature = "unsafe-rules")]
        {
            self.unsafe_rule.is_some_and(|r| r.name() == _rule)
        }
        #[cfg(not(feature = "unsafe-rules"))]
        {
            false
        }
    }
}

/// The outcome of one seed.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Handler invocations (message batches, timeouts, commands).
    pub steps: u64,
    /// Protocol messages delivered.
    pub deliveries: u64,
    /// Invariant violations (the run stops at the first).
    pub violations: Vec<String>,
    /// Set when the cluster failed to recover within [`liveness_bound`] after healing.
    pub liveness_failure: Option<String>,
    /// Time from healing until every lease had a master.
    pub recovery: Option<Duration>,
    /// Elections (not renewals) seen.
    pub elections: u64,
    /// The last notable steps, when `trace` was set.
    pub trace: Vec<String>,
    /// With [`SimConfig::log`]: appends acknowledged.
    pub log_acks: u64,
    /// With [`SimConfig::log`]: snapshots installed from a peer or restored from a disk.
    pub log_installs: u64,
    /// With [`SimConfig::digest`]: a hash of every event, message, hello and wake-up time
    /// of every node, with the simulated time and host of each; 0 otherwise.
    pub digest: u64,
}

/// FNV-1a over formatted text: hashes `Debug` output without building strings.
struct Fnv(u64);

impl std::fmt::Write for Fnv {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for b in s.bytes() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Ok(())
    }
}

/// The jitter the simulated nodes use: 0.1% of the lease, at least 1 ms (the simulator's
/// message delays are at most [`MAX_NORMAL_DELAY`], so a smaller step than the runtime's
/// default still orders candidates; every recorded seed result was found with it).
pub(crate) fn sim_jitter(lease: Duration) -> Duration {
    (lease / 1000).max(Duration::from_millis(1))
}

/// Largest normal one-way message delay in the simulated network.
pub const MAX_NORMAL_DELAY: Duration = Duration::from_millis(2);

/// After all faults heal, every lease has a master within this bound: `Q + D_A` plus a few
/// retransmission intervals, message delays and jitter steps. A majority restarted just
/// before healing is silent for the quarantine `Q`; the acceptors may still exclude, for up
/// to `D_A`, an owner that died or an attempt that never completed; then a candidate needs
/// a retransmission or two and two round trips.
pub fn liveness_bound(lease: Duration, rho: f64) -> Duration {
    let exclusion = crate::config::acceptor_duration(lease, rho);
    let quarantine = exclusion;
    let retransmit = (lease / 20).max(Duration::from_millis(1));
    let jitter = sim_jitter(lease);
    quarantine + exclusion + retransmit * 3 + MAX_NORMAL_DELAY * 10 + jitter * 8
}

/// Runs one seed.
pub fn run(config: &SimConfig) -> SimReport {
    Sim::new(config).run()
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    rng: Rng,
    hosts: Vec<Host>,
    leases: Vec<LeaseName>,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    now: u64,
    heal_at: u64,
    end_at: u64,
    healed: bool,
    cut: Vec<bool>,
    partition_gen: u64,
    base_loss: f64,
    loss: f64,
    loss_gen: u64,
    dup: f64,
    checker: Checker,
    report: SimReport,
    trace: VecDeque<String>,
    /// The log and `ask` workload and checks, with [`SimConfig::log`].
    replica: Option<replica::Replicated>,
}

const TRACE_LINES: usize = 80;
const WALL_EPOCH_MS: u64 = 1_700_000_000_000;

impl<'a> Sim<'a> {
    fn new(cfg: &'a SimConfig) -> Self {
        let mut rng = Rng::new(cfg.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
        let ids = |v: &[u64]| v.iter().copied().map(NodeId).collect::<Vec<_>>();
        // (voters, observers) of each host.
        let configs: Vec<(Vec<NodeId>, Vec<NodeId>)> = if cfg.split {
            if cfg.seed.is_multiple_of(2) {
                let (a, b) = (ids(&[1, 2, 3]), ids(&[3, 4, 5]));
                vec![
                    (a.clone(), vec![]),
                    (a, vec![]),
                    (b.clone(), vec![]),
                    (b.clone(), vec![]),
                    (b, vec![]),
                ]
            } else {
                let a = ids(&[1, 2, 3]);
                vec![(a.clone(), vec![]), (a, vec![]), (ids(&[3]), vec![])]
            }
        } else {
            let voters: Vec<NodeId> = (1..=cfg.voters as u64).map(NodeId).collect();
            let observers: Vec<NodeId> = if rng.chance(0.3) {
                vec![NodeId(cfg.voters as u64 + 1)]
            } else {
                Vec::new()
            };
            let n = voters.len() + observers.len();
            vec![(voters, observers); n]
        };
        let mut voters: Vec<NodeId> = configs.iter().flat_map(|c| c.0.clone()).collect();
        voters.sort_unstable();
        voters.dedup();
        let lease_count = 1 + rng.below(3) as usize;
        let leases = (0..lease_count)
            .map(|i| LeaseName::new(format!("lease-{i}")).expect("static lease names are valid"))
            .collect();
        let drift = if cfg.unsafe_is("clock-rate") {
            (cfg.rho * 100.0).max(0.2)
        } else {
            cfg.rho
        };
        let hosts: Vec<Host> = configs
            .into_iter()
            .enumerate()
            .map(|(i, (host_voters, host_observers))| {
                let id = NodeId(i as u64 + 1);
                let voter = host_voters.contains(&id);
                // Half the clocks sit at the edges of the allowed range, to stress T2/T3.
                let u = if rng.chance(0.5) {
                    if rng.chance(0.5) { 1.0 } else { -1.0 }
                } else {
                    rng.unit() * 2.0 - 1.0
                };
                Host {
                    id,
                    voters: host_voters,
                    observers: host_observers,
                    voter,
                    priority: voter.then(|| rng.below(4) as u8),
                    clock: Clock {
                        offset: rng.below(1_000_000_000_000),
                        rate: 1.0 + drift * u,
                    },
                    node: None,
                    first_incarnation: rng.next_u64(),
                    epoch: 0,
                    paused: false,
                    buffer: Vec::new(),
                    timer_gen: 0,
                    timer_at: u64::MAX,
                    wall_skew_ms: rng.below(201) as i64 - 100,
                    last_prepare: 0,
                    storage: Default::default(),
                }
            })
            .collect();
        let n = hosts.len();
        let heal_at = nanos(cfg.fault_phase);
        let end_at = heal_at
            + nanos(liveness_bound(cfg.lease_duration, cfg.rho))
            + 2 * nanos(cfg.lease_duration);
        let base_loss = rng.unit() * 0.15;
        let dup = 0.02 + rng.unit() * 0.08;
        Sim {
            cfg,
            rng,
            hosts,
            leases,
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            heal_at,
            end_at,
            healed: false,
            cut: vec![false; n * n],
            partition_gen: 0,
            base_loss,
            loss: base_loss,
            loss_gen: 0,
            dup,
            checker: Checker::new(voters.clone(), WALL_EPOCH_MS),
            report: SimReport {
                seed: cfg.seed,
                steps: 0,
                deliveries: 0,
                violations: Vec::new(),
                liveness_failure: None,
                recovery: None,
                elections: 0,
                trace: Vec::new(),
                log_acks: 0,
                log_installs: 0,
                digest: 0xcbf2_9ce4_8422_2325,
            },
            replica: cfg.log.then(|| replica::Replicated::new(cfg.seed)),
            trace: VecDeque::new(),
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            ev,
        }));
    }

    /// Adds what a node said to the digest, with the time and host.
    fn hash(&mut self, host: usize, what: &dyn std::fmt::Debug) {
        if self.cfg.digest {
            let mut h = Fnv(self.report.digest);
            let _ =
                std::fmt::Write::write_fmt(&mut h, format_args!("{} {host} {what:?};", self.now));
            self.report.digest = h.0;
        }
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.cfg.trace {
            let cap = if std::env::var_os("SIM_TRACE_MESSAGES").is_some() {
                1 << 20
            } else {
                TRACE_LINES
            };
            if self.trace.len() == cap {
                self.trace.pop_front();
            }
            let line = format!("t={} {}", ms(self.now), line());
            self.trace.push_back(line);
        }
    }

    fn run(mut self) -> SimReport {
        for h in 0..self.hosts.len() {
            self.start_node(h);
        }
        let first_fault =
            nanos(self.cfg.lease_duration) / 2 + self.rng.below(nanos(self.cfg.lease_duration));
        self.push(first_fault, Ev::Fault);
        self.push(self.heal_at, Ev::Heal);
        self.start_workload();
        while let Some(Reverse(q)) = self.queue.pop() {
            if q.at > self.end_at {
                break;
            }
            self.now = q.at;
            self.handle(q.ev);
            if !self.checker.violations.is_empty() {
                break;
            }
            if self.healed && self.report.recovery.is_none() {
                let now = self.now;
                if self.leases.iter().all(|l| self.checker.has_holder(now, l)) {
                    self.report.recovery = Some(Duration::from_nanos(now - self.heal_at));
                }
            }
        }
        self.finish()
    }

    fn finish(mut self) -> SimReport {
        self.report.violations = std::mem::take(&mut self.checker.violations);
        if self.report.violations.is_empty() {
            let bound = liveness_bound(self.cfg.lease_duration, self.cfg.rho);
            let end = self.end_at;
            match self.report.recovery {
                None => {
                    self.report.liveness_failure = Some(format!(
                        "no master for every lease within {bound:?} after healing"
                    ))
                }
                Some(r) if r > bound => {
                    self.report.liveness_failure =
                        Some(format!("recovery took {r:?}, bound {bound:?}"))
                }
                Some(_) => {
                    if let Some(l) = self
                        .leases
                        .iter()
                        .find(|l| !self.checker.has_holder(end, l))
                    {
                        self.report.liveness_failure =
                            Some(format!("{l} has no master at the end of the run"));
                    }
                }
            }
            if self.report.liveness_failure.is_none() {
                // The log recovers after the lease: an election, then a round or two.
                let log_bound = nanos(bound) + 500_000_000;
                self.report.liveness_failure = self.log_liveness(log_bound);
            }
        }
        if let Some(r) = &self.replica {
            self.report.log_acks = r.acks;
            self.report.log_installs = r.installs;
        }
        self.report.trace = self.trace.into_iter().collect();
        self.report
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver {
                to,
                from,
                digest,
                payload,
            } => self.deliver(to, from, digest, payload),
            Ev::Timer { host, generation } => {
                let h = &mut self.hosts[host];
                if h.timer_gen != generation || h.paused || h.node.is_none() {
                    return;
                }
                h.timer_at = u64::MAX;
                let local = h.clock.local(self.now);
                if let Some(node) = self.node_mut(host) {
                    node.handle_timeout(local);
                }
                self.report.steps += 1;
                self.pump(host);
            }
            Ev::Fault => self.fault(),
            Ev::Client { host } => self.client(host),
            Ev::Synced { host, epoch, token } => self.synced(host, epoch, token),
            Ev::Restart { host, epoch } => {
                if self.hosts[host].epoch == epoch && self.hosts[host].node.is_none() {
                    self.start_node(host);
                }
            }
            Ev::Resume { host, epoch } => {
                if self.hosts[host].epoch == epoch && self.hosts[host].paused {
                    self.resume(host);
                }
            }
            Ev::HealPartition { generation } => {
                if self.partition_gen == generation {
                    self.cut.iter_mut().for_each(|c| *c = false);
                    self.note(|| "partition healed".into());
                }
            }
            Ev::EndLossBurst { generation } => {
                if self.loss_gen == generation {
                    self.loss = self.base_loss;
                }
            }
            Ev::Heal => {
                self.healed = true;
                // Stragglers and redeliveries still in flight are faults too: they are lost.
                let horizon = self.now + nanos(MAX_NORMAL_DELAY);
                let queue = std::mem::take(&mut self.queue);
                self.queue = queue
                    .into_iter()
                    .filter(|Reverse(q)| !matches!(q.ev, Ev::Deliver { .. }) || q.at <= horizon)
                    .collect();
                self.cut.iter_mut().for_each(|c| *c = false);
                self.loss = 0.0;
                self.base_loss = 0.0;
                self.note(|| "HEAL: partitions, loss, crashes and pauses end".into());
                for h in 0..self.hosts.len() {
                    if self.hosts[h].node.is_none() {
                        self.start_node(h);
                    } else if self.hosts[h].paused {
                        self.resume(h);
                    }
                }
            }
        }
    }

    /// The host's node, told the wall clock first (T4's ballot floor), as a runtime would.
    fn node_mut(&mut self, host: usize) -> Option<&mut Node> {
        let wall = (WALL_EPOCH_MS + self.now / 1_000_000)
            .saturating_add_signed(self.hosts[host].wall_skew_ms);
        // The baseline protocol's ballots follow the wall clock only from process start
        // (docs/PROTOCOL.md T4 as written), and a naive restart reuses its ballots.
        let naive = self.cfg.unsafe_is("reuse-ballot") || self.cfg.on_baseline();
        let node = self.hosts[host].node.as_mut()?;
        if naive {
            node.observe_wall_clock(wall);
        } else {
            node.raise_ballot_floor(wall);
        }
        Some(node)
    }
}
