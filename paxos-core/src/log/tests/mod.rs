//! The log's roles together: three replicas (acceptor, learner, proposer each) on a
//! hand-driven network that can drop messages, checking recovery, appends, catch-up and
//! the refusals, with every rule intact.

use std::collections::VecDeque;
use std::time::Duration;

use super::acceptor::LogAcceptor;
use super::learner::LogLearner;
use super::proposer::LogProposer;
use super::{AppendError, Effects, LogBallot, LogEvent, LogLimits, LogMessage, Slot};
use super::{To, Value};
use crate::durable::Record;
use crate::id::{LeaseName, NodeId};
use crate::replication::LeaseLog;
use crate::time::Timestamp;
use crate::unsafe_rules::Rules;

mod snapshots;

const RETRANSMIT: Duration = Duration::from_millis(10);

fn lease() -> LeaseName {
    LeaseName::new("log").expect("valid")
}

fn data(text: &str) -> Value {
    Value::Data(text.as_bytes().into())
}

struct Replica {
    id: NodeId,
    /// The node's own bundle of the three roles, routed as the node routes them.
    log: LeaseLog,
    records: Vec<Record>,
    events: Vec<LogEvent>,
}

impl Replica {
    fn proposer(&mut self) -> &mut LogProposer {
        self.log
            .proposer
            .as_mut()
            .expect("every replica here proposes")
    }
}

struct Cluster {
    replicas: Vec<Replica>,
    queue: VecDeque<(NodeId, NodeId, LogMessage)>,
    now: Timestamp,
    /// Messages from, to which are dropped.
    cut: Vec<(NodeId, NodeId)>,
    /// Snapshots sent are lost.
    lose_snapshots: bool,
    /// The most value bytes any message sent carried.
    largest: usize,
}

impl Cluster {
    fn new(n: u64) -> Cluster {
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let limits = LogLimits::default();
        let replicas = ids
            .iter()
            .map(|&id| Replica {
                id,
                log: LeaseLog {
                    acceptor: LogAcceptor::new(limits),
                    learner: LogLearner::new(limits, RETRANSMIT, 0, Rules::default()),
                    proposer: Some(LogProposer::new(
                        lease(),
                        id,
                        &ids,
                        limits,
                        RETRANSMIT,
                        &[],
                        Rules::default(),
                    )),
                },
                records: Vec::new(),
                events: Vec::new(),
            })
            .collect();
        Cluster {
            replicas,
            queue: VecDeque::new(),
            now: Timestamp::ZERO,
            cut: Vec::new(),
            lose_snapshots: false,
            largest: 0,
        }
    }

    fn r(&mut self, id: u64) -> &mut Replica {
        &mut self.replicas[id as usize - 1]
    }

    fn apply(&mut self, at: NodeId, mut fx: Effects) {
        let voters: Vec<NodeId> = self.replicas.iter().map(|r| r.id).collect();
        let idx = at.0 as usize - 1;
        // What the proposer says about a slot follows the learner's delivery of it.
        for (slot, value) in std::mem::take(&mut fx.chosen) {
            self.replicas[idx].log.learner.learn(slot, value, &mut fx);
        }
        let acks = std::mem::take(&mut fx.acks);
        fx.events.extend(acks);
        let rep = &mut self.replicas[idx];
        rep.records.append(&mut fx.records);
        rep.events.append(&mut fx.events);
        for (to, message) in fx.sends {
            let bytes: usize = match &message {
                LogMessage::Accept { values, .. } | LogMessage::Chosen { values, .. } => {
                    values.iter().map(|v| v.bytes().len()).sum()
                }
                LogMessage::Promise { accepted, .. } => {
                    accepted.iter().map(|(_, _, v)| v.bytes().len()).sum()
                }
                _ => 0,
            };
            self.largest = self.largest.max(bytes);
            match to {
                To::Voters => {
                    for v in &voters {
                        self.queue.push_back((at, *v, message.clone()));
                    }
                }
                To::Node(n) => self.queue.push_back((at, n, message)),
            }
        }
    }

    /// Runs `f` on a replica's proposer, then flushes it.
    fn propose(&mut self, id: u64, f: impl FnOnce(&mut LogProposer, Timestamp, &mut Effects)) {
        let now = self.now;
        let mut fx = Effects::default();
        let rep = self.r(id);
        f(rep.proposer(), now, &mut fx);
        rep.proposer().flush(&mut fx);
        self.apply(NodeId(id), fx);
    }

    fn start(&mut self, id: u64) {
        let from = self.r(id).log.learner.applied();
        self.propose(id, |p, now, fx| p.start(now, from, fx));
    }

    fn append(&mut self, id: u64, text: &str) -> Result<Slot, AppendError> {
        let result = self.r(id).proposer().append(data(text));
        self.propose(id, |_, _, _| {});
        result
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, message: LogMessage) {
        let now = self.now;
        let mut fx = Effects::default();
        let rep = &mut self.replicas[to.0 as usize - 1];
        // Bad input is dropped, as the node does.
        let _ = rep.log.handle(now, from, &lease(), message, &mut fx);
        rep.proposer().flush(&mut fx);
        self.apply(to, fx);
    }

    /// Delivers every queued message (and what they lead to), dropping cut links.
    fn run(&mut self) {
        let mut steps = 0;
        while let Some((from, to, message)) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "the log does not settle");
            let lost = self.lose_snapshots && matches!(message, LogMessage::Snapshot { .. });
            if self.cut.contains(&(from, to)) || lost {
                continue;
            }
            self.deliver(from, to, message);
        }
    }

    /// Advances time past a retransmission interval and lets every proposer re-send.
    fn tick(&mut self) {
        self.now = self.now + RETRANSMIT;
        for id in 1..=self.replicas.len() as u64 {
            self.propose(id, |p, now, fx| {
                if p.poll_timeout().is_some_and(|at| at <= now) {
                    p.handle_timeout(now, fx);
                }
            });
        }
    }

    fn delivered(&self, id: u64) -> Vec<(Slot, Value)> {
        self.replicas[id as usize - 1]
            .events
            .iter()
            .filter_map(|e| match e {
                LogEvent::Chosen { slot, value } => Some((*slot, value.clone())),
                _ => None,
            })
            .collect()
    }

    fn events(&self, id: u64) -> &[LogEvent] {
        &self.replicas[id as usize - 1].events
    }

    /// Replica 1 leads and appends "a", "b", "c" while replica 3 hears nothing.
    fn appended_without_3() -> Cluster {
        let mut c = Cluster::new(3);
        c.start(1);
        c.run();
        c.isolate(3);
        for text in ["a", "b", "c"] {
            let _ = c.append(1, text);
        }
        c.run();
        c
    }

    fn isolate(&mut self, id: u64) {
        let n = self.replicas.len() as u64;
        for other in (1..=n).filter(|o| *o != id) {
            self.cut.push((NodeId(id), NodeId(other)));
            self.cut.push((NodeId(other), NodeId(id)));
        }
    }
}

#[test]
fn appends_are_chosen_acknowledged_and_delivered_in_order_on_every_replica() {
    let mut c = Cluster::new(3);
    c.start(1);
    c.run();
    assert_eq!(c.events(1), &[LogEvent::Ready { chosen: 0 }]);
    assert!(c.r(1).proposer().is_ready());
    assert_eq!(c.append(1, "a"), Ok(0));
    assert_eq!(c.append(1, "b"), Ok(1));
    assert_eq!(c.append(1, "c"), Ok(2));
    c.run();
    let want = vec![(0, data("a")), (1, data("b")), (2, data("c"))];
    for id in 1..=3 {
        assert_eq!(c.delivered(id), want, "replica {id}");
    }
    let acks: Vec<Slot> = c
        .events(1)
        .iter()
        .filter_map(|e| match e {
            LogEvent::Appended { slot } => Some(*slot),
            _ => None,
        })
        .collect();
    assert_eq!(acks, vec![0, 1, 2]);
    // The counter was made durable, and every acceptor recorded what it promised and
    // accepted.
    assert!(
        c.r(1)
            .records
            .iter()
            .any(|r| matches!(r, Record::Counter { counter: 1, .. }))
    );
    assert_eq!(
        c.r(2)
            .records
            .iter()
            .filter(|r| matches!(r, Record::Accepted { .. }))
            .count(),
        3
    );
}

#[test]
fn appends_wait_for_recovery_and_need_a_tenure() {
    let mut c = Cluster::new(3);
    assert_eq!(c.append(1, "early"), Err(AppendError::NotMaster));
    c.start(1);
    assert_eq!(c.append(1, "early"), Err(AppendError::NotReady));
    c.run();
    assert_eq!(c.append(1, "now"), Ok(0));
}

#[test]
fn an_acknowledged_append_survives_a_failover_by_repair() {
    let mut c = Cluster::new(3);
    c.start(1);
    c.run();
    // "x" reaches acceptors 1 and 2; their Accepted replies are lost, then 1 crashes.
    c.cut.push((NodeId(1), NodeId(3)));
    c.cut.push((NodeId(2), NodeId(1)));
    assert_eq!(c.append(1, "x"), Ok(0));
    c.run();
    assert!(c.delivered(3).is_empty());
    c.isolate(1);
    // Node 3 wins the lease and recovers from the promises of 2 and 3 (a majority).
    c.start(3);
    c.run();
    let ready = c
        .events(3)
        .iter()
        .position(|e| matches!(e, LogEvent::Ready { chosen: 1 }))
        .expect("ready after the repair");
    let chosen = c
        .events(3)
        .iter()
        .position(|e| matches!(e, LogEvent::Chosen { slot: 0, .. }))
        .expect("slot 0 delivered");
    assert!(
        chosen < ready,
        "the repaired entry is delivered before ready"
    );
    assert_eq!(c.delivered(3), vec![(0, data("x"))]);
    assert_eq!(c.delivered(2), vec![(0, data("x"))]);
    // The next append goes after it, not over it.
    assert_eq!(c.append(3, "y"), Ok(1));
    c.run();
    assert_eq!(c.delivered(2), vec![(0, data("x")), (1, data("y"))]);
}

#[test]
fn repair_takes_the_highest_ballot_and_fills_holes_with_noops() {
    let mut c = Cluster::new(3);
    let (b1, b2) = (
        LogBallot {
            counter: 1,
            node: NodeId(2),
        },
        LogBallot {
            counter: 2,
            node: NodeId(3),
        },
    );
    let l = lease();
    let mut out = Vec::new();
    // Slot 0: "old" under b1 at acceptor 2, "new" under b2 at acceptor 3. Slot 2: "z" at 3.
    let _ = c
        .r(2)
        .log
        .acceptor
        .handle_accept(&l, b1, 0, &[data("old")], 0, &mut out);
    let _ = c
        .r(3)
        .log
        .acceptor
        .handle_accept(&l, b2, 0, &[data("new")], 0, &mut out);
    let _ = c
        .r(3)
        .log
        .acceptor
        .handle_accept(&l, b2, 2, &[data("z")], 0, &mut out);
    // Node 1's first ballot, (1, node 1), is below what 2 and 3 promised: refused, and
    // the refusals raise its counter.
    c.start(1);
    c.run();
    assert_eq!(c.r(1).proposer().ballot(), None, "a refused tenure ends");
    // Its next tenure hears only 2 and 3 (its own acceptor's promise is lost).
    c.cut = vec![(NodeId(1), NodeId(1))];
    c.start(1);
    c.run();
    assert_eq!(
        c.delivered(1),
        vec![(0, data("new")), (1, Value::Noop), (2, data("z"))]
    );
    assert!(
        c.r(1).proposer().ballot().is_some_and(|b| b > b2),
        "a fresh, higher ballot"
    );
    assert_eq!(c.delivered(2), c.delivered(1));
}

#[test]
fn a_superseded_master_fails_its_appends_and_a_stale_ballot_changes_nothing() {
    let mut c = Cluster::new(3);
    c.start(1);
    c.run();
    c.start(3);
    c.run();
    // Node 1 still thinks it may append: its Accept meets promises of a higher ballot.
    assert_eq!(c.append(1, "stale"), Ok(0));
    c.run();
    assert!(c.events(1).contains(&LogEvent::AppendFailed {
        slot: 0,
        reason: AppendError::Lost
    }));
    assert_eq!(c.append(1, "again"), Err(AppendError::NotMaster));
    assert!(
        c.delivered(2).is_empty(),
        "nothing was chosen from the stale master"
    );
    assert_eq!(c.append(3, "fresh"), Ok(0));
    c.run();
    assert_eq!(c.delivered(1), vec![(0, data("fresh"))]);
}

#[test]
fn lost_messages_are_retransmitted() {
    let mut c = Cluster::new(3);
    c.start(1);
    c.cut = vec![(NodeId(1), NodeId(2)), (NodeId(1), NodeId(3))];
    c.run();
    assert!(
        !c.r(1).proposer().is_ready(),
        "one promise is not a majority"
    );
    c.cut.clear();
    c.tick();
    c.run();
    assert!(c.r(1).proposer().is_ready());
    c.cut = vec![(NodeId(2), NodeId(1)), (NodeId(3), NodeId(1))];
    assert_eq!(c.append(1, "a"), Ok(0));
    c.run();
    assert!(
        c.delivered(1).is_empty(),
        "no acknowledgement without a majority"
    );
    c.cut.clear();
    c.tick();
    c.run();
    assert_eq!(c.delivered(1), vec![(0, data("a"))]);
}

#[test]
fn a_replica_that_missed_entries_fetches_them() {
    let mut c = Cluster::appended_without_3();
    assert!(c.delivered(3).is_empty());
    c.cut.clear();
    // The next append's Accept tells 3 that slots below 3 are chosen: it has none of
    // them (accepted under this ballot), so it fetches them from the master.
    let _ = c.append(1, "d");
    c.run();
    c.tick();
    c.run();
    let want: Vec<(Slot, Value)> = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, t)| (i as Slot, data(t)))
        .collect();
    assert_eq!(c.delivered(3), want);
}

#[test]
fn duplicate_accepted_replies_from_one_voter_are_not_a_majority() {
    let mut c = Cluster::new(3);
    c.start(1);
    c.run();
    c.cut = vec![
        (NodeId(1), NodeId(3)),
        (NodeId(3), NodeId(1)),
        (NodeId(1), NodeId(1)),
    ];
    assert_eq!(c.append(1, "a"), Ok(0));
    c.run();
    let ballot = c.r(1).proposer().ballot().expect("a tenure");
    for _ in 0..3 {
        c.deliver(
            NodeId(2),
            NodeId(1),
            LogMessage::Accepted {
                ballot,
                first: 0,
                count: 1,
            },
        );
    }
    assert!(
        c.delivered(1).is_empty(),
        "one voter, however often, is not two"
    );
}

#[test]
fn a_replica_far_behind_fetches_chunk_after_chunk_without_waiting() {
    let mut c = Cluster::new(3);
    c.start(1);
    c.run();
    c.isolate(3);
    for i in 0..3000 {
        let _ = c.append(1, &format!("v{i}"));
        c.run();
    }
    c.cut.clear();
    // One commit tells replica 3 how far behind it is; each answer (at most 1,024 values)
    // brings the next request at once: no retransmission interval passes.
    let _ = c.append(1, "last");
    c.run();
    assert_eq!(c.delivered(3).len(), 3001);
}

#[test]
fn large_values_travel_in_messages_that_fit_a_frame() {
    // Eight values of 300 KiB appended together: one Accept with all of them would be
    // 2.4 MiB, over the runtime's 1 MiB frames, dropped at every retransmission, and the
    // log would stall. The Accepts, the answers to a far-behind replica's fetches and
    // the next master's promises each stay within the byte budget, and all arrive.
    let limits = LogLimits::default();
    let mut c = Cluster::new(3);
    c.start(1);
    c.run();
    c.isolate(3);
    let big = |i: u8| Value::Data(vec![i; 300 << 10].into());
    let slots = c.r(1).proposer().append_all((0..8).map(big).collect());
    assert_eq!(slots, Ok(0..8));
    c.propose(1, |_, _, _| {});
    c.run();
    assert_eq!(c.delivered(1).len(), 8, "chosen without replica 3");
    c.cut.clear();
    let _ = c.append(1, "last");
    c.run();
    c.tick();
    c.run();
    assert_eq!(c.delivered(3).len(), 9, "replica 3 fetched everything");
    // A new master's Phase 1 collects the large values accepted before.
    c.start(2);
    c.run();
    c.tick();
    c.run();
    assert!(c.r(2).proposer().is_ready(), "recovered");
    assert!(
        c.largest <= limits.max_message_len,
        "a message carried {} bytes of values, over {}",
        c.largest,
        limits.max_message_len
    );
    assert!(c.largest >= 300 << 10, "a large value went alone");
}
