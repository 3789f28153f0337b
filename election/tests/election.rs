//! Whole-runtime election behaviour on the in-memory transport and paused time.
#![allow(
    clippy::unwrap_used,
    reason = "in tests a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::{Cluster, LEASE, MAX_DELAY, Quirks, What, check_exclusive};
use gen_paxos_election::{Candidacy, ElectionEvent, NodeId, SurrenderReason};
use tokio::time::Instant;

/// The first election follows the restart quarantine (one D_A) plus a few attempts.
fn first_election_bound() -> Duration {
    let d_a = common::config(NodeId(1), &[NodeId(1)], &[], 0).acceptor_duration();
    d_a + LEASE / 2
}

/// The longest a default-priority candidate waits before trying for a free lease.
fn candidate_wait() -> Duration {
    let jitter = common::config(NodeId(1), &[NodeId(1)], &[], 0).jitter();
    jitter * (u32::from(gen_paxos_core::MAX_PRIORITY) + 1)
}

fn d_a() -> Duration {
    common::config(NodeId(1), &[NodeId(1)], &[], 0).acceptor_duration()
}

async fn elects_one_and_keeps_it(voters: u64, seed: u64) {
    let mut c = Cluster::start(voters, 0, seed);
    c.join_all("main").await;
    let master = c.wait_master("main", first_election_bound()).await;
    c.run_checking("main", LEASE * 100).await;
    assert_eq!(c.masters("main"), vec![master], "the master kept its lease");
    let callbacks = c.callbacks("main");
    let elected: Vec<_> = callbacks
        .iter()
        .filter(|r| matches!(r.what, What::Elected { .. }))
        .collect();
    assert_eq!(elected.len(), 1, "exactly one election: {elected:?}");
    assert_eq!(elected[0].node, master);
    assert!(
        !callbacks
            .iter()
            .any(|r| r.node == master && matches!(r.what, What::Surrendered { .. })),
        "no spurious surrender on the master"
    );
    // Every other voter was told who won, with the sync payload.
    for &v in c.voters.iter().filter(|&&v| v != master) {
        let told = callbacks
            .iter()
            .find(|r| r.node == v)
            .map(|r| r.what.clone());
        assert_eq!(
            told,
            Some(What::Surrendered {
                reason: SurrenderReason::OtherElected,
                master: Some(master),
                sync: Some(format!("sync from {master}")),
            }),
            "node {v}"
        );
    }
    // All views agree and the master's view is exact.
    for (&id, node) in &c.nodes {
        let m = node.master("main").expect("a master is known");
        assert_eq!(m.node, master);
        assert_eq!(m.exact, id == master);
    }
    check_exclusive(&c.records(), "main");
}

#[tokio::test(start_paused = true)]
async fn three_node_cluster_elects_one_master_and_keeps_it_for_100_leases() {
    elects_one_and_keeps_it(3, 1).await;
}

#[tokio::test(start_paused = true)]
async fn five_node_cluster_elects_one_master_and_keeps_it_for_100_leases() {
    elects_one_and_keeps_it(5, 2).await;
}

#[tokio::test(start_paused = true)]
async fn new_master_after_a_crash_within_d_a_and_after_the_old_authority_ended() {
    for seed in [3, 4, 5] {
        let mut c = Cluster::start(3, 0, seed);
        c.join_all("main").await;
        let old = c.wait_master("main", first_election_bound()).await;
        c.run_checking("main", LEASE * 3).await;
        let old_deadline = c
            .handle(old, "main")
            .guard()
            .and_then(|g| g.deadline())
            .unwrap();
        let crashed_at = Instant::now();
        c.crash(old);
        // The bound: the acceptors' exclusion (at most D_A), plus the wait a default
        // candidate takes before trying for a free lease (three priority steps of jitter
        // and a random one: at most 4 jitter steps), plus message delays (a collision of
        // two candidates costs a pre-emption and two round trips).
        let bound = d_a() + candidate_wait() + 10 * MAX_DELAY + Duration::from_millis(20);
        let new = c.wait_master("main", bound).await;
        assert_ne!(new, old);
        let failover = Instant::now() - crashed_at;
        assert!(
            failover <= bound,
            "failover took {failover:?}, bound {bound:?} (seed {seed})"
        );
        let elected_at = c
            .callbacks("main")
            .iter()
            .find(|r| r.node == new && matches!(r.what, What::Elected { .. }))
            .map(|r| r.at)
            .unwrap();
        assert!(
            elected_at > old_deadline,
            "the new master started before the old authority ended (seed {seed})"
        );
        check_exclusive(&c.records(), "main");
    }
}

#[tokio::test(start_paused = true)]
async fn partitioned_master_surrenders_before_the_new_master_is_elected_and_does_not_disrupt_it() {
    let mut c = Cluster::start(5, 0, 6);
    c.join_all("main").await;
    let old = c.wait_master("main", first_election_bound()).await;
    c.run_checking("main", LEASE * 2).await;
    let others: Vec<NodeId> = c.voters.iter().copied().filter(|&v| v != old).collect();
    c.net.partition(&[old], &others);
    c.run_checking("main", d_a() + LEASE / 2).await;
    let new = c.wait_master("main", LEASE).await;
    assert_ne!(new, old);

    let callbacks = c.callbacks("main");
    let surrendered = callbacks
        .iter()
        .find(|r| {
            r.node == old
                && matches!(
                    r.what,
                    What::Surrendered {
                        reason: SurrenderReason::Expired,
                        ..
                    }
                )
        })
        .expect("the old master surrendered");
    let elected = callbacks
        .iter()
        .find(|r| r.node == new && matches!(r.what, What::Elected { .. }))
        .expect("the new master was elected");
    assert!(surrendered.at < elected.at);

    // Healing: the old master learns the new one and leaves it alone.
    c.net.heal();
    let before = c.callbacks("main").len();
    c.run_checking("main", LEASE * 10).await;
    assert_eq!(c.masters("main"), vec![new]);
    let after = c.callbacks("main");
    assert!(
        !after[before..]
            .iter()
            .any(|r| matches!(r.what, What::Elected { .. })
                || (r.node == new && matches!(r.what, What::Surrendered { .. }))),
        "no election or surrender after healing: {:?}",
        &after[before..]
    );
    assert_eq!(c.nodes[&old].master("main").map(|m| m.node), Some(new));
    check_exclusive(&c.records(), "main");
}

#[tokio::test(start_paused = true)]
async fn resign_hands_over_within_a_few_message_delays() {
    let mut c = Cluster::start(3, 0, 7);
    c.join_all("main").await;
    let old = c.wait_master("main", first_election_bound()).await;
    c.run_checking("main", LEASE).await;
    let resigned_at = Instant::now();
    assert!(c.nodes[&old].resign("main").await.unwrap());
    assert!(!c.handle(old, "main").is_master(), "authority ends at once");
    let new = c.wait_master("main", Duration::from_millis(100)).await;
    assert_ne!(new, old);
    let handover = Instant::now() - resigned_at;
    assert!(
        handover <= 10 * MAX_DELAY + Duration::from_millis(10),
        "{handover:?}"
    );
    let told = c
        .callbacks("main")
        .into_iter()
        .find(|r| r.node == old && matches!(r.what, What::Surrendered { .. }))
        .map(|r| r.what);
    assert!(matches!(
        told,
        Some(What::Surrendered {
            reason: SurrenderReason::Resigned,
            ..
        })
    ));
    c.run_checking("main", LEASE * 3).await;
    assert_eq!(c.masters("main"), vec![new]);
    check_exclusive(&c.records(), "main");
}

#[tokio::test(start_paused = true)]
async fn observers_and_learner_only_voters_are_never_elected() {
    let mut c = Cluster::start(3, 1, 8);
    c.join(NodeId(1), "main", Candidacy::candidate(), Quirks::default())
        .await;
    for n in [2, 3] {
        c.join(NodeId(n), "main", Candidacy::Observer, Quirks::default())
            .await;
    }
    c.join(NodeId(4), "main", Candidacy::Observer, Quirks::default())
        .await;
    // An observer node cannot stand at all.
    let refused = c.nodes[&NodeId(4)]
        .join("other", common_recorder(&c, 4), Candidacy::candidate())
        .await;
    assert!(refused.is_err());

    assert_eq!(
        c.wait_master("main", first_election_bound()).await,
        NodeId(1)
    );
    c.crash(NodeId(1));
    c.run_checking("main", LEASE * 5).await;
    assert!(c.masters("main").is_empty());
    assert!(
        !c.callbacks("main")
            .iter()
            .any(|r| r.node != NodeId(1) && matches!(r.what, What::Elected { .. }))
    );
    // The observer was never told it lost a lease it never stood for.
    assert!(
        !c.callbacks("main")
            .iter()
            .any(|r| r.node == NodeId(4) && matches!(r.what, What::Surrendered { .. }))
    );
    assert_eq!(c.nodes[&NodeId(4)].observers(), vec![NodeId(4)]);
}

fn common_recorder(c: &Cluster, node: u64) -> common::Recorder {
    common::Recorder {
        node: NodeId(node),
        lease: "other".into(),
        log: c.log.clone(),
        quirks: Quirks::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_preferred_candidate_wins_a_free_lease() {
    for seed in 10..15 {
        let mut c = Cluster::start(3, 0, seed);
        let preferred = NodeId(1 + seed % 3);
        for node in c.all() {
            let priority = if node == preferred { 3 } else { 0 };
            c.join(
                node,
                "main",
                Candidacy::with_priority(priority),
                Quirks::default(),
            )
            .await;
        }
        assert_eq!(
            c.wait_master("main", first_election_bound()).await,
            preferred,
            "seed {seed}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_releases_the_lease_at_once() {
    let mut c = Cluster::start(3, 0, 16);
    c.join_all("main").await;
    let old = c.wait_master("main", first_election_bound()).await;
    let dropped_at = Instant::now();
    c.nodes.remove(&old);
    c.handles.retain(|(n, _), _| *n != old);
    let new = c.wait_master("main", Duration::from_millis(100)).await;
    assert_ne!(new, old);
    assert!(Instant::now() - dropped_at < LEASE / 10);
}

#[tokio::test(start_paused = true)]
async fn shutdown_resigns_everything_and_reports_it() {
    let mut c = Cluster::start(3, 0, 17);
    c.join_all("a").await;
    c.join_all("b").await;
    let master_a = c.wait_master("a", first_election_bound()).await;
    c.wait_master("b", first_election_bound()).await;
    let node = c.nodes[&master_a].clone();
    let mut events = node.events();
    node.shutdown().await;
    assert!(node.is_stopped());
    assert!(!c.handle(master_a, "a").is_master());
    assert!(node.resign("a").await.unwrap_err().is_stopped());
    let mut saw_stopped = false;
    while let Ok(event) = events.try_recv() {
        if let ElectionEvent::Surrendered { reason, .. } = event {
            assert_eq!(reason, SurrenderReason::Shutdown);
        }
        saw_stopped |= event == ElectionEvent::Stopped;
    }
    assert!(saw_stopped);
    let new = c.wait_master("a", Duration::from_millis(100)).await;
    assert_ne!(new, master_a);
    let told = c
        .callbacks("a")
        .into_iter()
        .find(|r| r.node == master_a && matches!(r.what, What::Surrendered { .. }))
        .map(|r| r.what);
    assert!(matches!(
        told,
        Some(What::Surrendered {
            reason: SurrenderReason::Shutdown,
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn watch_follows_master_changes_and_queries_report_peers() {
    let mut c = Cluster::start(3, 0, 18);
    c.join_all("main").await;
    let mut watch = c.handle(NodeId(2), "main").watch();
    let seen = *watch.wait_for(|m| m.is_some()).await.unwrap();
    let old = seen.unwrap().node;
    let crash_time = Instant::now();
    c.crash(old);
    let survivor = c.voters.iter().copied().find(|&v| v != old).unwrap();
    // A watch made after the election starts from the master known now (the channel is
    // made by the first watcher, under the view's lock).
    let mut watch = c.handle(survivor, "main").watch();
    assert_eq!(watch.borrow().map(|m| m.node), Some(old));
    watch.wait_for(|m| m.is_none()).await.unwrap();
    let next = *watch
        .wait_for(|m| m.is_some_and(|m| m.node != old))
        .await
        .unwrap();
    assert!(Instant::now() - crash_time < d_a() + LEASE / 10);
    let new = next.unwrap().node;
    c.run_checking("main", LEASE * 2).await;
    let node = &c.nodes[&new];
    assert_eq!(node.down(), vec![old]);
    assert_eq!(node.alive().len(), 2);
    assert_eq!(node.candidates(), c.voters);
    // The master's Leader was told (gen_leader handle_DOWN).
    assert!(
        c.callbacks("main")
            .iter()
            .any(|r| r.node == new && r.what == What::PeerDown(old))
    );
    let status = node.status(&gen_paxos_election::StatusRequest::all());
    assert_eq!(status.leases.len(), 1);
    assert_eq!(status.leases[0].master, Some(new));
    assert!(status.leases[0].exact);
}

/// A follower's view of the master follows its renewals: the token and the estimated
/// expiry move forward with each one, though who is master does not change (the core's
/// `MasterRenewed`). Without it a follower's `master()` would show the expiry of the
/// first Learn and then no master at all after one lease.
#[tokio::test(start_paused = true)]
async fn a_followers_view_of_the_master_moves_with_its_renewals() {
    let mut c = Cluster::start(3, 0, 7);
    c.join_all("main").await;
    let master = c.wait_master("main", first_election_bound()).await;
    let follower = *c.voters.iter().find(|&&v| v != master).unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(LEASE).await;
        let m = c.nodes[&follower]
            .master("main")
            .expect("a master is known");
        assert_eq!(m.node, master);
        assert!(!m.exact);
        assert!(m.expires > Instant::now(), "the view is current");
        seen.push((m.token, m.expires));
    }
    for pair in seen.windows(2) {
        assert!(pair[1].0 > pair[0].0, "tokens grow: {seen:?}");
        assert!(pair[1].1 > pair[0].1, "expiries move forward: {seen:?}");
    }
    // Renewals are not master changes: the follower's watch saw one master, once.
    let changes = c
        .records()
        .iter()
        .filter(|r| {
            r.node == follower && matches!(r.what, What::Event(ElectionEvent::MasterChanged { .. }))
        })
        .count();
    assert_eq!(changes, 1, "renewals were reported as master changes");
}
