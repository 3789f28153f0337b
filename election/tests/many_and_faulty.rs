//! Many leases on one cluster; panicking and slow `Leader` implementations.
#![allow(
    clippy::unwrap_used,
    reason = "in tests a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::{Cluster, LEASE, Quirks, What, check_exclusive};
use gen_paxos_election::{Candidacy, ElectionEvent, NodeId, StatusRequest, SurrenderReason};
use tokio::time::Instant;

fn first_election_bound() -> Duration {
    common::config(NodeId(1), &[NodeId(1)], &[], 0).acceptor_duration() + LEASE / 2
}

#[tokio::test(start_paused = true)]
async fn a_thousand_leases_on_three_nodes_all_get_a_master_and_keep_it() {
    // Past the metrics' per-lease limit (1,000), joined out of name order.
    const LEASES: usize = 1010;
    let mut c = Cluster::start(3, 0, 30);
    let names: Vec<String> = (0..LEASES).map(|i| format!("lease-{i:04}")).collect();
    for i in 0..LEASES {
        c.join_all(&names[i * 7 % LEASES]).await;
    }
    // Every lease gets a master; the quarantine and duels are the same for all of them.
    let end = Instant::now() + first_election_bound() + LEASE * 3;
    let masters = loop {
        let masters: Vec<Vec<NodeId>> = names.iter().map(|n| c.masters(n)).collect();
        assert!(masters.iter().all(|m| m.len() <= 1));
        if masters.iter().all(|m| m.len() == 1) {
            break masters;
        }
        assert!(
            Instant::now() < end,
            "{} leases without a master",
            masters.iter().filter(|m| m.is_empty()).count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // And keeps it for five leases: no lease changes hands.
    let end = Instant::now() + LEASE * 5;
    while Instant::now() < end {
        tokio::time::sleep(LEASE / 10).await;
        for (name, before) in names.iter().zip(&masters) {
            assert_eq!(&c.masters(name), before, "{name}");
        }
    }
    let records = c.records();
    assert!(!records.iter().any(|r| matches!(
        r.what,
        What::Surrendered {
            reason: SurrenderReason::Expired | SurrenderReason::Lost,
            ..
        }
    )));
    // Metrics: per lease the first 1,000 names in name order, the counts over all of them.
    let mut held = 0.0;
    for id in 1..=3 {
        let text = metrics_text(&c.nodes[&NodeId(id)]);
        let known: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("gen_paxos_lease_master_known{lease=\""))
            .map(|l| l.split('"').next().unwrap())
            .collect();
        assert_eq!(
            known,
            names[..1000].iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(metric(&text, "gen_paxos_leases_joined"), LEASES as f64);
        assert_eq!(metric(&text, "gen_paxos_leases_without_master"), 0.0);
        held += metric(&text, "gen_paxos_leases_held");
        // The driver's lateness: Prometheus histograms, cumulative up to `+Inf` = count.
        for h in [
            "gen_paxos_driver_turn_seconds",
            "gen_paxos_driver_timer_lateness_seconds",
        ] {
            let count = metric(&text, &format!("{h}_count"));
            assert!(count > 0.0, "{h}: no observation");
            let prefix = format!("{h}_bucket{{le=\"");
            let buckets: Vec<f64> = text
                .lines()
                .filter_map(|l| l.strip_prefix(prefix.as_str()))
                .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(buckets.len(), 13, "{h}");
            assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{h}: {buckets:?}");
            assert_eq!(buckets.last(), Some(&count), "{h}: {buckets:?}");
        }
    }
    assert_eq!(held, LEASES as f64, "every lease held by exactly one node");
}

/// `election`'s metrics in the Prometheus text format.
fn metrics_text(election: &gen_paxos_election::Election) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(election.metrics()));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

/// The value of the unlabelled metric `name` in `text`.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
        .parse()
        .unwrap()
}

/// A node with many leases answers status in pages: each page sorted, the next one
/// starting after the last name of the one before, `more` until the last; the counts are of
/// every joined lease whatever the page.
#[tokio::test(start_paused = true)]
async fn status_pages_cover_every_lease_once_in_name_order() {
    const LEASES: usize = 25;
    let mut c = Cluster::start(3, 0, 31);
    let mut names: Vec<String> = (0..LEASES).map(|i| format!("p-{}", i * 7 % 25)).collect();
    for name in &names {
        c.join_all(name).await;
    }
    names.sort();
    let end = Instant::now() + first_election_bound() + LEASE * 3;
    while names.iter().any(|n| c.masters(n).len() != 1) {
        assert!(Instant::now() < end, "not every lease has a master");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(LEASE / 2).await;
    let node = &c.nodes[&NodeId(1)];
    let (mut seen, mut after, mut pages) = (Vec::new(), None, Vec::new());
    loop {
        let page = node.status(&StatusRequest::page(after.clone(), 10));
        assert_eq!((page.joined, page.with_master), (25, 25));
        pages.push((page.leases.len(), page.more));
        seen.extend(page.leases.iter().map(|l| l.lease.as_str().to_string()));
        after = seen.last().cloned();
        if !page.more {
            break;
        }
    }
    assert_eq!(pages, vec![(10, true), (10, true), (5, false)]);
    assert_eq!(seen, names, "every lease once, in name order");
    let summary = node.status(&StatusRequest::page(None, 0));
    assert!(summary.leases.is_empty() && summary.more);
    assert_eq!((summary.joined, summary.with_master), (25, 25));
    let all = node.status(&StatusRequest::all());
    assert_eq!(all.leases.len(), 25);
    assert!(!all.more);
    let one = node.status(&StatusRequest::lease("p-7"));
    assert_eq!(one.leases.len(), 1);
    assert_eq!(one.leases[0].lease.as_str(), "p-7");
    assert!(one.leases[0].master.is_some());
    assert!(node.status(&StatusRequest::lease("p-77")).leases.is_empty());
    // A page may start after a name that was never joined: "p-15" < "p-15a" < "p-16".
    let from = node.status(&StatusRequest::page(Some("p-15a".into()), 2));
    let from: Vec<&str> = from.leases.iter().map(|l| l.lease.as_str()).collect();
    assert_eq!(from, ["p-16", "p-17"]);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_leader_surrenders_its_lease_and_other_leases_carry_on() {
    let mut c = Cluster::start(3, 0, 31);
    // Node 1 is preferred for both leases; its "bad" leader panics when elected.
    let panicky = Quirks {
        panic_on_elected: true,
        ..Quirks::default()
    };
    c.join(NodeId(1), "bad", Candidacy::with_priority(3), panicky)
        .await;
    c.join(
        NodeId(1),
        "good",
        Candidacy::with_priority(3),
        Quirks::default(),
    )
    .await;
    for n in [2, 3] {
        for lease in ["bad", "good"] {
            c.join(
                NodeId(n),
                lease,
                Candidacy::with_priority(0),
                Quirks::default(),
            )
            .await;
        }
    }
    let mut events = c.nodes[&NodeId(1)].events();
    assert_eq!(
        c.wait_master("good", first_election_bound()).await,
        NodeId(1)
    );
    // The panic surrenders "bad" at once (a release, not an expiry) and another node
    // takes over within a few message delays.
    let new = c.wait_master("bad", first_election_bound()).await;
    let new = if new == NodeId(1) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        c.wait_master("bad", Duration::from_millis(100)).await
    } else {
        new
    };
    assert_ne!(new, NodeId(1));
    let mut failed = false;
    while let Ok(event) = events.try_recv() {
        failed |= matches!(event, ElectionEvent::LeaderFailed { ref lease, .. } if lease.as_str() == "bad");
    }
    assert!(failed, "the panic was reported");
    // Node 1 no longer stands for "bad" but still serves "good".
    c.run_checking("bad", LEASE * 5).await;
    assert_eq!(c.masters("bad"), vec![new]);
    assert_eq!(c.masters("good"), vec![NodeId(1)]);
    let reply = c
        .handle(NodeId(2), "good")
        .call("still there?".into())
        .await;
    assert_eq!(reply, Ok("1 answers still there? to 2".to_string()));
    check_exclusive(&c.records(), "bad");
    check_exclusive(&c.records(), "good");
}

#[tokio::test(start_paused = true)]
async fn a_slow_on_elected_does_not_delay_renewal_or_other_leases() {
    let mut c = Cluster::start(3, 0, 32);
    let slow = Quirks {
        slow_elected: Some(LEASE * 10),
        ..Quirks::default()
    };
    c.join(NodeId(1), "slow", Candidacy::with_priority(3), slow)
        .await;
    c.join(
        NodeId(1),
        "other",
        Candidacy::with_priority(3),
        Quirks::default(),
    )
    .await;
    for n in [2, 3] {
        for lease in ["slow", "other"] {
            c.join(
                NodeId(n),
                lease,
                Candidacy::with_priority(0),
                Quirks::default(),
            )
            .await;
        }
    }
    assert_eq!(
        c.wait_master("slow", first_election_bound()).await,
        NodeId(1)
    );
    assert_eq!(
        c.wait_master("other", first_election_bound()).await,
        NodeId(1)
    );
    // on_elected sleeps for ten leases; the lease is renewed all along.
    c.run_checking("slow", LEASE * 12).await;
    assert_eq!(c.masters("slow"), vec![NodeId(1)]);
    assert_eq!(c.masters("other"), vec![NodeId(1)]);
    let renewals = c
        .records()
        .iter()
        .filter(|r| {
            r.node == NodeId(1)
                && r.lease == "slow"
                && matches!(r.what, What::Event(ElectionEvent::Renewed { .. }))
        })
        .count();
    assert!(renewals >= 30, "{renewals} renewals");
    // Calls to the busy lease wait behind the slow callback and time out, boundedly;
    // the other lease answers.
    let reply = c.handle(NodeId(2), "other").call("ping".into()).await;
    assert_eq!(reply, Ok("1 answers ping to 2".to_string()));
}

/// `renewal_events = false` (what `gen-paxos node --quiet-renewals` sets): the master keeps
/// its lease through many renewals, its guard's deadline moves with them and the core
/// counts them, but no `Renewed` event is published; `Elected` still is.
#[tokio::test(start_paused = true)]
async fn without_renewal_events_leases_are_renewed_and_no_renewed_event_is_published() {
    let mut c = Cluster::start_with(3, 0, 32, |config| config.renewal_events = Some(false));
    c.join_all("quiet").await;
    let master = c.wait_master("quiet", first_election_bound()).await;
    let deadline = |c: &Cluster| {
        c.nodes[&master]
            .guard("quiet")
            .and_then(|g| g.deadline())
            .expect("master")
    };
    let before = deadline(&c);
    c.run_checking("quiet", LEASE * 5).await;
    assert_eq!(c.masters("quiet"), vec![master]);
    let after = deadline(&c);
    assert!(
        after >= before + LEASE * 4,
        "the deadline moves with renewals"
    );
    assert!(c.nodes[&master].core_stats().renewals >= 10);
    let events = |what: fn(&ElectionEvent) -> bool| {
        c.records()
            .iter()
            .filter(|r| matches!(&r.what, What::Event(e) if what(e)))
            .count()
    };
    assert_eq!(events(|e| matches!(e, ElectionEvent::Renewed { .. })), 0);
    assert_eq!(events(|e| matches!(e, ElectionEvent::Elected { .. })), 1);
}
