//! What fencing-token order rests on (docs/PROTOCOL.md, section 1). An acceptor that
//! answered both owners carries the old owner's ballot to the new one, whose token is then
//! higher. When none did (with three voters, one restart of the acceptor the two majorities
//! share, the old owner crashed and its messages to the new owner lost), the new owner's
//! ballot follows its own wall clock (T4), and a new owner whose clock is behind gets a
//! lower token: a stall for a resource that refuses lower tokens, never two masters.

mod common;

use common::*;
use gen_paxos_core::{Ballot, NodeId};

/// Node 1 (wall clock at 50 s) is elected by nodes 1 and 2, and nothing of it reaches node
/// 3; node 1 crashes. Node 3 (wall clock at 10 s) is then elected by nodes 2 and 3, node 2
/// having restarted in between if `restart_node_2`. Returns both tokens.
fn handover(restart_node_2: bool) -> (Ballot, Ballot) {
    let mut c = Cluster::new(3, None);
    c.node(1).raise_ballot_floor(50_000);
    c.node(3).raise_ballot_floor(10_000);
    c.campaign(1, t(START));
    for step in 0..6 {
        c.drop_where(|w| w.to == NodeId(3) || w.from == NodeId(3));
        c.deliver(t(START + 1 + step), |_| true);
    }
    let old = *c
        .elected(1)
        .first()
        .expect("node 1 elected by nodes 1 and 2");
    // Node 1 crashes: no Release, and nothing it sent arrives any more.
    c.nodes.remove(&NodeId(1));
    c.wire.clear();
    let mut now = START + 10;
    if restart_node_2 {
        c.start(NodeId(2), t(now), 201);
    }
    // Past node 2's quarantine and node 1's lease and exclusion.
    now += 2_500;
    c.campaign(3, t(now));
    for ms in 1..2_000 {
        let at = t(now + ms);
        c.drop_where(|w| w.to == NodeId(1));
        c.deliver(at, |_| true);
        for id in [2, 3] {
            if c.node(id).poll_timeout().is_some_and(|due| due <= at) {
                c.timeout(id, at);
            }
        }
        assert!(c.masters(at).len() <= 1);
        if let Some(&new) = c.elected(3).first() {
            return (old, new);
        }
    }
    panic!("node 3 was not elected within 2 s");
}

#[test]
fn a_voter_that_answered_both_owners_keeps_the_tokens_increasing() {
    let (old, new) = handover(false);
    assert!(old.counter >= 50_000, "{old:?}");
    assert!(
        new > old,
        "node 2 refused node 3's lower ballot: {old:?} then {new:?}"
    );
}

#[test]
fn with_the_shared_voter_restarted_the_token_follows_the_new_owners_wall_clock() {
    let (old, new) = handover(true);
    assert!(old.counter >= 50_000, "{old:?}");
    assert!(
        new < old && new.counter >= 10_000 && new.counter < 50_000,
        "{old:?} then {new:?}"
    );
}
