//! gen_leader calls, casts, broadcasts and sync payloads.
#![allow(
    clippy::unwrap_used,
    reason = "in tests a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::{Cluster, LEASE, What};
use gen_paxos_election::{CallError, NodeId};
use tokio::time::Instant;

fn first_election_bound() -> Duration {
    common::config(NodeId(1), &[NodeId(1)], &[], 0).acceptor_duration() + LEASE / 2
}

#[tokio::test(start_paused = true)]
async fn leader_call_from_a_follower_reaches_the_master_and_returns_its_reply() {
    let mut c = Cluster::start(3, 1, 20);
    c.join_all("main").await;
    let master = c.wait_master("main", first_election_bound()).await;
    for node in c.all() {
        let reply = c.handle(node, "main").call(format!("q{node}")).await;
        assert_eq!(reply, Ok(format!("{master} answers q{node} to {node}")));
    }
}

#[tokio::test(start_paused = true)]
async fn leader_call_without_a_master_fails_with_a_clear_error_after_the_call_timeout() {
    let mut c = Cluster::start(3, 0, 21);
    c.join_all("main").await;
    // Before the first election nobody is master (restart quarantine).
    let started = Instant::now();
    let err = c.handle(NodeId(2), "main").call("early".into()).await;
    let waited = Instant::now() - started;
    match err {
        Err(CallError::NoMaster { .. }) => {}
        other => panic!("expected no master, got {other:?}"),
    }
    assert!(err.unwrap_err().is_retryable());
    assert!(
        waited >= LEASE && waited <= LEASE + Duration::from_millis(10),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn leader_call_during_a_master_change_fails_bounded_then_reaches_the_new_master() {
    let mut c = Cluster::start(3, 0, 22);
    c.join_all("main").await;
    let old = c.wait_master("main", first_election_bound()).await;
    let caller = c.voters.iter().copied().find(|&v| v != old).unwrap();
    // The master is cut off: calls in flight get no reply, and fail when its lease runs out.
    c.net.isolate(old);
    let started = Instant::now();
    let err = c.handle(caller, "main").call("during".into()).await;
    let waited = Instant::now() - started;
    assert!(
        matches!(
            err,
            Err(CallError::MasterChanged(_) | CallError::Timeout { .. })
        ),
        "{err:?}"
    );
    assert!(waited <= LEASE + Duration::from_millis(10), "{waited:?}");
    // A new master answers later calls.
    // Generous: with one voter cut off, the two survivors' equal-priority attempts can
    // duel for several leases (a paxos-core liveness limit; safety is unaffected).
    let new = c.wait_master("main", LEASE * 10).await;
    assert_ne!(new, old);
    let reply = c.handle(caller, "main").call("after".into()).await;
    assert_eq!(reply, Ok(format!("{new} answers after to {caller}")));
}

#[tokio::test(start_paused = true)]
async fn a_call_to_a_node_that_lost_the_lease_is_refused() {
    let mut c = Cluster::start(3, 0, 23);
    c.join_all("main").await;
    let old = c.wait_master("main", first_election_bound()).await;
    // Resign and call at once: either the call is refused by the old master or routed to
    // the new one; it never hangs.
    let caller = c.voters.iter().copied().find(|&v| v != old).unwrap();
    let handle = c.handle(caller, "main").clone();
    let call = tokio::spawn(async move { handle.call("x".into()).await });
    assert!(c.nodes[&old].resign("main").await.unwrap());
    let result = call.await.unwrap();
    match result {
        Ok(reply) => assert!(reply.ends_with(&format!("x to {caller}"))),
        Err(e) => assert!(e.is_retryable(), "{e:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn broadcasts_reach_every_live_node_and_casts_reach_the_master() {
    let mut c = Cluster::start(5, 1, 24);
    c.join_all("main").await;
    let master = c.wait_master("main", first_election_bound()).await;
    for node in c.all() {
        let mut watch = c.handle(node, "main").watch();
        watch.wait_for(|m| m.is_some()).await.unwrap();
    }
    let down = c.voters.iter().copied().find(|&v| v != master).unwrap();
    c.crash(down);
    let follower = c
        .voters
        .iter()
        .copied()
        .find(|&v| v != master && v != down)
        .unwrap();
    assert!(matches!(
        c.handle(follower, "main").broadcast("not master".into()),
        Err(CallError::NotMaster(_))
    ));
    c.handle(master, "main")
        .broadcast("hello all".into())
        .unwrap();
    c.handle(follower, "main")
        .cast("hello master".into())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let callbacks = c.callbacks("main");
    let mut reached: Vec<NodeId> = callbacks
        .iter()
        .filter(|r| r.what == What::FromLeader("hello all".into()))
        .map(|r| r.node)
        .collect();
    reached.sort_unstable();
    let mut live: Vec<NodeId> = c.all().into_iter().filter(|&n| n != master).collect();
    live.sort_unstable();
    assert_eq!(reached, live);
    assert!(
        callbacks
            .iter()
            .any(|r| r.node == master && r.what == What::Cast("hello master".into()))
    );
}
