//! Per-key consensus on three hand-driven nodes (acceptors and proposers each), with links
//! that can be cut: one answer per instance for every caller, gets that never report a
//! value not chosen, forget opening the next instance.

use std::collections::VecDeque;
use std::time::Duration;

use super::acceptor::AskAcceptors;
use super::proposer::AskProposers;
use super::{AskEffects, AskEvent, AskMessage, AskValue, Instance};
use crate::id::{LeaseName, NodeId};
use crate::log::To;
use crate::rng::Rng;
use crate::time::Timestamp;
use crate::unsafe_rules::Rules;

const RETRANSMIT: Duration = Duration::from_millis(10);

fn key() -> LeaseName {
    LeaseName::new("config").expect("valid")
}

fn v(text: &str) -> AskValue {
    text.as_bytes().into()
}

struct Node {
    acceptors: AskAcceptors,
    proposers: AskProposers,
    events: Vec<AskEvent>,
    records: Vec<crate::durable::Record>,
}

struct Cluster {
    nodes: Vec<Node>,
    queue: VecDeque<(NodeId, NodeId, AskMessage)>,
    cut: Vec<(NodeId, NodeId)>,
    now: Timestamp,
    rng: Rng,
}

impl Cluster {
    fn new(n: u64) -> Cluster {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let nodes = ids
            .iter()
            .map(|&id| Node {
                acceptors: AskAcceptors::restore(16, 1024, &[]),
                proposers: AskProposers::restore(id, &ids, RETRANSMIT, &[], Rules::default()),
                events: Vec::new(),
                records: Vec::new(),
            })
            .collect();
        Cluster {
            nodes,
            queue: VecDeque::new(),
            cut: Vec::new(),
            now: Timestamp::ZERO,
            rng: Rng::new(5),
        }
    }

    fn apply(&mut self, at: NodeId, fx: AskEffects) {
        let n = self.nodes.len() as u64;
        let node = &mut self.nodes[at.0 as usize - 1];
        node.events.extend(fx.events);
        node.records.extend(fx.records);
        for (to, message) in fx.sends {
            match to {
                To::Voters => {
                    for id in 1..=n {
                        self.queue.push_back((at, NodeId(id), message.clone()));
                    }
                }
                To::Node(id) => self.queue.push_back((at, id, message)),
            }
        }
    }

    fn ask(&mut self, id: u64, value: Option<&str>) {
        let mut fx = AskEffects::default();
        let now = self.now;
        self.nodes[id as usize - 1]
            .proposers
            .ask(now, &key(), value.map(v), &mut fx);
        self.apply(NodeId(id), fx);
    }

    fn forget(&mut self, id: u64) {
        let mut fx = AskEffects::default();
        let now = self.now;
        self.nodes[id as usize - 1]
            .proposers
            .forget(now, &key(), &mut fx);
        self.apply(NodeId(id), fx);
    }

    fn run(&mut self) {
        let mut steps = 0;
        while let Some((from, to, message)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "does not settle");
            if self.cut.contains(&(from, to)) {
                continue;
            }
            let mut fx = AskEffects::default();
            let now = self.now;
            let node = &mut self.nodes[to.0 as usize - 1];
            match message {
                m @ (AskMessage::Prepare { .. }
                | AskMessage::Accept { .. }
                | AskMessage::Decided { .. }
                | AskMessage::Forget { .. }) => {
                    let _ = node.acceptors.handle(from, m, &mut fx);
                }
                m => node.proposers.handle(now, from, m, &mut fx),
            }
            self.apply(to, fx);
        }
    }

    fn tick(&mut self) {
        self.now = self.now + RETRANSMIT * 64;
        for i in 0..self.nodes.len() {
            let mut fx = AskEffects::default();
            let now = self.now;
            let proposers = &mut self.nodes[i].proposers;
            if proposers.poll_timeout().is_some_and(|at| at <= now) {
                proposers.handle_timeout(now, &mut self.rng, &mut fx);
            }
            self.apply(NodeId(i as u64 + 1), fx);
        }
    }

    /// The answers node `id` got: (instance, value or None for undecided).
    fn answers(&self, id: u64) -> Vec<(Instance, Option<AskValue>)> {
        self.nodes[id as usize - 1]
            .events
            .iter()
            .filter_map(|e| match e {
                AskEvent::Decided {
                    instance, value, ..
                } => Some((*instance, Some(value.clone()))),
                AskEvent::Undecided { instance, .. } => Some((*instance, None)),
                AskEvent::Forgotten { .. } => None,
            })
            .collect()
    }
}

#[test]
fn the_first_value_to_win_is_every_callers_answer() {
    let mut c = Cluster::new(3);
    c.ask(1, Some("a"));
    c.run();
    assert_eq!(c.answers(1), vec![(0, Some(v("a")))]);
    assert_eq!(
        c.nodes[2].acceptors.local(&key()),
        (0, Some(v("a"))),
        "the decision reached every acceptor (a local, maybe stale, read)"
    );
    c.ask(2, Some("b"));
    c.ask(3, None);
    c.run();
    assert_eq!(
        c.answers(2),
        vec![(0, Some(v("a")))],
        "a later ask gets the decided value"
    );
    assert_eq!(c.answers(3), vec![(0, Some(v("a")))], "a get reads it");
    assert!(
        c.nodes[1]
            .records
            .iter()
            .any(|r| matches!(r, crate::durable::Record::AskAccepted { .. })),
        "acceptances are durable records"
    );
}

#[test]
fn concurrent_asks_agree() {
    let mut c = Cluster::new(3);
    c.ask(1, Some("a"));
    c.ask(3, Some("c"));
    c.run();
    for _ in 0..20 {
        c.tick();
        c.run();
    }
    let a1 = c.answers(1);
    let a3 = c.answers(3);
    assert_eq!(a1.len(), 1, "{a1:?}");
    assert_eq!(a1, a3, "one value per instance");
}

#[test]
fn a_get_never_reports_a_value_that_is_not_chosen() {
    let mut c = Cluster::new(3);
    // Node 1's "a" was accepted by its own acceptor only: not chosen.
    let mut fx = AskEffects::default();
    let accept = AskMessage::Accept {
        key: key(),
        instance: 0,
        ballot: crate::log::LogBallot {
            counter: 1,
            node: NodeId(1),
        },
        value: v("a"),
    };
    assert!(
        c.nodes[0]
            .acceptors
            .handle(NodeId(1), accept, &mut fx)
            .is_ok()
    );
    c.cut = vec![
        (NodeId(1), NodeId(2)),
        (NodeId(1), NodeId(3)),
        (NodeId(2), NodeId(1)),
        (NodeId(3), NodeId(1)),
    ];
    // Nodes 2 and 3 alone: nothing is chosen, so a get says so and an ask decides "b".
    c.ask(2, None);
    c.run();
    assert_eq!(c.answers(2), vec![(0, None)]);
    c.ask(3, Some("b"));
    c.run();
    assert_eq!(c.answers(3), vec![(0, Some(v("b")))]);
    // Healed, node 1's get hears its own acceptor first, holding "a": the answer is "b".
    // (Its first ballot is below what 2 and 3 promised: refused, retried higher.)
    c.cut.clear();
    c.ask(1, None);
    c.run();
    for _ in 0..5 {
        c.tick();
        c.run();
    }
    assert_eq!(c.answers(1), vec![(0, Some(v("b")))]);
}

#[test]
fn an_ask_completes_a_value_a_majority_accepted_before_anyone_knew() {
    let mut c = Cluster::new(3);
    // "a" under node 1's ballot is accepted by acceptors 1 and 2 (so it is chosen), and
    // node 1 stops before it hears so.
    let ballot = crate::log::LogBallot {
        counter: 1,
        node: NodeId(1),
    };
    for acceptor in [0, 1] {
        let mut fx = AskEffects::default();
        let accept = AskMessage::Accept {
            key: key(),
            instance: 0,
            ballot,
            value: v("a"),
        };
        assert!(
            c.nodes[acceptor]
                .acceptors
                .handle(NodeId(1), accept, &mut fx)
                .is_ok()
        );
    }
    c.cut = vec![
        (NodeId(1), NodeId(2)),
        (NodeId(1), NodeId(3)),
        (NodeId(2), NodeId(1)),
        (NodeId(3), NodeId(1)),
    ];
    // Node 3 asks "c" and hears 2 and 3: it must finish "a", not propose its own.
    c.ask(3, Some("c"));
    c.run();
    assert_eq!(c.answers(3), vec![(0, Some(v("a")))]);
}

#[test]
fn forget_opens_the_next_instance_and_never_revives_the_old_one() {
    let mut c = Cluster::new(3);
    c.ask(1, Some("a"));
    c.run();
    c.forget(2);
    c.run();
    assert!(c.nodes[1].events.contains(&AskEvent::Forgotten {
        key: key(),
        instance: 0
    }));
    c.ask(2, Some("b"));
    c.run();
    assert_eq!(c.answers(2), vec![(1, Some(v("b")))]);
    // Node 3 still thinks instance 0 is open: it is moved on, and answered from 1.
    c.ask(3, Some("z"));
    c.run();
    assert_eq!(c.answers(3), vec![(1, Some(v("b")))]);
    // A straggler Accept for instance 0 is refused with the instance now open.
    let mut fx = AskEffects::default();
    let _ = c.nodes[0].acceptors.handle(
        NodeId(3),
        AskMessage::Accept {
            key: key(),
            instance: 0,
            ballot: crate::log::LogBallot {
                counter: 99,
                node: NodeId(3),
            },
            value: v("late"),
        },
        &mut fx,
    );
    assert!(matches!(
        fx.sends.as_slice(),
        [(_, AskMessage::Moved { current: 1, .. })]
    ));
}

/// A forget that a majority acknowledged ends the instance for every later caller: a node
/// whose own acceptor missed the forget must not answer the closed instance's decision
/// from that one acceptor (a `get` is linearizable: it hears a majority).
#[test]
fn a_get_after_a_forget_never_answers_the_closed_instance() {
    let mut c = Cluster::new(3);
    c.ask(1, Some("a"));
    c.run();
    // Node 2's forget never reaches node 3; nodes 1 and 2 acknowledge it.
    c.cut.push((NodeId(2), NodeId(3)));
    c.forget(2);
    c.run();
    assert!(c.nodes[1].events.contains(&AskEvent::Forgotten {
        key: key(),
        instance: 0
    }));
    assert_eq!(
        c.nodes[2].acceptors.local(&key()),
        (0, Some(v("a"))),
        "node 3's acceptor still has instance 0 decided"
    );
    // Node 3 gets while the others' replies to it are lost: its own acceptor alone is
    // not an answer.
    c.cut = vec![(NodeId(1), NodeId(3)), (NodeId(2), NodeId(3))];
    c.ask(3, None);
    c.run();
    assert_eq!(c.answers(3), vec![], "answered from one acceptor");
    // Once it hears a majority, it is moved on to instance 1, where nothing is chosen.
    c.cut.clear();
    c.tick();
    c.run();
    assert_eq!(c.answers(3), vec![(1, None)]);
}
