//! Deterministic scenarios for the nine known ways to get PaxosLease wrong (docs/PROTOCOL.md, rules 1–9).
//! Each drives nodes by hand with explicit times and asserts the safe outcome; most also
//! run the same steps with the rule weakened and assert the unsafe outcome, so the test
//! proves it can tell the two apart.

mod common;

use std::time::Duration;

use common::*;
use gen_paxos_core::{
    Ballot, Envelope, Event, Incarnation, LeaseName, Message, NodeId, SurrenderReason, Timestamp,
    UnsafeRule,
};

/// Rule 1 / T1: `d` is fixed when Prepare is sent. Promises processed after `d` must not
/// lead to Accept, even though they form a majority.
fn late_promises(rule: Option<UnsafeRule>) -> (usize, Vec<Ballot>) {
    let mut c = Cluster::new(3, rule);
    c.campaign(1, t(START));
    // Node 1's own acceptor promised at once; the others' promises are stuck in the network.
    c.deliver(t(START), |w| kind(w) == "prepare");
    let accepts_before = c.wire.iter().filter(|w| kind(w) == "accept").count();
    assert_eq!(accepts_before, 0);
    // The promises arrive (the proposer processes them) after d = START + 1000 ms, before
    // its timer ran.
    c.deliver(t(START + 1200), |w| kind(w) == "promise");
    let accepts = c.wire.iter().filter(|w| kind(w) == "accept").count();
    c.deliver(t(START + 1201), |w| kind(w) == "accept");
    c.deliver(t(START + 1202), |w| kind(w) == "accepted");
    (accepts, c.elected(1))
}

#[test]
fn rule1_deadline_is_fixed_when_prepare_is_sent() {
    let (accepts, elected) = late_promises(None);
    assert_eq!(accepts, 0, "no Accept after d");
    assert!(elected.is_empty());
    let (accepts, elected) = late_promises(Some(UnsafeRule::LateTimer));
    assert!(
        accepts > 0 && !elected.is_empty(),
        "the weakened rule activates on stale promises"
    );
}

/// Rule 2 / A4: a restarted acceptor is silent for Q, then answers.
fn restarted_acceptor_answers(rule: Option<UnsafeRule>) -> (usize, usize) {
    let mut c = Cluster::new(3, rule);
    c.start(NodeId(3), t(START), 301);
    c.campaign(1, t(START + 10));
    c.drop_where(|w| !is(w, 1, 3));
    c.deliver(t(START + 20), |w| is(w, 1, 3));
    let during = c.wire.iter().filter(|w| is(w, 3, 1)).count();
    c.wire.clear();
    // A retransmission after the quarantine (Q = D_A, just over 1 s) is answered.
    c.timeout(1, t(START + 100));
    c.drop_where(|w| !is(w, 1, 3));
    c.deliver(t(START + 1010), |w| is(w, 1, 3));
    let after = c.wire.iter().filter(|w| is(w, 3, 1)).count();
    (during, after)
}

#[test]
fn rule2_restarted_acceptor_is_silent_during_quarantine() {
    assert_eq!(restarted_acceptor_answers(None), (0, 1));
    assert_eq!(
        restarted_acceptor_answers(Some(UnsafeRule::NoQuarantine)).0,
        1
    );
}

/// Rule 3: one acceptor's duplicated promise is one vote, not a majority.
fn duplicated_promises(rule: Option<UnsafeRule>) -> usize {
    let mut c = Cluster::new(5, rule);
    c.campaign(1, t(START));
    c.deliver(t(START + 1), |w| is(w, 1, 2));
    // Node 2's promise arrives three times; nodes 3-5 never answer.
    let promise = c
        .wire
        .iter()
        .position(|w| is(w, 2, 1))
        .expect("node 2 promised");
    let w = c.wire.remove(promise);
    for _ in 0..3 {
        c.node(1)
            .recv(t(START + 2), w.from, vec![w.envelope.clone()]);
        c.collect(NodeId(1));
    }
    c.wire.iter().filter(|w| kind(w) == "accept").count()
}

#[test]
fn rule3_duplicates_do_not_make_a_quorum() {
    assert_eq!(duplicated_promises(None), 0, "self + node 2 is 2 of 5");
    assert!(duplicated_promises(Some(UnsafeRule::CountDuplicates)) > 0);
}

/// Rule 4 / A3: a late Release of an old ballot must not erase the owner's newer lease.
fn stale_release_then_prepare(rule: Option<UnsafeRule>) -> Option<Ballot> {
    let mut c = Cluster::new(3, rule);
    let b = |counter| Ballot {
        counter,
        incarnation: Incarnation(100),
        node: NodeId(1),
    };
    // Node 1 (incarnation 100) had lease b(5) accepted at node 2, then renewed with b(6).
    let accept = |ballot| Envelope {
        lease: lease(),
        message: Message::Accept {
            ballot,
            lease_duration: LEASE,
        },
    };
    c.node(2).recv(t(START), NodeId(1), vec![accept(b(5))]);
    c.node(2)
        .recv(t(START + 300), NodeId(1), vec![accept(b(6))]);
    // The Release of b(5), delayed, arrives now.
    let release = Envelope {
        lease: lease(),
        message: Message::Release { ballot: b(5) },
    };
    c.node(2).recv(t(START + 310), NodeId(1), vec![release]);
    // Node 3 prepares: what live lease does node 2 report?
    let prepare = Envelope {
        lease: lease(),
        message: Message::Prepare {
            ballot: Ballot {
                counter: 9,
                incarnation: Incarnation(300),
                node: NodeId(3),
            },
        },
    };
    c.node(2).recv(t(START + 320), NodeId(3), vec![prepare]);
    c.collect(NodeId(2));
    c.wire.iter().find_map(|w| match &w.envelope.message {
        Message::Promise { lease: l, .. } => Some(l.map(|l| l.ballot)),
        _ => None,
    })?
}

#[test]
fn rule4_release_matches_owner_and_ballot() {
    assert_eq!(
        stale_release_then_prepare(None),
        Some(Ballot {
            counter: 6,
            incarnation: Incarnation(100),
            node: NodeId(1)
        })
    );
    assert_eq!(
        stale_release_then_prepare(Some(UnsafeRule::OwnerOnlyRelease)),
        None
    );
}

/// Rule 5 / P2: a fresh attempt must not treat the node's own lease under another ballot
/// (left by an abandoned attempt) as open.
fn fresh_attempt_over_own_stale_lease(rule: Option<UnsafeRule>) -> usize {
    let mut c = Cluster::new(3, rule);
    // A stale Accept of node 1's earlier attempt (ballot counter 0 < anything it will use
    // next) reached nodes 2 and 3.
    let stale = Ballot {
        counter: 0,
        incarnation: Incarnation(100),
        node: NodeId(1),
    };
    for to in [2, 3] {
        let accept = Envelope {
            lease: lease(),
            message: Message::Accept {
                ballot: stale,
                lease_duration: LEASE,
            },
        };
        c.node(to).recv(t(START), NodeId(1), vec![accept]);
    }
    c.campaign(1, t(START + 10));
    c.deliver(t(START + 11), |w| kind(w) == "prepare");
    c.deliver(t(START + 12), |w| kind(w) == "promise");
    c.wire.iter().filter(|w| kind(w) == "accept").count()
}

#[test]
fn rule5_own_stale_lease_blocks_a_fresh_attempt() {
    assert_eq!(fresh_attempt_over_own_stale_lease(None), 0);
    assert!(fresh_attempt_over_own_stale_lease(Some(UnsafeRule::StaleOwnerOpen)) > 0);
}

/// Rule 6: the event loop stalls after Accept went out; on resume the Accepted replies are
/// handled before the timer. P4 must check `now < d` itself.
fn accepted_after_a_stall(rule: Option<UnsafeRule>) -> Vec<Ballot> {
    let mut c = Cluster::new(3, rule);
    c.campaign(1, t(START));
    c.deliver(t(START + 1), |w| kind(w) == "prepare");
    c.deliver(t(START + 2), |w| kind(w) == "promise");
    c.deliver(t(START + 3), |w| kind(w) == "accept");
    // Node 1 stalls until after d = START + 1000; the replies are handled first on resume.
    c.deliver(t(START + 1500), |w| kind(w) == "accepted");
    c.elected(1)
}

#[test]
fn rule6_activation_checks_the_stored_deadline() {
    assert!(accepted_after_a_stall(None).is_empty());
    assert!(!accepted_after_a_stall(Some(UnsafeRule::TimerOrder)).is_empty());
}

/// Rule 7: one `now` per handler and no unsigned wraparound. Activation exactly at `d` is
/// refused (compare before subtract), one nanosecond earlier it succeeds with a tiny,
/// non-wrapped remaining time.
#[test]
fn rule7_deadline_boundary_has_no_wraparound() {
    for expect in [false, true] {
        let mut c = Cluster::new(3, None);
        let sent = c.campaign(1, t(START));
        c.deliver(sent, |w| kind(w) == "prepare");
        c.deliver(sent, |w| kind(w) == "promise");
        c.deliver(sent, |w| kind(w) == "accept");
        let d = sent + LEASE;
        let now = if expect {
            Timestamp::from_nanos(d.as_nanos() - 1)
        } else {
            d
        };
        c.deliver(now, |w| kind(w) == "accepted");
        assert_eq!(!c.elected(1).is_empty(), expect, "activation at {now:?}");
        if expect {
            let learn = c.wire.iter().find_map(|w| match w.envelope.message {
                Message::Learn { remaining, .. } => Some(remaining),
                _ => None,
            });
            let remaining = learn.expect("a Learn went out");
            assert!(
                remaining < Duration::from_millis(2),
                "remaining {remaining:?} did not wrap"
            );
        }
    }
}

/// Rule 8: deadlines live on the monotonic input clock. A wall clock stepping back (the
/// ballot floor input) changes neither the deadline nor the order of tokens.
#[test]
fn rule8_wall_clock_steps_do_not_touch_deadlines() {
    let mut c = Cluster::new(1, None);
    c.node(1).raise_ballot_floor(1_700_000_000_000);
    let sent = c.campaign(1, t(START));
    let Some((
        _,
        Event::Elected {
            token, deadline, ..
        },
    )) = c.events.first().cloned()
    else {
        panic!("a single voter elects itself: {:?}", c.events);
    };
    assert_eq!(deadline, sent + LEASE);
    // The wall clock steps back an hour.
    c.node(1).raise_ballot_floor(1_700_000_000_000 - 3_600_000);
    assert!(
        c.node(1)
            .is_master(sent + Duration::from_millis(999), &lease())
    );
    assert!(!c.node(1).is_master(sent + LEASE, &lease()));
    // Renewal (a third of the lease on, on the renewal grid) keeps the token increasing.
    let renew_at = c.node(1).poll_timeout().expect("the renewal timer");
    assert!(renew_at >= sent + Duration::from_millis(333) && renew_at <= sent + LEASE / 2);
    c.timeout(1, renew_at);
    let renewed = c.events.iter().find_map(|(_, e)| match e {
        Event::Renewed { token, .. } => Some(*token),
        _ => None,
    });
    assert!(renewed.is_some_and(|r| r > token));
}

/// Rule 9: a restarted proposer never reuses a ballot, and a late Accepted for its previous
/// run's ballot counts for nothing.
#[test]
fn rule9_restarted_proposer_never_reuses_a_ballot() {
    let mut c = Cluster::new(3, None);
    c.campaign(1, t(START));
    let old = c.wire.iter().find_map(|w| match w.envelope.message {
        Message::Prepare { ballot } => Some(ballot),
        _ => None,
    });
    let old = old.expect("a prepare");
    c.deliver(t(START + 1), |w| kind(w) == "prepare");
    c.deliver(t(START + 2), |w| kind(w) == "promise");
    c.drop_where(|w| kind(w) == "accept" && w.to != NodeId(2));
    c.deliver(t(START + 3), |w| kind(w) == "accept");
    // Node 1 crashes before the Accepted replies arrive, and restarts (new incarnation).
    c.start(NodeId(1), t(START + 4), 101);
    c.campaign(1, t(START + 1100));
    let new = c.wire.iter().find_map(|w| match w.envelope.message {
        Message::Prepare { ballot } if w.from == NodeId(1) => Some(ballot),
        _ => None,
    });
    let new = new.expect("a prepare");
    assert_ne!(new, old);
    assert_ne!(new.owner(), old.owner(), "a restart is a new owner");
    // The old run's Accepted arrives now: it is stale, not a vote.
    let before = c.node(1).stats().stale_responses;
    c.deliver(t(START + 1101), |w| kind(w) == "accepted");
    assert!(c.node(1).stats().stale_responses > before);
    assert!(c.elected(1).is_empty());
}

/// The happy path, as a baseline for the above: three nodes, one master, a resignation
/// hands over, and tokens increase.
#[test]
fn election_resign_and_handover() {
    let mut c = Cluster::new(3, None);
    c.campaign(1, t(START));
    for step in 0..4 {
        c.deliver(t(START + 1 + step), |_| true);
    }
    let first = c.elected(1);
    assert_eq!(first.len(), 1);
    assert_eq!(c.masters(t(START + 10)), vec![NodeId(1)]);
    // Node 2 stands too, learns node 1 is master and waits; node 1 resigns.
    c.node(2)
        .join(t(START + 20), lease(), Some(0))
        .expect("join");
    assert!(c.node(1).resign(t(START + 30), &lease()).expect("joined"));
    c.collect(NodeId(1));
    assert!(c.events.iter().any(|(n, e)| *n == NodeId(1)
        && matches!(
            e,
            Event::Surrendered {
                reason: SurrenderReason::Resigned,
                ..
            }
        )));
    c.deliver(t(START + 31), |_| true);
    let at = c.node(2).poll_timeout().expect("node 2 plans an attempt");
    assert!(
        at < t(START + 40),
        "after a release the next candidate tries at once"
    );
    c.timeout(2, at);
    for step in 0..4 {
        c.deliver(at + Duration::from_millis(1 + step), |_| true);
    }
    let second = c.elected(2);
    assert_eq!(second.len(), 1);
    assert!(second[0] > first[0], "fencing tokens increase");
    assert_eq!(c.masters(at + Duration::from_millis(10)), vec![NodeId(2)]);
}

/// Rule 1, the model checker's two-owner trace (counterexample-latetimer-3acceptors),
/// on colocated nodes and the baseline acceptor (which overwrites live leases):
/// nodes 1 and 2 prepare concurrently and both get node 3's promise; node 3 restarts; the
/// promises are processed only after the attempts' deadlines; node 3 accepts both in turn.
fn late_timer_trace(rule: UnsafeRule) -> Vec<NodeId> {
    let mut c = Cluster::new(3, Some(rule));
    let s1 = c.campaign(1, t(START));
    let s2 = c.campaign(2, t(START));
    let (b1, b2) = (
        c.wire[0].envelope.message.clone(),
        c.wire.last().map(|w| w.envelope.message.clone()),
    );
    assert!(matches!(b1, Message::Prepare { .. }) && matches!(b2, Some(Message::Prepare { .. })));
    // Only node 3 hears the prepares; it promises both.
    c.drop_where(|w| kind(w) == "prepare" && w.to != NodeId(3));
    c.deliver(t(START + 2), |w| kind(w) == "prepare");
    assert_eq!(c.wire.iter().filter(|w| kind(w) == "promise").count(), 2);
    // Node 3 crashes with its promises and restarts; its quarantine ends near START + 1012.
    c.start(NodeId(3), t(START + 10), 301);
    // The promises reach nodes 1 and 2 after their deadlines (their timers had not run).
    let late = s1.max(s2) + Duration::from_millis(1100);
    c.deliver(late, |w| is(w, 3, 1));
    c.drop_where(|w| kind(w) == "accept" && w.to == NodeId(2));
    c.deliver(late, |w| kind(w) == "accept" && is(w, 1, 3));
    c.deliver(late, |w| kind(w) == "accepted" && w.to == NodeId(1));
    c.deliver(late, |w| is(w, 3, 2));
    c.drop_where(|w| kind(w) == "accept" && w.to == NodeId(1));
    c.deliver(late, |w| kind(w) == "accept" && is(w, 2, 3));
    c.deliver(late, |w| kind(w) == "accepted" && w.to == NodeId(2));
    c.masters(late)
}

#[test]
fn rule1_two_owner_trace_needs_the_late_timer() {
    assert_eq!(
        late_timer_trace(UnsafeRule::Baseline).len(),
        0,
        "no attempt outlives its d"
    );
    assert_eq!(
        late_timer_trace(UnsafeRule::LateTimer),
        vec![NodeId(1), NodeId(2)]
    );
}

/// Rule 5, the model checker's two-owner trace (counterexample-staleowneropen), on
/// colocated nodes and the baseline acceptor: node 2's Accept is delayed and its attempt
/// abandoned; nodes 1 and 3 restart; node 1 becomes master with a lower ballot; node 2's
/// stale Accept overwrites node 1's lease at the acceptors; node 2's fresh attempt then sees
/// its own stale lease.
fn stale_owner_trace(rule: UnsafeRule) -> Vec<NodeId> {
    let mut c = Cluster::new(3, Some(rule));
    let s2 = c.campaign(2, t(START));
    c.deliver(s2, |w| kind(w) == "prepare");
    c.deliver(s2, |w| kind(w) == "promise");
    // Node 2's Accept to nodes 1 and 3 is stuck in the network; the attempt times out.
    let stale: Vec<Wire> = std::mem::take(&mut c.wire)
        .into_iter()
        .filter(|w| kind(w) == "accept")
        .collect();
    assert_eq!(stale.len(), 2);
    c.timeout(2, s2 + LEASE);
    c.wire.clear();
    // Nodes 1 and 3 crash and restart (incarnation 101 < 200: node 1's ballots rank below).
    c.start(NodeId(1), t(START + 10), 101);
    c.start(NodeId(3), t(START + 10), 301);
    // After the quarantine node 1 acquires with nodes 1 and 3; node 2 hears nothing.
    let s1 = c.campaign(1, t(START + 1100));
    // Prepare, Promise, Accept, Accepted.
    for _ in 0..4 {
        c.drop_where(|w| w.to == NodeId(2));
        c.deliver(s1, |_| true);
    }
    assert_eq!(c.masters(s1), vec![NodeId(1)]);
    // The stale Accept arrives at nodes 1 and 3.
    c.wire.extend(stale);
    c.deliver(s1 + Duration::from_millis(5), |w| kind(w) == "accept");
    c.drop_where(|w| w.to == NodeId(2));
    // Node 2 tries afresh.
    let s3 = c.campaign(2, s1 + Duration::from_millis(10));
    for _ in 0..4 {
        c.drop_where(|w| w.to == NodeId(1) && w.from == NodeId(2) && kind(w) == "learn");
        c.deliver(s3, |w| w.from == NodeId(2) || w.to == NodeId(2));
    }
    c.masters(s3 + Duration::from_millis(1))
}

#[test]
fn rule5_two_owner_trace_needs_the_stale_owner_rule() {
    assert_eq!(stale_owner_trace(UnsafeRule::Baseline), vec![NodeId(1)]);
    assert_eq!(
        stale_owner_trace(UnsafeRule::StaleOwnerOpen),
        vec![NodeId(1), NodeId(2)]
    );
}

/// Liveness: node 3 is cut off; nodes 1 and 2 compete. Node 1's own acceptor has already
/// accepted node 1's ballot when node 2's higher ballot arrives, so node 2 is blocked by
/// that lease while node 1 is rejected by node 2's acceptor. The rejection carries the
/// higher ballot: node 1 gives up at once and releases its ballot, and node 2's next
/// retransmission wins. (Holding on would stall both until their deadlines, a whole lease.)
#[test]
fn preempted_attempt_yields_to_the_higher_ballot() {
    let mut c = Cluster::new(3, None);
    let cut = |w: &Wire| w.to == NodeId(3) || w.from == NodeId(3);
    let s1 = c.campaign(1, t(START));
    c.drop_where(cut);
    c.deliver(s1, |w| is(w, 1, 2)); // node 2's acceptor promises node 1
    c.deliver(s1, |w| is(w, 2, 1)); // node 1 has a majority and sends Accept (its own accepts)
    c.drop_where(cut);
    let s2 = c.campaign(2, s1 + Duration::from_millis(1));
    c.drop_where(cut);
    c.deliver(s2, |w| is(w, 1, 2) && kind(w) == "accept"); // rejected: node 2 promised higher
    c.deliver(s2, |w| is(w, 2, 1) && kind(w) == "prepare"); // blocked by node 1's own lease
    c.deliver(s2, |w| is(w, 1, 2) && kind(w) == "promise");
    c.deliver(s2, |w| is(w, 2, 1) && kind(w) == "reject");
    assert!(
        c.wire
            .iter()
            .any(|w| w.from == NodeId(1) && kind(w) == "release"),
        "the pre-empted attempt releases its ballot"
    );
    // Node 2 retransmits its Prepare to the voter that blocked it; node 1 stays quiet.
    let later = s2 + Duration::from_millis(60);
    c.timeout(2, later);
    for step in 0..6 {
        c.drop_where(cut);
        c.drop_where(|w| w.from == NodeId(1) && kind(w) == "prepare");
        c.deliver(later + Duration::from_millis(step), |_| true);
    }
    assert_eq!(
        c.masters(later + Duration::from_millis(10)),
        vec![NodeId(2)]
    );
}

/// Many named leases on one node are independent instances, and their messages to one peer
/// travel together: 100 leases' Prepares to each peer leave in batches bounded by
/// `max_batch_bytes` (so each fits a datagram) and `max_batch`, not one datagram each.
#[test]
fn many_leases_batch_their_messages_per_peer() {
    let mut c = Cluster::new(3, None);
    let names: Vec<LeaseName> = (0..100)
        .map(|i| LeaseName::new(format!("lease-{i}")).expect("valid"))
        .collect();
    let now = t(START);
    for name in &names {
        c.node(1).join(now, name.clone(), Some(3)).expect("join");
    }
    let at = c.node(1).poll_timeout().expect("timers").max(now);
    // Fire every lease's first attempt (they are spread over one jitter step).
    c.node(1).handle_timeout(at + Duration::from_millis(2));
    let mut batches = Vec::new();
    while let Some(tx) = c.node(1).poll_transmit() {
        batches.push((tx.to, tx.messages.len()));
    }
    let to_node2: Vec<usize> = batches
        .iter()
        .filter(|(to, _)| *to == NodeId(2))
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(
        to_node2.iter().sum::<usize>(),
        100,
        "one Prepare per lease to node 2"
    );
    // A Prepare for "lease-NN" is at most 39 bytes by its bound: 25 fit in 1,000.
    assert_eq!(
        to_node2,
        vec![25, 25, 25, 25],
        "batched up to max_batch_bytes"
    );
    assert_eq!(c.node(1).leases().count(), 100);
}

/// A handover while a renewal is in flight: the master has sent its renewal's Accepts when
/// it resigns, and its Releases (sent reliably) overtake those Accepts (sent best-effort).
/// The acceptors must not accept the released renewal when it arrives: that would exclude
/// the next candidate for a whole `D_A` instead of a few message delays. Likewise the
/// master's Learns, still in flight from its election, must not make the next candidate
/// wait for a lease that was released.
#[test]
fn late_renewal_accept_after_release_does_not_block_the_handover() {
    let mut c = Cluster::new(3, None);
    c.campaign(1, t(START));
    for step in 0..4 {
        c.deliver(t(START + 1 + step), |w| kind(w) != "learn");
    }
    assert!(c.wire.iter().any(|w| kind(w) == "learn"));
    let first = c.elected(1);
    assert_eq!(first.len(), 1);
    c.node(2)
        .join(t(START + 20), lease(), Some(3))
        .expect("join");
    c.collect(NodeId(2));
    // Node 1 renews (in one round, P7): its Accepts are held in the network.
    let renew = c
        .node(1)
        .poll_timeout()
        .expect("the master plans its renewal");
    assert!(renew < t(START + 1000));
    c.timeout(1, renew);
    let held = |w: &Wire| w.from == NodeId(1) && w.to != NodeId(1) && kind(w) == "accept";
    assert_eq!(c.wire.iter().filter(|w| held(w)).count(), 2);
    // Node 1 resigns; its Releases arrive first, then the renewal's Accepts.
    let quit = renew + Duration::from_millis(1);
    assert!(c.node(1).resign(quit, &lease()).expect("joined"));
    c.collect(NodeId(1));
    c.deliver(quit, |w| kind(w) == "release");
    c.deliver(quit, held);
    c.deliver(quit, |w| kind(w) == "learn");
    // Node 2 tries at once and, with nobody holding the released renewal, wins.
    let at = c.node(2).poll_timeout().expect("node 2 plans an attempt");
    assert!(at < quit + Duration::from_millis(10));
    c.timeout(2, at.max(quit));
    for step in 0..6 {
        c.deliver(at.max(quit) + Duration::from_millis(1 + step), |_| true);
    }
    let second = c.elected(2);
    assert_eq!(
        second.len(),
        1,
        "node 2 is elected within a few message delays, not after D_A"
    );
    assert!(second[0] > first[0]);
}

/// A join at run time tries for a free lease at once (one round trip), lower priorities
/// after their priority steps; a join during the start-up quarantine waits for its end
/// plus its place in the lease's succession order, which keeps nodes started together
/// apart.
#[test]
fn a_join_at_run_time_tries_at_once() {
    let mut c = Cluster::new(3, None);
    let now = t(START);
    c.node(1).join(now, lease(), Some(3)).expect("join");
    assert_eq!(c.node(1).poll_timeout(), Some(now));
    let jitter = c.config(NodeId(2)).timing().expect("valid config").jitter;
    assert!(jitter > Duration::ZERO);
    c.node(2).join(now, lease(), Some(1)).expect("join");
    assert_eq!(c.node(2).poll_timeout(), Some(now + jitter * 2));
    let mut early = Cluster::new(3, None);
    early.node(3).join(t(10), lease(), Some(3)).expect("join");
    let at = early
        .node(3)
        .poll_timeout()
        .expect("a candidate has a timer");
    assert!(at >= t(1000), "not before the quarantine ends: {at:?}");
}

/// After a Release the remaining candidates of equal priority do not draw random waits
/// that may collide: they follow the lease's succession order, the same on every node,
/// one `jitter / voters` apart; and over many leases the first in line is spread over the
/// nodes.
#[test]
fn succession_order_separates_equal_candidates_after_a_release() {
    let names: Vec<LeaseName> = (0..300)
        .map(|i| LeaseName::new(format!("lease-{i}")).expect("valid name"))
        .collect();
    let mut first = [0usize; 3];
    for name in &names {
        let mut c = Cluster::new(3, None);
        let now = t(START);
        for id in [2, 3] {
            c.node(id).join(now, name.clone(), None).expect("join");
        }
        c.node(1).join(now, name.clone(), Some(3)).expect("join");
        let at = c.node(1).poll_timeout().expect("timer");
        c.node(1).handle_timeout(at);
        c.collect(NodeId(1));
        for step in 0..5 {
            c.deliver(at + Duration::from_millis(1 + step), |_| true);
        }
        for id in [2, 3] {
            c.node(id)
                .join(now + Duration::from_millis(10), name.clone(), Some(3))
                .expect("join");
        }
        let quit = now + Duration::from_millis(20);
        assert!(c.node(1).resign(quit, name).expect("joined"));
        c.collect(NodeId(1));
        c.deliver(quit, |w| kind(w) == "release");
        let waits: Vec<Duration> = [2, 3]
            .iter()
            .map(|&id| {
                c.node(id)
                    .poll_timeout()
                    .expect("a candidate plans")
                    .saturating_duration_since(quit)
            })
            .collect();
        let jitter = c.config(NodeId(2)).timing().expect("valid").jitter;
        let step = jitter / 3;
        let (lo, hi) = (waits[0].min(waits[1]), waits[0].max(waits[1]));
        assert_eq!(
            lo,
            Duration::ZERO,
            "{name}: the first in line tries at once"
        );
        assert_eq!(hi, step, "{name}: the second waits one step");
        first[if waits[0] == lo { 1 } else { 2 }] += 1;
        // Node 1 resigned, so it is not in this order; over the leases where it would
        // have been first, nodes 2 and 3 share the lead.
    }
    assert!(first[1] > 100 && first[2] > 100, "{first:?}");
}

/// The acceptance log exists for the simulator's checker only: a node keeps nothing unless
/// asked (the `sim` feature is on in the `gen-paxos` tool's build, and a log that grew with
/// every acceptance was most of a real node's memory after a minute at 10,000 leases).
#[test]
fn acceptance_log_is_kept_only_when_the_simulator_asks() {
    let mut c = Cluster::new(3, None);
    c.node(3).record_accepts();
    c.campaign(1, t(START));
    for step in 0..5 {
        c.deliver(t(START + 1 + step), |_| true);
    }
    assert_eq!(c.elected(1).len(), 1);
    assert!(c.node(2).take_accept_log().is_empty());
    assert_eq!(c.node(3).take_accept_log().len(), 1);
    assert!(c.node(3).take_accept_log().is_empty(), "taken once");
}

/// Fresh attempts are paced: a burst starts at once, the rest wait in the node's queue
/// (postponed once, not again and again) and start at the rate in force, which begins at a
/// tenth of `attempt_rate` (slow start) and is cut while attempts go unanswered. Without
/// pacing, 100,000 leases started together never got one master: every attempt timed out
/// in the queues and retried.
#[test]
fn fresh_attempts_beyond_the_burst_are_paced() {
    let mut c = Cluster::new(3, None);
    let now = t(START);
    let config = c.config(NodeId(1));
    assert_eq!((config.attempt_rate, config.attempt_burst), (10_000, 1_000));
    for i in 0..3_000 {
        let name = LeaseName::new(format!("p{i}")).expect("valid name");
        c.node(1).join(now, name, Some(3)).expect("join");
    }
    c.timeout(1, now);
    let s = c.node(1).stats();
    // Slow start: 1,000 per second after a burst of 100.
    assert_eq!(s.attempt_rate, 1_000);
    assert_eq!((s.attempts, s.paced_attempts), (100, 2_900));
    assert_eq!(s.deferred_acquisitions, 2_900);
    // The next turn is one gap (1 ms) later.
    assert_eq!(
        c.node(1).poll_timeout(),
        Some(now + Duration::from_millis(1))
    );
    // 40 ms later (before the first retransmission): one more per gap.
    c.timeout(1, now + Duration::from_millis(40));
    let s = c.node(1).stats();
    assert_eq!(s.attempts, 140, "one per gap {s:?}");
    assert_eq!((s.paced_attempts, s.deferred_acquisitions), (2_900, 2_860));
    // Nobody answers (nothing is delivered): retransmissions, and the rate is cut.
    let mut at = now + Duration::from_millis(40);
    while at < now + Duration::from_secs(1) {
        at = at + Duration::from_millis(10);
        c.timeout(1, at);
    }
    let s = c.node(1).stats();
    assert!(s.retransmissions > 0, "{s:?}");
    assert!(s.attempt_rate_cuts >= 1 && s.attempt_rate < 1_000, "{s:?}");
    assert_eq!(s.paced_attempts, 2_900, "each lease queued once");
    assert_eq!(s.deferred_acquisitions, 3_000 - s.attempts, "{s:?}");
}
