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
//! use paxos_core::sim::{SimConfig, run};
//! let report = run(&SimConfig::new(7, 3));
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! assert!(report.liveness_failure.is_none());
//! ```

mod checker;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use crate::ballot::Ballot;
use crate::config::Config;
use crate::event::Event;
use crate::id::{Incarnation, LeaseName, NodeId};
use crate::message::{Envelope, Message};
use crate::node::Node;
use crate::rng::Rng;
use crate::time::{Timestamp, nanos};
use checker::{Checker, ms};

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
    let jitter = (lease / 1000).max(Duration::from_millis(1));
    quarantine + exclusion + retransmit * 3 + MAX_NORMAL_DELAY * 10 + jitter * 8
}

/// Runs one seed.
pub fn run(config: &SimConfig) -> SimReport {
    Sim::new(config).run()
}

#[derive(Debug, Clone, Copy)]
struct Clock {
    offset: u64,
    rate: f64,
}

impl Clock {
    fn local(&self, real: u64) -> Timestamp {
        Timestamp::from_nanos(self.offset + (real as f64 * self.rate) as u64)
    }

    /// The first real instant at which the local clock reads at least `local`.
    fn real(&self, local: Timestamp) -> u64 {
        if local == Timestamp::MAX {
            return u64::MAX;
        }
        let since = local.as_nanos().saturating_sub(self.offset);
        let mut real = ((since as f64) / self.rate).ceil() as u64;
        while self.local(real) < local {
            real += 1;
        }
        while real > 0 && self.local(real - 1) >= local {
            real -= 1;
        }
        real
    }
}

#[derive(Debug)]
struct Host {
    id: NodeId,
    /// This host's configuration (the same on every host unless `split`).
    voters: Vec<NodeId>,
    observers: Vec<NodeId>,
    voter: bool,
    priority: Option<u8>,
    clock: Clock,
    node: Option<Node>,
    first_incarnation: u64,
    epoch: u64,
    paused: bool,
    buffer: Vec<(NodeId, u64, Payload)>,
    timer_gen: u64,
    timer_at: u64,
    /// This host's wall clock minus real time, in ms (NTP-grade: within 100 ms).
    wall_skew_ms: i64,
    /// When it last sent a Prepare (real time): it is probably mid-attempt.
    last_prepare: u64,
}

/// What travels between hosts: a batch or a hello, with the sender's fingerprint digest.
#[derive(Debug, Clone)]
enum Payload {
    Batch(Vec<Envelope>),
    Hello { wants_reply: bool },
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        from: NodeId,
        digest: u64,
        payload: Payload,
    },
    Timer {
        host: usize,
        generation: u64,
    },
    Fault,
    Restart {
        host: usize,
        epoch: u64,
    },
    Resume {
        host: usize,
        epoch: u64,
    },
    HealPartition {
        generation: u64,
    },
    EndLossBurst {
        generation: u64,
    },
    Heal,
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
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
                digest: 0xcbf2_9ce4_8422_2325,
            },
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
        // (PROTOCOL.md T4 as written), and a naive restart reuses its ballots.
        let naive = self.cfg.unsafe_is("reuse-ballot") || self.cfg.on_baseline();
        let node = self.hosts[host].node.as_mut()?;
        if naive {
            node.observe_wall_clock(wall);
        } else {
            node.raise_ballot_floor(wall);
        }
        Some(node)
    }

    fn deliver(&mut self, to: usize, from: NodeId, digest: u64, payload: Payload) {
        if self.hosts[to].node.is_some() && !self.hosts[to].paused {
            self.node_mut(to);
        }
        let h = &mut self.hosts[to];
        let Some(node) = h.node.as_mut() else {
            return;
        };
        if h.paused {
            h.buffer.push((from, digest, payload));
            return;
        }
        let local = h.clock.local(self.now);
        self.report.steps += 1;
        match payload {
            Payload::Batch(batch) => {
                self.report.deliveries += batch.len() as u64;
                node.handle_message(local, from, digest, batch);
            }
            Payload::Hello { wants_reply } => node.handle_hello(local, from, digest, wants_reply),
        }
        self.pump(to);
    }

    /// A paused node wakes: it handles everything that queued up, then its timers, all at
    /// the same (late) local time, as a stalled event loop would.
    fn resume(&mut self, host: usize) {
        self.hosts[host].paused = false;
        self.note(|| format!("node {} resumes", host + 1));
        let buffered = std::mem::take(&mut self.hosts[host].buffer);
        let local = self.hosts[host].clock.local(self.now);
        for (from, digest, payload) in buffered {
            self.report.steps += 1;
            if let Payload::Batch(batch) = &payload {
                self.report.deliveries += batch.len() as u64;
            }
            if let Some(node) = self.node_mut(host) {
                match payload {
                    Payload::Batch(batch) => node.handle_message(local, from, digest, batch),
                    Payload::Hello { wants_reply } => {
                        node.handle_hello(local, from, digest, wants_reply)
                    }
                }
            }
            self.pump(host);
        }
        if let Some(node) = self.node_mut(host) {
            node.handle_timeout(local);
        }
        self.report.steps += 1;
        self.pump(host);
    }

    fn start_node(&mut self, host: usize) {
        let reuse = self.cfg.unsafe_is("reuse-ballot");
        let h = &self.hosts[host];
        let restart = h.epoch > 0;
        let incarnation = if reuse || !restart {
            h.first_incarnation
        } else {
            self.rng.next_u64()
        };
        let floor = if reuse {
            WALL_EPOCH_MS
        } else {
            WALL_EPOCH_MS + self.now / 1_000_000
        };
        let mut config = Config::new(h.id, h.voters.clone());
        config.observers = h.observers.clone();
        config.single_node = h.voters.len() == 1;
        config.rho = self.cfg.rho;
        config.set_lease_duration(self.cfg.lease_duration);
        config.surrender_margin = Duration::ZERO;
        #[cfg(feature = "unsafe-rules")]
        {
            config.unsafe_rule = self.cfg.unsafe_rule;
        }
        let local = h.clock.local(self.now);
        let seed = self.rng.next_u64();
        let mut node = match Node::new(config, local, Incarnation(incarnation), floor, seed) {
            Ok(node) => node,
            Err(e) => {
                self.checker
                    .violations
                    .push(format!("node {} refused its configuration: {e}", h.id));
                return;
            }
        };
        node.record_accepts();
        for lease in &self.leases {
            if let Err(e) = node.join(local, lease.clone(), h.priority) {
                self.checker
                    .violations
                    .push(format!("node {} could not join {lease}: {e}", h.id));
            }
        }
        let h = &mut self.hosts[host];
        h.node = Some(node);
        h.epoch += 1;
        h.paused = false;
        self.note(|| format!("node {} starts (incarnation {incarnation:x})", host + 1));
        self.pump(host);
    }

    fn crash(&mut self, host: usize, down_for: u64) {
        let h = &mut self.hosts[host];
        if h.node.is_none() {
            return;
        }
        h.node = None;
        h.paused = false;
        h.buffer.clear();
        h.epoch += 1;
        h.timer_gen += 1;
        h.timer_at = u64::MAX;
        let epoch = h.epoch;
        let voter = h.voter;
        self.checker.end_all_claims(self.now, host);
        if voter {
            // Its acceptor state is gone from this instant, not from the restart.
            self.checker.restarted(1 << host);
        }
        self.note(|| format!("node {} crashes for {}", host + 1, ms(down_for)));
        self.push(self.now + down_for, Ev::Restart { host, epoch });
    }

    /// Takes everything the node wants done: acceptances (for the checker), events, messages,
    /// and its next wake-up.
    fn pump(&mut self, host: usize) {
        let now = self.now;
        let Some(node) = self.hosts[host].node.as_mut() else {
            return;
        };
        for (lease, ballot) in node.take_accept_log() {
            self.checker.accepted(&lease, ballot, host);
        }
        let owner = node.owner();
        let clock = self.hosts[host].clock;
        while let Some(event) = self.hosts[host].node.as_mut().and_then(Node::poll_event) {
            self.hash(host, &event);
            match event {
                Event::Elected {
                    lease,
                    token,
                    deadline,
                }
                | Event::Renewed {
                    lease,
                    token,
                    deadline,
                } => {
                    if !self.hosts[host].voter {
                        self.checker
                            .violations
                            .push(format!("observer {} was elected for {lease}", host + 1));
                    }
                    let end = clock.real(deadline);
                    if self.checker.holds(now, host, &lease) {
                        // A renewal: the claim continues under the new token.
                    } else {
                        self.report.elections += 1;
                        self.note(|| {
                            format!(
                                "node {} ELECTED {lease} token {token} until t={}",
                                host + 1,
                                ms(end)
                            )
                        });
                    }
                    let majority = self.hosts[host].voters.len() / 2 + 1;
                    self.checker
                        .claim(now, host, owner, &lease, token, end, majority);
                }
                Event::Surrendered {
                    lease,
                    token,
                    reason,
                } => {
                    self.checker.end_claim(now, host, &lease);
                    self.note(|| {
                        format!(
                            "node {} surrenders {lease} token {token} ({})",
                            host + 1,
                            reason.as_str()
                        )
                    });
                }
                _ => {}
            }
        }
        let digest = self.hosts[host]
            .node
            .as_ref()
            .map_or(0, Node::fingerprint_digest);
        while let Some(t) = self.hosts[host].node.as_mut().and_then(Node::poll_transmit) {
            self.hash(host, &(t.to, &t.messages));
            self.route(host, t.to, digest, Payload::Batch(t.messages));
        }
        while let Some(h) = self.hosts[host].node.as_mut().and_then(Node::poll_hello) {
            self.hash(host, &(h.to, h.wants_reply));
            let hello = Payload::Hello {
                wants_reply: h.wants_reply,
            };
            self.route(host, h.to, digest, hello);
        }
        let timeout = self.hosts[host].node.as_ref().and_then(Node::poll_timeout);
        self.hash(host, &timeout);
        let h = &mut self.hosts[host];
        let next = timeout.map_or(u64::MAX, |t| clock.real(t).max(now));
        if next != h.timer_at {
            h.timer_gen += 1;
            h.timer_at = next;
            if next != u64::MAX {
                let generation = h.timer_gen;
                self.push(next, Ev::Timer { host, generation });
            }
        }
    }

    fn route(&mut self, from: usize, to: NodeId, digest: u64, payload: Payload) {
        let Some(to) = self.hosts.iter().position(|h| h.id == to) else {
            return;
        };
        if let Payload::Batch(messages) = &payload {
            if self.cfg.trace && std::env::var_os("SIM_TRACE_MESSAGES").is_some() {
                for e in messages {
                    let line = format!("  {} -> {}: {} {:?}", from + 1, to + 1, e.lease, e.message);
                    self.note(|| line);
                }
            }
            if messages
                .iter()
                .any(|e| matches!(e.message, Message::Prepare { .. }))
            {
                self.hosts[from].last_prepare = self.now;
            }
        }
        let n = self.hosts.len();
        if self.cut[from * n + to] || self.rng.chance(self.loss) {
            return;
        }
        let from_id = self.hosts[from].id;
        let lease = nanos(self.cfg.lease_duration);
        let delay = |rng: &mut Rng, healed: bool| {
            if !healed && rng.chance(0.02) {
                // A straggler: reordered far behind its successors.
                rng.below(lease * 3 / 2)
            } else {
                50_000 + rng.below(nanos(MAX_NORMAL_DELAY) - 50_000)
            }
        };
        let deliver = |payload: Payload| Ev::Deliver {
            to,
            from: from_id,
            digest,
            payload,
        };
        if self.rng.chance(self.dup) {
            let d = delay(&mut self.rng, self.healed);
            self.push(self.now + d, deliver(payload.clone()));
        }
        if !self.healed && self.rng.chance(0.005) {
            // Redelivered much later, possibly after the addressee restarted.
            let d = lease / 2 + self.rng.below(lease * 3);
            self.push(self.now + d, deliver(payload.clone()));
        }
        let d = delay(&mut self.rng, self.healed);
        self.push(self.now + d, deliver(payload));
    }

    /// Injects one random fault and schedules the next.
    fn fault(&mut self) {
        if self.healed || self.now >= self.heal_at {
            return;
        }
        let lease = nanos(self.cfg.lease_duration);
        let next = self.now + lease / 10 + self.rng.below(lease);
        self.push(next, Ev::Fault);
        let n = self.hosts.len();
        let target = self.pick_target();
        let mut kind = self.rng.below(100);
        if self.cfg.split && kind <= 67 {
            // A split cluster is only detectable while its shared node is reachable: no
            // crashes, pauses or partitions (see `SimConfig::split`).
            kind = 68 + kind % 32;
        }
        match kind {
            0..=20 => {
                let down = lease / 20 + self.rng.below(lease * 3);
                self.crash(target, down);
            }
            21..=41 => {
                let h = &mut self.hosts[target];
                if h.node.is_some() && !h.paused {
                    h.paused = true;
                    let epoch = h.epoch;
                    let dur = lease / 5 + self.rng.below(lease * 24 / 5);
                    self.note(|| format!("node {} pauses for {}", target + 1, ms(dur)));
                    self.push(
                        self.now + dur,
                        Ev::Resume {
                            host: target,
                            epoch,
                        },
                    );
                }
            }
            42..=67 => {
                self.partition(target);
                self.partition_gen += 1;
                let dur = lease * 3 / 10 + self.rng.below(lease * 4);
                let generation = self.partition_gen;
                self.push(self.now + dur, Ev::HealPartition { generation });
            }
            82..=89 => self.forge(target),
            68..=81 => {
                let lease_name =
                    self.leases[self.rng.below(self.leases.len() as u64) as usize].clone();
                let local = self.hosts[target].clock.local(self.now);
                let paused = self.hosts[target].paused;
                if let Some(node) = self.node_mut(target).filter(|_| !paused) {
                    if node.resign(local, &lease_name).unwrap_or(false) {
                        self.report.steps += 1;
                        self.note(|| format!("node {} resigns {lease_name}", target + 1));
                    }
                    self.pump(target);
                }
            }
            _ => {
                self.loss = 0.3 + self.rng.unit() * 0.6;
                self.loss_gen += 1;
                let generation = self.loss_gen;
                let dur = lease / 5 + self.rng.below(lease * 2);
                let loss = self.loss;
                self.note(|| format!("loss {loss:.2} for {}", ms(dur)));
                self.push(self.now + dur, Ev::EndLossBurst { generation });
            }
        }
        let _ = n;
    }

    /// A faulty-but-authenticated peer: `target` sends every other host one message in its
    /// own name (the transport authenticates senders, so only the content is forged) with
    /// an extreme ballot: near `2^64`, just over the ballot bound B1, or just under it.
    fn forge(&mut self, target: usize) {
        let h = &self.hosts[target];
        let Some(node) = h.node.as_ref().filter(|_| !h.paused) else {
            return;
        };
        let digest = node.fingerprint_digest();
        let id = h.id;
        let floor = (WALL_EPOCH_MS + self.now / 1_000_000).saturating_add_signed(h.wall_skew_ms);
        let lead = crate::MAX_BALLOT_LEAD;
        let counter = match self.rng.below(4) {
            0 => u64::MAX,
            1 => u64::MAX - self.rng.below(1 << 20),
            // Clocks differ by up to 200 ms: 1000 ms over (under) is over (under) for all.
            2 => floor + lead + 1000 + self.rng.below(1 << 20),
            _ => floor + lead - 1000 - self.rng.below(1 << 20),
        };
        let ballot = Ballot {
            counter,
            incarnation: Incarnation(self.rng.next_u64()),
            node: id,
        };
        let lease_d = self.cfg.lease_duration;
        let message = match self.rng.below(4) {
            0 => Message::Prepare { ballot },
            1 => Message::Accept {
                ballot,
                lease_duration: lease_d,
            },
            2 => Message::Release { ballot },
            _ => Message::Learn {
                ballot,
                remaining: lease_d,
            },
        };
        let lease = self.leases[self.rng.below(self.leases.len() as u64) as usize].clone();
        self.note(|| format!("node {} forges {lease} {message:?}", target + 1));
        let envelope = Envelope { lease, message };
        for other in 0..self.hosts.len() {
            if other != target {
                let to = self.hosts[other].id;
                self.route(target, to, digest, Payload::Batch(vec![envelope.clone()]));
            }
        }
    }

    /// The master of a random lease most of the time, sometimes a node in the middle of an
    /// attempt, else any node.
    fn pick_target(&mut self) -> usize {
        let n = self.hosts.len();
        if self.rng.chance(0.3) {
            let recent = self.now.saturating_sub(50_000_000);
            let busy: Vec<usize> = (0..n)
                .filter(|&h| self.hosts[h].last_prepare > recent)
                .collect();
            if !busy.is_empty() {
                return busy[self.rng.below(busy.len() as u64) as usize];
            }
        }
        if self.rng.chance(0.6) {
            let lease = self.leases[self.rng.below(self.leases.len() as u64) as usize].clone();
            if let Some(h) = (0..n).find(|&h| self.checker.holds(self.now, h, &lease)) {
                return h;
            }
        }
        self.rng.below(n as u64) as usize
    }

    /// Cuts links in one of the partition shapes, around `target`.
    fn partition(&mut self, target: usize) {
        let n = self.hosts.len();
        self.cut.iter_mut().for_each(|c| *c = false);
        let shape = self.rng.below(6);
        let cut = |a: usize, b: usize, cut: &mut Vec<bool>| cut[a * n + b] = true;
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let name = match shape {
            0 => {
                for o in (0..n).filter(|&o| o != target) {
                    cut(target, o, &mut self.cut);
                    cut(o, target, &mut self.cut);
                }
                "isolated"
            }
            1 => {
                // A minority including the target, split from the rest.
                let size = 1 + self.rng.below((n as u64 - 1) / 2) as usize;
                let mut minority: Vec<usize> = order
                    .iter()
                    .copied()
                    .filter(|&o| o != target)
                    .take(size - 1)
                    .collect();
                minority.push(target);
                for a in 0..n {
                    for b in 0..n {
                        if minority.contains(&a) != minority.contains(&b) {
                            cut(a, b, &mut self.cut);
                        }
                    }
                }
                "split off with a minority"
            }
            2 => {
                for o in (0..n).filter(|&o| o != target) {
                    cut(target, o, &mut self.cut);
                }
                "one-way muted (hears, is not heard)"
            }
            3 => {
                for o in (0..n).filter(|&o| o != target) {
                    cut(o, target, &mut self.cut);
                }
                "one-way deafened (is heard, hears nothing)"
            }
            4 => {
                // Chained: a line; only neighbours talk.
                for i in 0..n {
                    for j in 0..n {
                        if i.abs_diff(j) > 1 {
                            cut(order[i], order[j], &mut self.cut);
                        }
                    }
                }
                "in a chain"
            }
            _ => {
                // Quorum loss: only the target talks to everyone; the others only to it.
                for a in 0..n {
                    for b in 0..n {
                        if a != b && a != target && b != target {
                            cut(a, b, &mut self.cut);
                        }
                    }
                }
                "the hub of a quorum-loss star"
            }
        };
        self.note(|| format!("partition: node {} {name}", target + 1));
    }
}
