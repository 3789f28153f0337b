//! The checked system: the hosts' nodes, the messages in flight, real time, and what the
//! properties remember; the steps ([`Action`]) and how each one changes it.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::ballot::Ballot;
use crate::config::Config;

use crate::id::{Incarnation, LeaseName, NodeId, Owner};
use crate::message::Envelope;
use crate::node::Node;
use crate::sim::host::Clock;
use crate::time::nanos;

use super::CheckConfig;
use super::fingerprint::Fp128;
use super::log::LogWorld;

/// The simulated wall clock at real time zero (Unix ms), as in the simulator.
const WALL_EPOCH_MS: u64 = 1_700_000_000_000;
/// Every host's monotonic clock reads this at real time zero (timestamps of different
/// hosts are never compared, so one offset loses nothing).
const CLOCK_OFFSET: u64 = 1_000_000_000_000;

/// One step of a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Deliver the message in flight at this index (in the canonical order of the
    /// messages in flight: by addressee, sender, content) and remove it.
    Deliver(usize),
    /// Deliver the message at this index and keep it in flight: it may arrive again.
    Duplicate(usize),
    /// Fire this host's timer (host index from 0), first moving real time to when it is
    /// due if that is later.
    Fire(usize),
    /// Let real time pass by [`CheckConfig::tick`].
    Tick,
    /// Crash this host: its node and all its volatile state are gone.
    Crash(usize),
    /// Start a crashed host again, with a fresh incarnation.
    Restart(usize),
    /// The host's application resigns the lease it holds.
    Resign(usize),
    /// Everything the host wrote is synced to its disk (with the log on).
    Sync(usize),
    /// The host's application appends the next client value (on the master, with the log
    /// on).
    Append(usize),
    /// The host's application asks the next client value for `key-0` (with the log on).
    Ask(usize),
    /// The host's application asks which value is chosen for `key-0`, proposing none
    /// (with the log on).
    Get(usize),
    /// The host's application closes `key-0`'s instance (with the log on).
    Forget(usize),
    /// The host's application snapshots what it applied and compacts the log below it
    /// (with the log on).
    Compact(usize),
}

/// A batch in flight from one host to another.
#[derive(Debug, Clone)]
pub(super) struct Packet {
    /// Fingerprint of the whole packet: its canonical sort key and its hash.
    key: u64,
    pub(super) from: usize,
    pub(super) to: usize,
    /// When it was sent (real time), with a link capacity; 0 without one, where the age
    /// of a message changes nothing and equal messages of different ages merge.
    sent: u64,
    digest: u64,
    pub(super) messages: Vec<Envelope>,
}

impl Packet {
    fn order(&self) -> (usize, usize, u64, u64) {
        (self.to, self.from, self.sent, self.key)
    }
}

/// A host's claim of authority, in real nanoseconds.
#[derive(Debug, Clone, Copy, Hash)]
pub(super) struct Claim {
    pub(super) token: Ballot,
    pub(super) start: u64,
    pub(super) end: u64,
}

/// One state of the checked system.
#[derive(Debug, Clone)]
pub(super) struct World {
    /// Real time, in nanoseconds.
    pub(super) now: u64,
    /// Each host's node; `None` while crashed. Shared between a state and the states
    /// after it until a step changes it (a step changes one node, mostly).
    pub(super) nodes: Vec<Option<Arc<Node>>>,
    /// Each node's fingerprint, 0 when it changed since it was last taken.
    pub(super) node_fps: Vec<u128>,
    /// Each host's restarts so far (its incarnation follows).
    pub(super) restarts: Vec<u32>,
    /// Messages in flight, in canonical order.
    pub(super) net: Vec<Packet>,
    /// Each host's current claim of authority (expired claims are dropped).
    pub(super) claims: Vec<Option<Claim>>,
    /// The last owner's token, and the voters restarted since it was issued.
    pub(super) last: Option<(Owner, Ballot)>,
    pub(super) restarted_since: u64,
    /// Distinct acceptors (host bits) that accepted each ballot, sorted by ballot.
    pub(super) accepted_by: Vec<(Ballot, u64)>,
    pub(super) crashes: u8,
    pub(super) duplicates: u8,
    pub(super) ticks: u8,
    pub(super) resigns: u8,
    /// Timer firings left (`u8::MAX`: no budget).
    pub(super) fires: u8,
    /// The replicated log's storage, applications and checks (with the log on).
    pub(super) log: Option<Arc<LogWorld>>,
    /// The property this state violates, if any (the history ends here).
    pub(super) violation: Option<String>,
    /// What happened in the last step, when tracing.
    pub(super) notes: Vec<String>,
    /// After a delivery: the fingerprint of the state as it would be had the message
    /// been lost instead (see `search.rs`, "deliveries that change nothing").
    pub(super) if_lost: Option<u128>,
}

impl Hash for World {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.now.hash(state);
        debug_assert!(
            self.node_fps.iter().all(|&f| f != 0),
            "fingerprints are fresh"
        );
        self.node_fps.hash(state);
        self.restarts.hash(state);
        for p in &self.net {
            p.order().hash(state);
        }
        self.claims.hash(state);
        self.last.hash(state);
        self.restarted_since.hash(state);
        self.accepted_by.hash(state);
        self.log.hash(state);
        (
            self.crashes,
            self.duplicates,
            self.ticks,
            self.resigns,
            self.fires,
        )
            .hash(state);
    }
}

/// What stays fixed during a search from one initial state: the configuration and the
/// hosts' clocks.
#[derive(Debug, Clone)]
pub(super) struct Context {
    pub(super) cfg: CheckConfig,
    pub(super) clocks: Vec<Clock>,
    /// The clock choice of each host (`u` in `1 + rho * u`).
    pub(super) clock: Vec<f64>,
    pub(super) lease: LeaseName,
    /// Ballots follow the wall clock only from process start (`baseline`, `reuse-ballot`).
    pub(super) naive_wall: bool,
    /// A restart keeps its incarnation and its first wall-clock floor (`reuse-ballot`).
    pub(super) reuse: bool,
    pub(super) majority: usize,
    /// Record notes of what happens (for printing a counterexample).
    pub(super) tracing: bool,
}

impl Context {
    pub(super) fn new(cfg: &CheckConfig, clock: &[f64]) -> Result<Context, String> {
        if cfg.voters == 0 || cfg.voters > 8 {
            return Err(format!("voters must be 1 to 8, not {}", cfg.voters));
        }
        if cfg.depth > 250 {
            return Err(format!("depth must be at most 250, not {}", cfg.depth));
        }
        if clock.len() != cfg.voters {
            return Err(format!(
                "{} clock choices for {} hosts",
                clock.len(),
                cfg.voters
            ));
        }
        let drift = cfg.drift();
        let clocks = clock
            .iter()
            .map(|u| Clock {
                offset: CLOCK_OFFSET,
                rate: 1.0 + drift * u,
            })
            .collect();
        Ok(Context {
            cfg: cfg.clone(),
            clocks,
            clock: clock.to_vec(),
            lease: LeaseName::new("lease-0").expect("a static name is valid"),
            naive_wall: cfg.unsafe_is("reuse-ballot") || cfg.on_baseline(),
            reuse: cfg.unsafe_is("reuse-ballot"),
            majority: cfg.voters / 2 + 1,
            tracing: false,
        })
    }

    /// The state's fingerprint, telling initial clock assignments apart.
    pub(super) fn fingerprint(&self, world: &mut World) -> u128 {
        for (node, fp) in world.nodes.iter().zip(&mut world.node_fps) {
            if *fp == 0 {
                let mut h = Fp128::new(1);
                node.hash(&mut h);
                *fp = h.finish128() | 1;
            }
        }
        let mut h = Fp128::new(0);
        for u in &self.clock {
            u.to_bits().hash(&mut h);
        }
        world.hash(&mut h);
        h.finish128()
    }

    /// Every host started at real time zero.
    pub(super) fn initial(&self) -> World {
        let n = self.cfg.voters;
        let mut world = World {
            now: 0,
            nodes: vec![None; n],
            node_fps: vec![0; n],
            restarts: vec![0; n],
            net: Vec::new(),
            claims: vec![None; n],
            last: None,
            restarted_since: 0,
            accepted_by: Vec::new(),
            crashes: self.cfg.crashes,
            duplicates: self.cfg.duplicates,
            ticks: self.cfg.ticks,
            resigns: self.cfg.resigns,
            fires: self.cfg.fires.unwrap_or(u8::MAX),
            log: self.cfg.log.then(|| Arc::new(LogWorld::new(n, &self.cfg))),
            violation: None,
            notes: Vec::new(),
            if_lost: None,
        };
        for h in 0..n {
            self.start(&mut world, h);
        }
        world
    }

    /// The steps possible in `world`, in a fixed order.
    pub(super) fn enabled(&self, world: &World) -> Vec<Action> {
        let mut actions = Vec::new();
        // Messages to a running host, one of each run of identical ones.
        let deliverable: Vec<usize> = (0..world.net.len())
            .filter(|&i| {
                let p = &world.net[i];
                world.nodes[p.to].is_some() && (i == 0 || world.net[i - 1].order() != p.order())
            })
            .collect();
        actions.extend(deliverable.iter().map(|&i| Action::Deliver(i)));
        for h in 0..world.nodes.len() {
            if world.fires > 0 && self.due(world, h).is_some() {
                actions.push(Action::Fire(h));
            }
        }
        if world.duplicates > 0 {
            actions.extend(deliverable.iter().map(|&i| Action::Duplicate(i)));
        }
        if world.ticks > 0 {
            actions.push(Action::Tick);
        }
        for (h, node) in world.nodes.iter().enumerate() {
            match node {
                Some(node) => {
                    if world.crashes > 0 {
                        actions.push(Action::Crash(h));
                    }
                    if world.resigns > 0 && node.is_master(self.local(world, h), &self.lease) {
                        actions.push(Action::Resign(h));
                    }
                }
                None => actions.push(Action::Restart(h)),
            }
        }
        self.log_enabled(world, &mut actions);
        actions
    }

    /// Takes one step. The caller makes sure it is enabled.
    pub(super) fn apply(&self, world: &mut World, action: &Action) {
        world.notes.clear();
        world.if_lost = None;
        if self.tracing {
            let line = self.describe(world, action);
            world.notes.push(line);
        }
        match *action {
            Action::Deliver(i) | Action::Duplicate(i) => {
                let packet = if matches!(action, Action::Deliver(_)) {
                    world.net.remove(i)
                } else {
                    world.duplicates -= 1;
                    world.net[i].clone()
                };
                world.if_lost = Some(self.fingerprint(world));
                let to = packet.to;
                let local = self.local(world, to);
                if let Some(node) = self.node_mut(world, to) {
                    node.handle_message(
                        local,
                        NodeId(packet.from as u64 + 1),
                        packet.digest,
                        packet.messages,
                    );
                }
                self.pump(world, to);
            }
            Action::Fire(h) => {
                if self.cfg.fires.is_some() {
                    world.fires -= 1;
                }
                let due = self.due(world, h).unwrap_or(world.now);
                self.advance(world, due.max(world.now));
                let local = self.local(world, h);
                if let Some(node) = self.node_mut(world, h) {
                    node.handle_timeout(local);
                }
                self.pump(world, h);
            }
            Action::Tick => {
                world.ticks -= 1;
                self.advance(world, world.now + nanos(self.cfg.tick));
            }
            Action::Crash(h) => {
                world.crashes -= 1;
                world.nodes[h] = None;
                world.node_fps[h] = 0;
                if let Some(c) = &mut world.claims[h] {
                    c.end = c.end.min(world.now);
                }
                world.restarted_since |= 1 << h;
                self.log_crash(world, h);
                self.expire(world);
            }
            Action::Restart(h) => {
                world.restarts[h] += 1;
                self.start(world, h);
            }
            Action::Resign(h) => {
                world.resigns -= 1;
                let local = self.local(world, h);
                let lease = self.lease.clone();
                if let Some(node) = self.node_mut(world, h) {
                    let _ = node.resign(local, &lease);
                }
                self.pump(world, h);
            }
            Action::Sync(_)
            | Action::Append(_)
            | Action::Ask(_)
            | Action::Get(_)
            | Action::Forget(_)
            | Action::Compact(_) => {
                self.log_apply(world, action);
            }
        }
        if world.violation.is_none() {
            self.check_reads(world);
        }
    }

    /// When `host`'s timer is due, in real time (`None`: crashed, or no timer).
    pub(super) fn due(&self, world: &World, host: usize) -> Option<u64> {
        let at = world.nodes[host].as_deref()?.poll_timeout()?;
        Some(self.clocks[host].real(at))
    }

    /// Whether the link between two hosts is down ([`CheckConfig::cut`]).
    fn is_cut(&self, a: usize, b: usize) -> bool {
        let (a, b) = (a as u64 + 1, b as u64 + 1);
        self.cfg.cut.iter().any(|&l| l == (a, b) || l == (b, a))
    }

    pub(super) fn local(&self, world: &World, host: usize) -> crate::time::Timestamp {
        self.clocks[host].local(world.now)
    }

    /// The host's node, told the wall clock first (T4's ballot floor), as the simulator
    /// and the runtime do.
    pub(super) fn node_mut<'w>(&self, world: &'w mut World, host: usize) -> Option<&'w mut Node> {
        let wall = WALL_EPOCH_MS + world.now / 1_000_000;
        let node = Arc::make_mut(world.nodes[host].as_mut()?);
        world.node_fps[host] = 0;
        if self.naive_wall {
            node.observe_wall_clock(wall);
        } else {
            node.raise_ballot_floor(wall);
        }
        Some(node)
    }

    /// Moves real time to `to`, and every node's ballot floor with it (T4). A runtime
    /// raises the floor before each input, to the wall clock then; raising it as time
    /// passes gives every input the same floor, and keeps a delivery that changes nothing
    /// else from changing the floor.
    fn advance(&self, world: &mut World, to: u64) {
        world.now = to;
        for h in 0..world.nodes.len() {
            let _ = self.node_mut(world, h);
        }
        self.expire(world);
    }

    fn start(&self, world: &mut World, host: usize) {
        let id = NodeId(host as u64 + 1);
        let voters: Vec<NodeId> = (1..=self.cfg.voters as u64).map(NodeId).collect();
        let first = (host as u64 + 1) * 100;
        let incarnation = if self.reuse {
            first
        } else {
            first + u64::from(world.restarts[host])
        };
        let floor = if self.reuse {
            WALL_EPOCH_MS
        } else {
            WALL_EPOCH_MS + world.now / 1_000_000
        };
        let mut config = Config::new(id, voters);
        config.single_node = self.cfg.voters == 1;
        config.rho = self.cfg.rho;
        config.set_lease_duration(self.cfg.lease_duration);
        config.surrender_margin = Duration::ZERO;
        config.jitter = crate::sim::sim_jitter(self.cfg.lease_duration);
        config.retransmit_interval = self.cfg.retransmit;
        #[cfg(feature = "unsafe-rules")]
        {
            config.unsafe_rule = self.cfg.unsafe_rule;
        }
        let local = self.local(world, host);
        let mut node = match Node::new(
            config,
            local,
            Incarnation(incarnation),
            floor,
            host as u64 + 1,
        ) {
            Ok(node) => node,
            Err(e) => {
                world.violation = Some(format!("node {id} refused its configuration: {e}"));
                return;
            }
        };
        node.record_accepts();
        self.log_start(world, host, &mut node);
        let priority = self.cfg.priorities.get(host).copied().unwrap_or(Some(0));
        if let Err(e) = node.join(local, self.lease.clone(), priority) {
            world.violation = Some(format!("node {id} could not join: {e}"));
            return;
        }
        world.nodes[host] = Some(Arc::new(node));
        world.node_fps[host] = 0;
        if self.tracing {
            world
                .notes
                .push(format!("  node {id} starts, incarnation {incarnation}"));
        }
        self.pump(world, host);
    }

    /// Takes what `host` (and any host its hellos reach) wants done: acceptances and
    /// events for the properties, messages into the network. Hellos arrive at once.
    pub(super) fn pump(&self, world: &mut World, host: usize) {
        let mut work = vec![host];
        while let Some(h) = work.pop() {
            let Some(node) = world.nodes[h].as_mut().map(Arc::make_mut) else {
                continue;
            };
            world.node_fps[h] = 0;
            let owner = node.owner();
            let accepts = node.take_accept_log();
            let mut events = Vec::new();
            while let Some(e) = node.poll_event() {
                events.push(e);
            }
            let digest = node.fingerprint_digest();
            let mut sends = Vec::new();
            while let Some(t) = node.poll_transmit() {
                sends.push(t);
            }
            let mut hellos = Vec::new();
            while let Some(hello) = node.poll_hello() {
                hellos.push(hello);
            }
            let wrote = match world.log.as_mut() {
                Some(log) => self.take_writes(log, h, node),
                None => false,
            };
            for (_, ballot) in accepts {
                match world.accepted_by.binary_search_by(|(b, _)| b.cmp(&ballot)) {
                    Ok(i) => world.accepted_by[i].1 |= 1 << h,
                    Err(i) => world.accepted_by.insert(i, (ballot, 1 << h)),
                }
            }
            for event in events {
                self.observe(world, h, owner, event);
            }
            for t in sends {
                let to = (t.to.0 as usize).wrapping_sub(1);
                if to >= world.nodes.len() || self.is_cut(h, to) {
                    continue;
                }
                let mut packet = Packet {
                    key: 0,
                    from: h,
                    to,
                    sent: if self.cfg.link_capacity.is_some() {
                        world.now
                    } else {
                        0
                    },
                    digest,
                    messages: t.messages,
                };
                let mut fp = Fp128::new(7);
                (packet.from, packet.to, packet.digest, &packet.messages).hash(&mut fp);
                packet.key = fp.finish();
                let at = world.net.partition_point(|p| p.order() <= packet.order());
                world.net.insert(at, packet);
                if let Some(cap) = self.cfg.link_capacity {
                    // The link keeps its newest `cap` messages: older ones are lost.
                    let link: Vec<usize> = (0..world.net.len())
                        .filter(|&i| world.net[i].from == h && world.net[i].to == to)
                        .collect();
                    if link.len() > cap {
                        world.net.remove(link[0]);
                    }
                }
            }
            for hello in hellos {
                let to = (hello.to.0 as usize).wrapping_sub(1);
                if to >= world.nodes.len() || world.nodes[to].is_none() {
                    continue;
                }
                let local = self.local(world, to);
                if let Some(node) = self.node_mut(world, to) {
                    node.handle_hello(local, NodeId(h as u64 + 1), digest, hello.wants_reply);
                }
                work.push(to);
            }
            if wrote && self.cfg.instant_sync {
                // Synced at once: the node hears so, and has more to do.
                self.sync(world, h);
                work.push(h);
            }
        }
    }
}
