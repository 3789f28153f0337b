//! A hand-driven cluster of `gen_paxos_core::Node`s for deterministic scenario tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use gen_paxos_core::{
    Ballot, Config, Envelope, Event, Incarnation, LeaseName, Message, Node, NodeId, Timestamp,
    UnsafeRule,
};

/// Delivers a batch from a node of the same configuration (its fingerprint digest is the
/// receiver's own).
pub trait Recv {
    fn recv(&mut self, now: Timestamp, from: NodeId, batch: Vec<Envelope>);
}

impl Recv for Node {
    fn recv(&mut self, now: Timestamp, from: NodeId, batch: Vec<Envelope>) {
        let digest = self.fingerprint_digest();
        self.handle_message(now, from, digest, batch);
    }
}

pub const LEASE: Duration = Duration::from_secs(1);

pub fn t(ms: u64) -> Timestamp {
    Timestamp::from_nanos(ms * 1_000_000)
}

pub fn lease() -> LeaseName {
    LeaseName::new("x").expect("valid name")
}

pub struct Wire {
    pub from: NodeId,
    pub to: NodeId,
    pub envelope: Envelope,
}

/// A hand-driven cluster on one shared timeline: messages wait in `wire` until delivered.
pub struct Cluster {
    pub voters: Vec<NodeId>,
    pub observers: Vec<NodeId>,
    pub rule: Option<UnsafeRule>,
    pub nodes: BTreeMap<NodeId, Node>,
    pub wire: Vec<Wire>,
    pub events: Vec<(NodeId, Event)>,
    /// Renewals run both rounds (`Config::one_round_renewals` off) on nodes started from
    /// now on.
    pub two_round_renewals: bool,
}

impl Cluster {
    pub fn new(n: u64, rule: Option<UnsafeRule>) -> Self {
        Self::with_observers(n, &[], rule)
    }

    /// `n` voters (all started) and observers in the configuration (not started: tests
    /// speak for them).
    pub fn with_observers(n: u64, observers: &[u64], rule: Option<UnsafeRule>) -> Self {
        let voters: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let mut c = Cluster {
            voters: voters.clone(),
            observers: observers.iter().copied().map(NodeId).collect(),
            rule,
            nodes: BTreeMap::new(),
            wire: Vec::new(),
            events: Vec::new(),
            two_round_renewals: false,
        };
        for &id in &voters {
            c.start(id, t(0), id.0 * 100);
        }
        // The observers the tests speak for have the cluster's fingerprint.
        let observers = c.observers.clone();
        for node in c.nodes.values_mut() {
            let digest = node.fingerprint_digest();
            for &o in &observers {
                node.handle_hello(t(0), o, digest, false);
            }
        }
        c
    }

    /// Delivers every hello at once: the nodes learn each other's (equal) fingerprints,
    /// so no probe is pending and `poll_timeout` shows the lease's timers only.
    pub fn settle(&mut self, now: Timestamp) {
        loop {
            let mut hellos = Vec::new();
            for (&id, node) in &mut self.nodes {
                while let Some(h) = node.poll_hello() {
                    hellos.push((id, node.fingerprint_digest(), h));
                }
            }
            if hellos.is_empty() {
                return;
            }
            for (from, digest, h) in hellos {
                if let Some(node) = self.nodes.get_mut(&h.to) {
                    node.handle_hello(now, from, digest, h.wants_reply);
                }
            }
        }
    }

    pub fn config(&self, id: NodeId) -> Config {
        let mut cfg = Config::new(id, self.voters.clone());
        cfg.observers = self.observers.clone();
        cfg.single_node = self.voters.len() == 1;
        cfg.set_lease_duration(LEASE);
        cfg.surrender_margin = Duration::ZERO;
        cfg.jitter = (LEASE / 1000).max(Duration::from_millis(1));
        cfg.unsafe_rule = self.rule;
        cfg.one_round_renewals = !self.two_round_renewals;
        cfg
    }

    /// (Re)starts a node at `now` with incarnation `inc`; it starts with counter 0.
    pub fn start(&mut self, id: NodeId, now: Timestamp, inc: u64) {
        let node = Node::new(self.config(id), now, Incarnation(inc), 0, 7).expect("valid config");
        self.nodes.insert(id, node);
        self.settle(now);
    }

    pub fn node(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&NodeId(id)).expect("node exists")
    }

    pub fn collect(&mut self, id: NodeId) {
        let node = self.nodes.get_mut(&id).expect("node exists");
        while let Some(e) = node.poll_event() {
            self.events.push((id, e));
        }
        while let Some(tx) = node.poll_transmit() {
            for envelope in tx.messages {
                self.wire.push(Wire {
                    from: id,
                    to: tx.to,
                    envelope,
                });
            }
        }
    }

    /// Makes node `id` stand for the lease and fires its first attempt (within a jitter
    /// step of `now`); returns when Prepare was sent.
    pub fn campaign(&mut self, id: u64, now: Timestamp) -> Timestamp {
        self.node(id).join(now, lease(), Some(3)).expect("join");
        let at = self
            .node(id)
            .poll_timeout()
            .expect("a candidate has a timer")
            .max(now);
        self.node(id).handle_timeout(at);
        self.collect(NodeId(id));
        at
    }

    pub fn timeout(&mut self, id: u64, now: Timestamp) {
        self.node(id).handle_timeout(now);
        self.collect(NodeId(id));
    }

    /// Delivers, at `now`, every queued message matching `pick` (one batch each).
    pub fn deliver(&mut self, now: Timestamp, pick: impl Fn(&Wire) -> bool) -> usize {
        let (chosen, rest): (Vec<Wire>, Vec<Wire>) =
            std::mem::take(&mut self.wire).into_iter().partition(&pick);
        self.wire = rest;
        let n = chosen.len();
        for w in chosen {
            if let Some(node) = self.nodes.get_mut(&w.to) {
                node.recv(now, w.from, vec![w.envelope]);
                self.collect(w.to);
            }
        }
        n
    }

    pub fn drop_where(&mut self, pick: impl Fn(&Wire) -> bool) {
        self.wire.retain(|w| !pick(w));
    }

    pub fn elected(&self, id: u64) -> Vec<Ballot> {
        self.events
            .iter()
            .filter_map(|(n, e)| match e {
                Event::Elected { token, .. } if *n == NodeId(id) => Some(*token),
                _ => None,
            })
            .collect()
    }

    pub fn masters(&self, now: Timestamp) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_master(now, &lease()))
            .map(|(id, _)| *id)
            .collect()
    }
}

pub fn is(w: &Wire, from: u64, to: u64) -> bool {
    w.from == NodeId(from) && w.to == NodeId(to)
}
pub fn kind(w: &Wire) -> &'static str {
    match w.envelope.message {
        Message::Prepare { .. } => "prepare",
        Message::Promise { .. } => "promise",
        Message::Accept { .. } => "accept",
        Message::Accepted { .. } => "accepted",
        Message::Reject { .. } => "reject",
        Message::Learn { .. } => "learn",
        Message::Release { .. } => "release",
        Message::Log(_) => "log",
        Message::Ask(_) => "ask",
    }
}

// Past every node's quarantine (Q is about 1002 ms for a 1 s lease).
pub const START: u64 = 1100;
