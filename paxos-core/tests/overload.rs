//! Overload, with the real core and a network whose delay the test sets: while a node's
//! attempts are answered late, its fresh acquisitions slow down and wait their turn, the
//! leases it holds keep being renewed, and once answers are quick again the rate comes
//! back and every lease is acquired.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use gen_paxos_core::{Config, Event, Incarnation, LeaseName, Node, NodeId, Timestamp};

const RATE: u32 = 1_000;

/// Three nodes; messages take `delay` one way.
struct Net {
    nodes: Vec<Node>,
    now: Timestamp,
    delay: Duration,
    /// (delivery time, sequence, to, from, batch)
    queue: BinaryHeap<Reverse<(Timestamp, u64, usize, usize)>>,
    batches: Vec<Option<Vec<gen_paxos_core::Envelope>>>,
    surrendered: usize,
    elected: usize,
}

impl Net {
    fn new() -> Net {
        let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let nodes = ids
            .iter()
            .map(|&id| {
                let mut c = Config::new(id, ids.clone());
                c.set_lease_duration(Duration::from_secs(2));
                c.attempt_rate = RATE;
                c.attempt_burst = 10;
                Node::new(c, Timestamp::ZERO, Incarnation(id.0), 1, id.0).expect("node")
            })
            .collect();
        Net {
            nodes,
            now: Timestamp::ZERO,
            delay: Duration::from_millis(1),
            queue: BinaryHeap::new(),
            batches: Vec::new(),
            surrendered: 0,
            elected: 0,
        }
    }

    /// Runs until `until`, delivering every batch `delay` after it was sent.
    fn run_until(&mut self, until: Timestamp) {
        loop {
            for i in 0..3 {
                while let Some(e) = self.nodes[i].poll_event() {
                    match e {
                        Event::Surrendered { .. } => self.surrendered += 1,
                        Event::Elected { .. } => self.elected += 1,
                        _ => {}
                    }
                }
                while self.nodes[i].poll_hello().is_some() {}
                while let Some(t) = self.nodes[i].poll_transmit() {
                    let to = (t.to.0 - 1) as usize;
                    let at = if to == i {
                        self.now
                    } else {
                        self.now + self.delay
                    };
                    self.queue
                        .push(Reverse((at, self.batches.len() as u64, to, i)));
                    self.batches.push(Some(t.messages));
                }
            }
            let next_msg = self.queue.peek().map(|Reverse((at, ..))| *at);
            let next_timer = self.nodes.iter().filter_map(Node::poll_timeout).min();
            let next = match (next_msg, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).expect("something to do"),
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            if next_msg == Some(next) {
                let Reverse((_, seq, to, from)) = self.queue.pop().expect("peeked");
                let batch = self.batches[seq as usize].take().expect("once");
                let digest = self.nodes[to].fingerprint_digest();
                self.nodes[to].handle_message(self.now, NodeId(from as u64 + 1), digest, batch);
            } else {
                for n in &mut self.nodes {
                    if n.poll_timeout().is_some_and(|t| t <= self.now) {
                        n.handle_timeout(self.now);
                    }
                }
            }
        }
    }

    fn held(&self, names: &[LeaseName]) -> usize {
        names
            .iter()
            .filter(|n| self.nodes[0].is_master(self.now, n))
            .count()
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn late_answers_slow_fresh_acquisitions_and_held_leases_stay_held() {
    let mut net = Net::new();
    let names: Vec<LeaseName> = (0..3_000)
        .map(|i| LeaseName::new(format!("l{i}")).expect("name"))
        .collect();
    // After the quarantine, node 1 alone stands for every lease; quick answers.
    net.run_until(Timestamp::ZERO + secs(2.1));
    for n in &names {
        net.nodes[0]
            .join(net.now, n.clone(), Some(0))
            .expect("join");
    }
    // Slow start: a tenth of the rate, raised as answers come quickly.
    assert_eq!(net.nodes[0].stats().attempt_rate, u64::from(RATE / 10));
    net.run_until(net.now + secs(1.5));
    let early = net.held(&names);
    let s = net.nodes[0].stats();
    assert!(
        early > 100 && early < 3_000,
        "some leases, not all: {early} {s:?}"
    );
    assert!(s.attempt_rate > u64::from(RATE / 10), "{s:?}");

    // Answers come 200 ms late (800 ms per attempt, eight retransmission intervals).
    net.delay = Duration::from_millis(200);
    net.run_until(net.now + secs(3.0));
    let s = net.nodes[0].stats();
    assert!(s.attempt_rate_cuts >= 1, "{s:?}");
    assert_eq!(s.attempt_rate, u64::from(RATE / 100), "the floor: {s:?}");
    assert!(s.deferred_acquisitions > 0, "{s:?}");
    assert!(s.retransmissions > 0, "{s:?}");
    // Renewals first: every lease held before is still held, none surrendered.
    assert_eq!(net.surrendered, 0);
    let slow = net.held(&names);
    assert!(slow >= early, "{slow} held, {early} before");

    // Quick answers again: the rate comes back and every lease is acquired.
    net.delay = Duration::from_millis(1);
    net.run_until(net.now + secs(12.0));
    let s = net.nodes[0].stats();
    assert_eq!(s.attempt_rate, u64::from(RATE), "{s:?}");
    assert_eq!(s.deferred_acquisitions, 0, "{s:?}");
    assert_eq!(net.held(&names), 3_000);
    assert_eq!(net.surrendered, 0);
    assert_eq!(net.elected, 3_000);
}
