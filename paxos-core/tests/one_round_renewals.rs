//! P7: the owner of a lease renews it in one round trip (Accept at a fresh ballot, no
//! Prepare), retries the same way after a refusal, and relies on A2's refusal: an acceptor
//! holding another owner's live lease refuses a renewal's late Accept.

mod common;

use std::time::Duration;

use common::*;
use gen_paxos_core::{
    Ballot, Envelope, Event, Incarnation, Message, NodeId, Timestamp, UnsafeRule,
};

/// Node 1 elected by all three voters at about `START`; returns when its renewal is due.
fn elected_node_1(c: &mut Cluster) -> Timestamp {
    c.campaign(1, t(START));
    for step in 0..4 {
        c.deliver(t(START + 1 + step), |w| kind(w) != "learn");
    }
    c.wire.clear();
    assert_eq!(c.elected(1).len(), 1);
    c.node(1)
        .poll_timeout()
        .expect("the master plans its renewal")
}

fn renewed(c: &Cluster, id: u64) -> usize {
    c.events
        .iter()
        .filter(|(n, e)| *n == NodeId(id) && matches!(e, Event::Renewed { .. }))
        .count()
}

fn sent_by(c: &Cluster, id: u64, what: &str) -> usize {
    c.wire
        .iter()
        .filter(|w| w.from == NodeId(id) && w.to != NodeId(id) && kind(w) == what)
        .count()
}

#[test]
fn a_renewal_takes_one_round_trip() {
    let mut c = Cluster::new(3, None);
    let renew = elected_node_1(&mut c);
    c.timeout(1, renew);
    assert_eq!(sent_by(&c, 1, "prepare"), 0, "no Prepare");
    assert_eq!(sent_by(&c, 1, "accept"), 2, "Accept to both other voters");
    c.deliver(renew + Duration::from_millis(1), |w| kind(w) == "accept");
    c.deliver(renew + Duration::from_millis(2), |w| kind(w) == "accepted");
    assert_eq!(renewed(&c, 1), 1);
    let token = c.events.iter().rev().find_map(|(_, e)| match e {
        Event::Renewed { token, .. } => Some(*token),
        _ => None,
    });
    assert!(
        token > c.elected(1).first().copied(),
        "a fresh, higher ballot"
    );
}

#[test]
fn with_one_round_renewals_off_a_renewal_prepares_first() {
    let mut c = Cluster::new(3, None);
    c.two_round_renewals = true;
    for id in 1..=3 {
        c.start(NodeId(id), t(0), id * 100);
    }
    let renew = elected_node_1(&mut c);
    c.timeout(1, renew);
    assert_eq!(sent_by(&c, 1, "prepare"), 2);
    assert_eq!(sent_by(&c, 1, "accept"), 0);
    for step in 1..=4 {
        c.deliver(renew + Duration::from_millis(step), |_| true);
    }
    assert_eq!(renewed(&c, 1), 1);
}

/// A renewal refused because an acceptor promised a higher ballot is retried in one round
/// above that ballot (T4). (Retrying with Prepare would not do: the acceptors that took the
/// refused renewal report it as a live lease of this owner under a ballot other than the
/// one being renewed, which blocks (P2, rule 5).)
#[test]
fn a_refused_renewal_is_retried_in_one_round_above_the_refusal() {
    let mut c = Cluster::new(3, None);
    let renew = elected_node_1(&mut c);
    // Node 3 promises a higher ballot of node 2's (which its Promise reports blocked by
    // node 1's live lease); node 1 does not hear of it.
    let higher = Ballot {
        counter: 10,
        incarnation: Incarnation(200),
        node: NodeId(2),
    };
    c.wire.push(Wire {
        from: NodeId(2),
        to: NodeId(3),
        envelope: Envelope {
            lease: lease(),
            message: Message::Prepare { ballot: higher },
        },
    });
    c.deliver(renew.saturating_sub(Duration::from_millis(4)), |_| true);
    c.wire.clear();
    c.timeout(1, renew);
    assert_eq!(sent_by(&c, 1, "accept"), 2);
    c.deliver(renew + Duration::from_millis(1), |w| kind(w) == "accept");
    c.deliver(renew + Duration::from_millis(2), |w| kind(w) == "reject");
    assert_eq!(renewed(&c, 1), 0);
    c.wire.clear();
    let retry = c.node(1).poll_timeout().expect("the owner tries again");
    assert!(retry < renew + LEASE / 2, "well before the lease ends");
    c.timeout(1, retry);
    assert_eq!(sent_by(&c, 1, "prepare"), 0);
    let retried = c.wire.iter().find_map(|w| match w.envelope.message {
        Message::Accept { ballot, .. } if w.from == NodeId(1) => Some(ballot),
        _ => None,
    });
    assert!(retried.is_some_and(|b| b > higher), "{retried:?}");
    for step in 1..=4 {
        c.deliver(retry + Duration::from_millis(step), |w| kind(w) != "learn");
    }
    assert_eq!(renewed(&c, 1), 1, "and renews");
    assert_eq!(c.masters(retry + Duration::from_millis(5)), vec![NodeId(1)]);
}

/// The two-master shape P7 must survive (found by the model checker with A2's refusal
/// off): node 1's renewal Accept, sent while it held the lease, reaches node 2 after the
/// lease ran out and node 2 won it with a lower ballot. Node 2's acceptor holds node 2's
/// live lease and refuses; without the refusal both would be master.
fn late_renewal_accept(rule: Option<UnsafeRule>) -> Vec<NodeId> {
    let mut c = Cluster::new(3, rule);
    // Node 1 is elected by nodes 1 and 3; node 2 hears nothing of it.
    c.campaign(1, t(START));
    c.drop_where(|w| w.to == NodeId(2));
    for step in 0..4 {
        c.deliver(t(START + 1 + step), |w| kind(w) != "learn");
        c.drop_where(|w| w.to == NodeId(2) && kind(w) != "accept");
    }
    c.wire.clear();
    assert_eq!(c.elected(1).len(), 1);
    // Its renewal's Accept to node 2 is held in the network; the one to node 3 is lost.
    let renew = c.node(1).poll_timeout().expect("renewal planned");
    c.timeout(1, renew);
    c.drop_where(|w| !(is(w, 1, 2) && kind(w) == "accept"));
    assert_eq!(c.wire.len(), 1);
    let held = c.wire.pop().expect("held");
    assert!(matches!(held.envelope.message, Message::Accept { .. }));
    // Node 1's lease ends (START + 1000); node 3's exclusion of it too. Node 2 wins with
    // nodes 2 and 3, its ballot below node 1's renewal ballot (it never heard of node 1).
    let later = START + 1100;
    c.timeout(1, t(later));
    c.drop_where(|_| true);
    c.campaign(2, t(later));
    for step in 0..4 {
        c.deliver(t(later + 1 + step), |w| {
            kind(w) != "learn" && w.to != NodeId(1)
        });
    }
    c.wire.clear();
    assert_eq!(c.elected(2).len(), 1, "node 2 holds the lease");
    // The late Accept arrives; node 1's renewal attempt (deadline renew + 1 s) still runs.
    c.wire.push(held);
    c.deliver(t(later + 10), |_| true);
    c.deliver(t(later + 11), |w| w.to == NodeId(1));
    c.masters(t(later + 12))
}

#[test]
fn a_late_renewal_accept_is_refused_by_the_next_owners_acceptor() {
    assert_eq!(late_renewal_accept(None), vec![NodeId(2)]);
    assert_eq!(
        late_renewal_accept(Some(UnsafeRule::OneRoundOverwrite)),
        vec![NodeId(1), NodeId(2)],
        "without A2's refusal both are master"
    );
}
