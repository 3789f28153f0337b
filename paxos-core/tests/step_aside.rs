//! A waiting candidate steps aside for a rival's attempt that its acceptor has just
//! promised, instead of starting a duelling one of its own (docs/PROTOCOL.md, "Waiting
//! candidates"); and it does so once per wait, so a rival that never finishes costs it one
//! retransmission interval at most.

mod common;

use std::time::Duration;

use common::*;
use gen_paxos_core::{Message, NodeId, Timestamp};

const START: u64 = 2_000;

/// Node 1 masters the lease with nodes 2 and 3 waiting as candidates of equal priority;
/// node 1 resigns at the returned time and its Releases are delivered. Returns (that
/// time, the first candidate in the succession order, the second, the order's step).
fn resigned(c: &mut Cluster) -> (Timestamp, u64, u64, Duration) {
    resigned_holding(c, 0)
}

/// As [`resigned`], but the Release to node `held_from` stays on the wire (0: none).
fn resigned_holding(c: &mut Cluster, held_from: u64) -> (Timestamp, u64, u64, Duration) {
    for id in [2, 3] {
        c.node(id).join(t(START), lease(), None).expect("join");
    }
    let at = c.campaign(1, t(START));
    for step in 0..5 {
        c.deliver(at + Duration::from_millis(1 + step), |_| true);
    }
    assert_eq!(c.elected(1).len(), 1);
    for id in [2, 3] {
        c.node(id)
            .join(t(START + 10), lease(), Some(3))
            .expect("join");
    }
    let quit = t(START + 20);
    assert!(c.node(1).resign(quit, &lease()).expect("joined"));
    c.collect(NodeId(1));
    c.deliver(quit, |w| kind(w) == "release" && w.to != NodeId(held_from));
    let wait = |c: &mut Cluster, id: u64| {
        c.node(id)
            .poll_timeout()
            .expect("a candidate plans")
            .saturating_duration_since(quit)
    };
    if held_from != 0 {
        return (quit, 0, 0, Duration::ZERO);
    }
    let (w2, w3) = (wait(c, 2), wait(c, 3));
    let (first, second) = if w2 < w3 { (2, 3) } else { (3, 2) };
    let step = w2.max(w3);
    assert!(step > Duration::ZERO, "the succession order spaces the two");
    (quit, first, second, step)
}

fn prepares_from(c: &Cluster, id: u64) -> usize {
    c.wire
        .iter()
        .filter(|w| w.from == NodeId(id) && kind(w) == "prepare")
        .count()
}

/// The first in line prepares at once; its Prepare reaches the second before the second's
/// turn. The second starts no attempt of its own when its turn comes: the first wins
/// alone, with no rejected ballot on either side. Before this rule the second prepared a
/// higher ballot at its turn, and a slow first candidate lost its Accept round to it.
#[test]
fn the_second_candidate_lets_a_promised_rival_finish() {
    let mut c = Cluster::new(3, None);
    let (quit, first, second, step) = resigned(&mut c);
    let retransmit = c.node(second).timing().retransmit;
    c.timeout(first, quit);
    assert_eq!(
        prepares_from(&c, first),
        2,
        "the first prepares at once (its own acceptor answers within the node)"
    );
    let promised_at = quit + step / 2;
    c.deliver(promised_at, |w| {
        is(w, first, second) && kind(w) == "prepare"
    });
    let attempts = c.node(second).stats().attempts;
    let turn = quit + step;
    c.timeout(second, turn);
    assert_eq!(
        prepares_from(&c, second),
        0,
        "no duelling attempt at its turn"
    );
    assert_eq!(c.node(second).stats().attempts, attempts);
    assert_eq!(
        c.node(second).poll_timeout(),
        Some(promised_at + retransmit),
        "it tries one retransmission interval after the promise if the rival has not won"
    );
    for i in 0..5 {
        c.deliver(turn + Duration::from_micros(100 * (i + 1)), |_| true);
    }
    assert_eq!(c.elected(first).len(), 1, "the first wins");
    assert_eq!(c.node(second).stats().attempts, attempts);
    let rejects = c.wire.iter().filter(|w| kind(w) == "reject").count();
    assert_eq!(rejects, 0);
    // Having learned the new master, the second waits for its lease, not the interval.
    let next = c.node(second).poll_timeout().expect("a candidate plans");
    assert!(next > turn + c.node(second).timing().lease / 2);
}

/// A rival that never finishes: its Prepare is promised, then nothing more is heard. The
/// second candidate tries one retransmission interval after the promise; the rival's
/// retransmitted Prepare, promised again, does not push it back a second time.
#[test]
fn a_rival_that_never_finishes_delays_the_candidate_once() {
    let mut c = Cluster::new(3, None);
    let (quit, first, second, step) = resigned(&mut c);
    let retransmit = c.node(second).timing().retransmit;
    c.timeout(first, quit);
    c.deliver(quit, |w| is(w, first, second) && kind(w) == "prepare");
    // The rival's other messages are lost, and it is heard from no more.
    c.wire.clear();
    c.timeout(second, quit + step);
    assert_eq!(prepares_from(&c, second), 0);
    let planned = c.node(second).poll_timeout().expect("a candidate plans");
    assert_eq!(planned, quit + retransmit);
    // Just before that, the rival's Prepare arrives again (a retransmission).
    c.timeout(first, quit + retransmit);
    c.drop_where(|w| !(is(w, first, second) && kind(w) == "prepare"));
    c.deliver(planned.saturating_sub(Duration::from_micros(100)), |w| {
        is(w, first, second) && kind(w) == "prepare"
    });
    c.timeout(second, planned);
    assert_eq!(
        prepares_from(&c, second),
        2,
        "the second tries at the planned time, not a second interval later"
    );
}

/// The Release reaches the first candidate, which prepares at once; its Prepare reaches
/// the second before the Release does (they travel apart, as when the old master shuts
/// down). The second's acceptor still holds the old lease, so its Promise reports it, and
/// the first counts that as a refusal: it is not about to win, and waits a retransmission
/// interval before it asks again. The second does not step aside for it: it tries at its
/// turn. (Stepping aside here cost about one retransmission interval on most SIGTERM
/// handovers of the benchmark in which the restarted node was first in line.)
#[test]
fn a_blocked_rival_gets_no_room() {
    let (_, first, second, step) = resigned(&mut Cluster::new(3, None));
    let mut c = Cluster::new(3, None);
    let (quit, _, _, _) = resigned_holding(&mut c, second);
    assert_eq!(c.node(first).poll_timeout(), Some(quit), "the same order");
    c.timeout(first, quit);
    c.deliver(quit, |w| is(w, first, second) && kind(w) == "prepare");
    assert!(
        c.wire.iter().any(|w| is(w, second, first)
            && matches!(w.envelope.message, Message::Promise { lease: Some(_), .. })),
        "the second's Promise reports the old lease"
    );
    c.deliver(quit + step / 2, |w| {
        is(w, 1, second) && kind(w) == "release"
    });
    let turn = quit + step / 2 + step;
    assert_eq!(c.node(second).poll_timeout(), Some(turn));
    c.timeout(second, turn);
    assert_eq!(prepares_from(&c, second), 2, "it tries at its turn");
}
