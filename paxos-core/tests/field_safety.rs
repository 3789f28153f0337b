//! Field safety in the core: a wrong configuration or one hostile message never makes two
//! masters or a dead cluster. Each test runs with the rule intact (safe outcome asserted)
//! and, where a test-only switch breaks it, weakened (unsafe outcome asserted).
//!
//! - B1 ballot bound and B2 observers' ballots (a crafted `(2^64-1, 2^64-1, 4)` Prepare
//!   stopped every election of a real cluster);
//! - F1–F3 cluster fingerprints (mismatched voter sets made two masters silently);
//! - bounded acceptor memory (Prepares for 100,000 names were never forgotten).

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use common::*;
use gen_paxos_core::{
    Ballot, Config, Envelope, Event, Incarnation, LeaseName, MAX_BALLOT_LEAD, Message, Node,
    NodeId, SurrenderReason, Timestamp, UnsafeRule,
};

/// Unix milliseconds at local time zero, for the ballot floor.
const WALL: u64 = 1_700_000_000_000;

fn prepare(name: &LeaseName, ballot: Ballot) -> Envelope {
    Envelope {
        lease: name.clone(),
        message: Message::Prepare { ballot },
    }
}

/// Runs a uniform cluster until `until`: every queued message is delivered at once, timers
/// fire in order, and the wall-clock floor follows local time.
fn run(c: &mut Cluster, from: Timestamp, until: Timestamp) {
    let mut now = from;
    loop {
        for node in c.nodes.values_mut() {
            node.raise_ballot_floor(WALL + now.as_nanos() / 1_000_000);
        }
        while !c.wire.is_empty() {
            c.deliver(now, |_| true);
        }
        let Some(next) = c.nodes.values().filter_map(Node::poll_timeout).min() else {
            return;
        };
        if next > until {
            return;
        }
        now = now.max(next);
        let due: Vec<u64> = c
            .nodes
            .iter()
            .filter(|(_, n)| n.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| id.0)
            .collect();
        for id in due {
            c.node(id)
                .raise_ballot_floor(WALL + now.as_nanos() / 1_000_000);
            c.timeout(id, now);
        }
    }
}

/// Node 1 is elected; then `from` sends every voter one Prepare with `ballot`; the cluster
/// runs for four leases. Returns whether anyone is master at the end, and node 1's stats.
fn crafted_prepare(
    rule: Option<UnsafeRule>,
    ballot: Ballot,
) -> (Vec<NodeId>, gen_paxos_core::Stats) {
    let mut c = Cluster::with_observers(3, &[4], rule);
    for node in c.nodes.values_mut() {
        node.raise_ballot_floor(WALL);
    }
    c.campaign(1, t(START));
    run(&mut c, t(START), t(START + 20));
    assert_eq!(c.elected(1).len(), 1, "node 1 is master before the attack");
    for to in 1..=3 {
        c.node(to)
            .recv(t(START + 30), ballot.node, vec![prepare(&lease(), ballot)]);
        c.collect(NodeId(to));
    }
    // Whatever is answered goes to the attacker, not to the cluster.
    c.drop_where(|w| w.to == ballot.node);
    let end = t(START + 4000);
    run(&mut c, t(START + 30), end);
    (c.masters(end), c.node(1).stats())
}

/// B1: the crafted ballot, sent by a voter: dropped, counted, and the master keeps
/// renewing. Without the bound the counters wrap and no master is ever elected again.
#[test]
fn a_maximal_ballot_from_a_voter_is_dropped_and_the_master_stays() {
    let crafted = Ballot {
        counter: u64::MAX,
        incarnation: Incarnation(u64::MAX),
        node: NodeId(3),
    };
    let (masters, stats) = crafted_prepare(None, crafted);
    assert_eq!(masters, vec![NodeId(1)]);
    assert_eq!(stats.dropped_absurd_ballot, 1);
    let (masters, _) = crafted_prepare(Some(UnsafeRule::UnboundedBallots), crafted);
    assert!(
        masters.is_empty(),
        "with wrapping counters nobody is master: {masters:?}"
    );
}

/// B2: the same Prepare from an observer is dropped as invalid before its ballot is even
/// looked at; so is an in-bound one. With the switch an observer's in-bound Prepare is
/// promised (and the master's renewals are refused for a while).
#[test]
fn an_observers_prepare_is_dropped() {
    let crafted = Ballot {
        counter: u64::MAX,
        incarnation: Incarnation(u64::MAX),
        node: NodeId(4),
    };
    let (masters, stats) = crafted_prepare(None, crafted);
    assert_eq!(masters, vec![NodeId(1)]);
    assert_eq!((stats.dropped_invalid, stats.dropped_absurd_ballot), (1, 0));
    let plausible = Ballot {
        counter: WALL + 5_000,
        incarnation: Incarnation(9),
        node: NodeId(4),
    };
    let (_, stats) = crafted_prepare(None, plausible);
    assert_eq!(stats.dropped_invalid, 1);
    let (_, stats) = crafted_prepare(Some(UnsafeRule::ObserverBallots), plausible);
    assert_eq!(stats.dropped_invalid, 0, "the switch lets it through");
}

/// B2 for the other three: an observer's Accept, Learn and Release are dropped. With the
/// switch they are taken: the learners believe the observer is master.
#[test]
fn an_observers_accept_learn_and_release_are_dropped() {
    let outcome = |rule| {
        let mut c = Cluster::with_observers(3, &[4], rule);
        for id in [2, 3] {
            c.node(id).join(t(START), lease(), None).expect("join");
        }
        c.campaign(1, t(START));
        run(&mut c, t(START), t(START + 20));
        let ballot = Ballot {
            counter: WALL + START + 100_000,
            incarnation: Incarnation(9),
            node: NodeId(4),
        };
        let messages = [
            Message::Accept {
                ballot,
                lease_duration: LEASE,
            },
            Message::Learn {
                ballot,
                remaining: LEASE,
            },
            Message::Release { ballot },
        ];
        let mut learned = None;
        for (i, message) in messages.into_iter().enumerate() {
            for to in 1..=3 {
                let envelope = Envelope {
                    lease: lease(),
                    message: message.clone(),
                };
                c.node(to).recv(t(START + 30), NodeId(4), vec![envelope]);
                c.collect(NodeId(to));
            }
            if i == 1 {
                // After the Learn, before the Release.
                learned = c.node(2).master(&lease()).map(|m| m.node);
            }
        }
        c.drop_where(|w| w.to == NodeId(4));
        let invalid = c.node(2).stats().dropped_invalid;
        run(&mut c, t(START + 30), t(START + 1500));
        (invalid, learned, c.masters(t(START + 1500)))
    };
    assert_eq!(outcome(None), (3, Some(NodeId(1)), vec![NodeId(1)]));
    let (invalid, learned, _) = outcome(Some(UnsafeRule::ObserverBallots));
    assert_eq!(invalid, 0);
    assert_eq!(
        learned,
        Some(NodeId(4)),
        "the observer was taken for the master"
    );
}

/// B1 with per-lease counters: a ballot just under the bound on one lease is taken (it
/// could be honest), pushes only that lease's counters, and its next election waits a
/// millisecond for the floor rather than failing; another lease is untouched.
#[test]
fn a_pushed_counter_slows_only_its_own_lease() {
    let mut c = Cluster::new(3, None);
    let y = LeaseName::new("y").expect("valid");
    for node in c.nodes.values_mut() {
        node.raise_ballot_floor(WALL + START);
    }
    c.node(1).join(t(START), lease(), Some(3)).expect("join");
    c.node(1).join(t(START), y.clone(), Some(3)).expect("join");
    let pushed = Ballot {
        counter: WALL + START + MAX_BALLOT_LEAD,
        incarnation: Incarnation(9),
        node: NodeId(3),
    };
    for to in 1..=2 {
        c.node(to)
            .recv(t(START), NodeId(3), vec![prepare(&lease(), pushed)]);
        c.collect(NodeId(to));
    }
    c.drop_where(|w| w.to == NodeId(3));
    assert_eq!(
        c.node(1).stats().dropped_absurd_ballot,
        0,
        "at the bound is taken"
    );
    run(&mut c, t(START), t(START + 50));
    let tokens: BTreeMap<String, Ballot> = c
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Elected { lease, token, .. } => Some((lease.to_string(), *token)),
            _ => None,
        })
        .collect();
    assert!(tokens["y"].counter < WALL + START + 10, "{:?}", tokens["y"]);
    assert!(tokens["x"] > pushed, "{:?}", tokens["x"]);
}

// ---- fingerprints ------------------------------------------------------------------------

/// One message in flight: from, to, the sender's fingerprint digest, and a batch or (for
/// `None`) a hello that wants a reply or not.
type InFlight = (NodeId, NodeId, u64, Option<Vec<Envelope>>, bool);

/// A network of nodes that may be configured differently. Messages are delivered at
/// once, in order; every batch and hello carries its sender's fingerprint digest.
struct Net {
    nodes: BTreeMap<NodeId, Node>,
    queue: VecDeque<InFlight>,
    events: Vec<(Timestamp, NodeId, Event)>,
    now: Timestamp,
    /// Most nodes that held the lease at one instant.
    most_masters: usize,
}

impl Net {
    fn new() -> Self {
        Net {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            events: Vec::new(),
            now: Timestamp::ZERO,
            most_masters: 0,
        }
    }

    /// Starts node `id` with voter set `voters`, standing for the lease.
    fn start(&mut self, id: u64, voters: &[u64], lease_ms: u64, rule: Option<UnsafeRule>) {
        let voters: Vec<NodeId> = voters.iter().copied().map(NodeId).collect();
        let mut config = Config::new(NodeId(id), voters.clone());
        config.single_node = voters.len() == 1;
        config.set_lease_duration(Duration::from_millis(lease_ms));
        config.unsafe_rule = rule;
        let mut node = Node::new(
            config,
            self.now,
            Incarnation(id * 1000 + self.now.as_nanos() % 997),
            WALL,
            id,
        )
        .expect("valid config");
        node.join(self.now, lease(), Some(3)).expect("join");
        self.nodes.insert(NodeId(id), node);
        self.pump(NodeId(id));
    }

    fn stop(&mut self, id: u64) {
        self.nodes.remove(&NodeId(id));
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[&NodeId(id)]
    }

    fn pump(&mut self, id: NodeId) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let digest = node.fingerprint_digest();
        while let Some(e) = node.poll_event() {
            self.events.push((self.now, id, e));
        }
        while let Some(tx) = node.poll_transmit() {
            self.queue
                .push_back((id, tx.to, digest, Some(tx.messages), false));
        }
        while let Some(h) = node.poll_hello() {
            self.queue
                .push_back((id, h.to, digest, None, h.wants_reply));
        }
    }

    fn run(&mut self, until: Timestamp) {
        loop {
            let wall = WALL + self.now.as_nanos() / 1_000_000;
            while let Some((from, to, digest, batch, wants_reply)) = self.queue.pop_front() {
                let now = self.now;
                if let Some(node) = self.nodes.get_mut(&to) {
                    node.raise_ballot_floor(wall);
                    match batch {
                        Some(batch) => node.handle_message(now, from, digest, batch),
                        None => node.handle_hello(now, from, digest, wants_reply),
                    }
                    self.pump(to);
                }
                self.count_masters();
            }
            let Some(next) = self.nodes.values().filter_map(Node::poll_timeout).min() else {
                self.now = until;
                return;
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            let due: Vec<NodeId> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.poll_timeout().is_some_and(|t| t <= next))
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                let now = self.now;
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.raise_ballot_floor(WALL + now.as_nanos() / 1_000_000);
                    node.handle_timeout(now);
                }
                self.pump(id);
            }
            self.count_masters();
        }
    }

    fn masters(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_master(self.now, &lease()))
            .map(|(id, _)| *id)
            .collect()
    }

    fn count_masters(&mut self) {
        self.most_masters = self.most_masters.max(self.masters().len());
    }

    fn elected(&self, id: u64) -> usize {
        self.events
            .iter()
            .filter(|(_, n, e)| *n == NodeId(id) && matches!(e, Event::Elected { .. }))
            .count()
    }
}

/// Finding 1a: nodes 1 and 2 list voters {1,2,3}; node 3 runs alone (explicitly a
/// single-node cluster). Node 3 answers their probes with its fingerprint, so they stop
/// acting: one master, node 3. Without fingerprints, node 1 or 2 is master at once too.
fn lone_node_beside_a_cluster(rule: Option<UnsafeRule>) -> Net {
    let mut net = Net::new();
    net.start(1, &[1, 2, 3], 1000, rule);
    net.start(2, &[1, 2, 3], 1000, rule);
    net.start(3, &[3], 1000, rule);
    net.run(t(6000));
    net
}

#[test]
fn a_lone_node_and_a_cluster_naming_it_never_make_two_masters() {
    let net = lone_node_beside_a_cluster(None);
    assert_eq!(net.most_masters, 1);
    assert_eq!(net.masters(), vec![NodeId(3)]);
    assert_eq!((net.elected(1), net.elected(2)), (0, 0));
    assert!(net.node(1).in_conflict() && net.node(2).in_conflict());
    assert!(
        !net.node(3).in_conflict(),
        "nodes 1 and 2 are not its voters"
    );
    assert!(net.node(1).stats().dropped_mismatched > 0);
    let theirs = net
        .node(1)
        .peer_fingerprints()
        .find(|(id, _)| *id == NodeId(3))
        .and_then(|(_, d)| d);
    assert_eq!(theirs, Some(net.node(3).fingerprint_digest()));

    let broken = lone_node_beside_a_cluster(Some(UnsafeRule::NoFingerprint));
    assert_eq!(broken.most_masters, 2, "without fingerprints: two masters");
}

/// Finding 1b: a half-done reconfiguration. Nodes 1 and 2 run with {1,2,3}, nodes 3 and
/// 4 with {3,4,5}. Nodes 1 and 2 learn from node 3 that it is configured otherwise and
/// stop; {3,4} carries on. Without fingerprints both groups elect.
fn half_done_reconfiguration(rule: Option<UnsafeRule>) -> Net {
    let mut net = Net::new();
    net.start(1, &[1, 2, 3], 1000, rule);
    net.start(2, &[1, 2, 3], 1000, rule);
    net.start(3, &[3, 4, 5], 1000, rule);
    net.start(4, &[3, 4, 5], 1000, rule);
    net.run(t(6000));
    net
}

#[test]
fn a_half_done_reconfiguration_never_makes_two_masters() {
    let net = half_done_reconfiguration(None);
    assert_eq!(net.most_masters, 1);
    let masters = net.masters();
    assert_eq!(masters.len(), 1);
    assert!(
        masters[0] == NodeId(3) || masters[0] == NodeId(4),
        "{masters:?}"
    );
    assert_eq!((net.elected(1), net.elected(2)), (0, 0));
    assert!(net.node(1).in_conflict() && net.node(2).in_conflict());

    let broken = half_done_reconfiguration(Some(UnsafeRule::NoFingerprint));
    assert_eq!(broken.most_masters, 2, "without fingerprints: two masters");
}

/// F2 in the other order: a running master learns that a voter came back configured
/// otherwise, surrenders at once (reason `ConfigMismatch`), and the cluster resumes when
/// the voter returns with the right configuration.
#[test]
fn a_master_surrenders_when_a_voter_turns_up_misconfigured_and_resumes_when_fixed() {
    let mut net = Net::new();
    for id in 1..=3 {
        net.start(id, &[1, 2, 3], 1000, None);
    }
    net.run(t(2000));
    let first = net.masters();
    assert_eq!(first.len(), 1);
    // Node 3 restarts with another lease duration (a different fingerprint).
    net.stop(3);
    net.start(3, &[1, 2, 3], 1500, None);
    net.run(t(4000));
    assert!(net.masters().is_empty() || net.masters() == vec![NodeId(3)]);
    assert!(
        net.events.iter().any(|(_, n, e)| first.contains(n)
            && matches!(
                e,
                Event::Surrendered {
                    reason: SurrenderReason::ConfigMismatch,
                    ..
                }
            )),
        "the master stopped with reason config-mismatch"
    );
    assert!(net.node(1).in_conflict() && net.node(2).in_conflict());
    // The acceptor is silent, even to a matching voter.
    let now = net.now;
    let node = net.nodes.get_mut(&NodeId(1)).expect("running");
    let digest = node.fingerprint_digest();
    let ballot = Ballot {
        counter: WALL + 10_000,
        incarnation: Incarnation(2),
        node: NodeId(2),
    };
    node.handle_message(now, NodeId(2), digest, vec![prepare(&lease(), ballot)]);
    assert!(node.poll_transmit().is_none());
    assert_eq!(node.stats().dropped_conflicted, 1);
    // Fixed: node 3 restarts with the cluster's settings.
    net.stop(3);
    let before = net.events.len();
    net.start(3, &[1, 2, 3], 1000, None);
    net.run(t(8000));
    assert!(!net.node(1).in_conflict() && !net.node(2).in_conflict());
    assert_eq!(net.masters().len(), 1);
    assert!(
        net.events[before..]
            .iter()
            .any(|(_, _, e)| matches!(e, Event::Elected { .. }))
    );
    assert_eq!(net.most_masters, 1);
}

/// An observer with another fingerprint is refused, but the voters carry on: only a
/// voter's mismatch can make majorities disagree.
#[test]
fn a_misconfigured_observer_is_refused_without_stopping_the_voters() {
    let mut net = Net::new();
    let start = |net: &mut Net, id: u64, lease_ms: u64| {
        let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let mut config = Config::new(NodeId(id), voters);
        config.observers = vec![NodeId(4)];
        config.set_lease_duration(Duration::from_millis(lease_ms));
        let mut node = Node::new(config, net.now, Incarnation(id), WALL, id).expect("valid config");
        node.join(net.now, lease(), (id <= 3).then_some(3))
            .expect("join");
        net.nodes.insert(NodeId(id), node);
        net.pump(NodeId(id));
    };
    for id in 1..=3 {
        start(&mut net, id, 1000);
    }
    start(&mut net, 4, 1500);
    net.run(t(4000));
    assert_eq!(net.masters().len(), 1);
    assert!(!net.node(1).in_conflict());
    assert!(net.node(1).stats().dropped_mismatched > 0);
    assert!(
        net.node(4).in_conflict(),
        "the observer sees its voters differ"
    );
    assert!(net.node(4).master(&lease()).is_none(), "it learns nothing");
}

/// A voter set of one is a single-node cluster only when the configuration says so.
#[test]
fn a_single_voter_must_be_confirmed() {
    let config = Config::new(NodeId(3), vec![NodeId(3)]);
    let error = Node::new(config.clone(), Timestamp::ZERO, Incarnation(1), 0, 0)
        .expect_err("refused without single_node");
    assert_eq!(error, gen_paxos_core::Error::SingleVoter(NodeId(3)));
    assert!(error.to_string().contains("single-node"));
    let mut confirmed = config;
    confirmed.single_node = true;
    assert!(Node::new(confirmed, Timestamp::ZERO, Incarnation(1), 0, 0).is_ok());
}

// ---- memory ------------------------------------------------------------------------------

/// Finding 4: Prepares for 100,000 names (10,000 a second) from an authenticated voter.
/// Entries are forgotten a quarantine after their last use, so the table holds about the
/// last 1.5 quarantines' worth of names, not every name ever heard; afterwards it empties.
#[test]
fn acceptor_state_for_100k_churned_names_stays_bounded() {
    let mut c = Cluster::new(3, None);
    let mut most = 0;
    let per_tick = 100;
    let mut now = t(START);
    for tick in 0..1000u64 {
        now = t(START + tick * 10);
        let batch: Vec<Envelope> = (0..per_tick)
            .map(|i| {
                let name = LeaseName::new(format!("churn-{}", tick * per_tick + i)).expect("valid");
                prepare(
                    &name,
                    Ballot {
                        counter: tick + 1,
                        incarnation: Incarnation(7),
                        node: NodeId(2),
                    },
                )
            })
            .collect();
        c.node(1).recv(now, NodeId(2), batch);
        c.collect(NodeId(1));
        c.wire.clear();
        most = most.max(c.node(1).acceptor_entries());
    }
    let q = c.node(1).timing().quarantine;
    let window = (q.as_millis() as usize * 3 / 2 + 10) * per_tick as usize / 10;
    assert!(most <= window, "{most} entries at most, window {window}");
    assert!(most < 25_000, "{most}");
    // Later traffic (any input) sweeps the rest.
    c.node(1).handle_timeout(now + q * 2);
    c.node(1).recv(now + q * 2, NodeId(2), vec![]);
    assert_eq!(c.node(1).acceptor_entries(), 0);
    assert!(c.node(1).stats().pruned_acceptors >= 100_000);
}

/// Beyond the cap, new names are dropped and counted; known names still work.
#[test]
fn the_acceptor_table_is_capped() {
    let mut config = Config::new(NodeId(1), (1..=3).map(NodeId).collect());
    config.max_acceptor_entries = 100;
    config.set_lease_duration(LEASE);
    let mut node = Node::new(config, t(0), Incarnation(1), 0, 1).expect("valid");
    let digest = node.fingerprint_digest();
    let ballot = Ballot {
        counter: 5,
        incarnation: Incarnation(2),
        node: NodeId(2),
    };
    let batch: Vec<Envelope> = (0..150)
        .map(|i| prepare(&LeaseName::new(format!("n{i}")).expect("valid"), ballot))
        .collect();
    node.handle_message(t(START), NodeId(2), digest, batch);
    assert_eq!(node.acceptor_entries(), 100);
    assert_eq!(node.stats().dropped_over_capacity, 50);
}
