//! gen_leader calls, casts, broadcasts and sync payloads.
#![allow(
    clippy::unwrap_used,
    reason = "in tests a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::{Cluster, LEASE, Quirks, What};
use gen_paxos_election::{CallError, Candidacy, NodeId, StatusRequest, SurrenderReason};
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

/// Leases whose `Leader` callbacks have a task on `node` now.
fn busy(c: &Cluster, node: NodeId) -> u64 {
    c.nodes[&node]
        .status(&StatusRequest::all())
        .load
        .callbacks_busy
}

#[tokio::test(start_paused = true)]
async fn a_lease_s_callbacks_have_a_task_only_while_they_have_work() {
    let mut c = Cluster::start(3, 0, 25);
    let leases: Vec<String> = (0..10).map(|i| format!("idle{i}")).collect();
    for lease in &leases {
        c.join_all(lease).await;
    }
    let mut masters = Vec::new();
    for lease in &leases {
        masters.push(c.wait_master(lease, first_election_bound()).await);
    }
    // Elections, master changes and sync payloads are over well within a lease: then no
    // lease of any node keeps a task, and every callback still ran, in order, with the
    // sync payload each loser waited for.
    tokio::time::sleep(LEASE).await;
    for node in c.all() {
        assert_eq!(busy(&c, node), 0, "node {node}");
    }
    for (lease, &master) in leases.iter().zip(&masters) {
        let mut seen: Vec<(NodeId, What)> = c
            .callbacks(lease)
            .into_iter()
            .map(|r| (r.node, r.what))
            .collect();
        seen.sort_by_key(|(node, _)| *node);
        assert_eq!(seen.len(), 3, "{lease}: {seen:?}");
        for (node, what) in seen {
            if node == master {
                assert!(matches!(what, What::Elected { .. }), "{lease}: {what:?}");
            } else {
                assert_eq!(
                    what,
                    What::Surrendered {
                        reason: SurrenderReason::OtherElected,
                        master: Some(master),
                        sync: Some(format!("sync from {master}")),
                    },
                    "{lease} on {node}"
                );
            }
        }
    }
    // A call wakes the master's parked callbacks, and they park again once answered.
    let caller = c.all().into_iter().find(|&n| n != masters[0]).unwrap();
    let reply = c.handle(caller, &leases[0]).call("wake".into()).await;
    assert_eq!(
        reply,
        Ok(format!("{} answers wake to {caller}", masters[0]))
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(busy(&c, masters[0]), 0);
    // A callback that takes its time keeps its lease's task meanwhile, no other.
    let slow = Quirks {
        slow_elected: Some(Duration::from_secs(1)),
        ..Quirks::default()
    };
    c.join(NodeId(1), "slow", Candidacy::candidate(), slow)
        .await;
    assert_eq!(
        c.wait_master("slow", first_election_bound()).await,
        NodeId(1)
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(busy(&c, NodeId(1)), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(busy(&c, NodeId(1)), 0);
}
