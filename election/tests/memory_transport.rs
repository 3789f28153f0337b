//! The in-memory transport's fault injection, and configuration from TOML.
#![allow(
    clippy::unwrap_used,
    reason = "in tests a failed unwrap is a failed test"
)]

use std::time::Duration;

use gen_paxos_election::memory::{MemoryNetwork, MemoryTransport};
use gen_paxos_election::{Config, ConfigError, Delivery, NodeId, Transport};
use tokio::time::Instant;

async fn drain(t: &MemoryTransport<u32>, within: Duration) -> Vec<u32> {
    let end = Instant::now() + within;
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout_at(end, t.recv()).await {
        got.push(m.message);
    }
    got
}

async fn lossy_run(seed: u64) -> Vec<u32> {
    let net = MemoryNetwork::new(seed);
    net.set_drop_rate(0.3);
    net.set_duplicate_rate(0.2);
    net.set_delay(Duration::from_millis(1), Duration::from_millis(20));
    let (a, b) = (net.transport(NodeId(1)), net.transport(NodeId(2)));
    for i in 0..200 {
        a.send(NodeId(2), i, Delivery::BestEffort);
    }
    drain(&b, Duration::from_millis(50)).await
}

#[tokio::test(start_paused = true)]
async fn faults_are_deterministic_under_a_seed() {
    let first = lossy_run(9).await;
    assert_eq!(first, lossy_run(9).await);
    assert_ne!(first, lossy_run(10).await);
    // Some lost, some duplicated, some reordered.
    let mut sorted = first.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert!(sorted.len() < 200 && sorted.len() > 100);
    assert!(first.len() > sorted.len());
    assert_ne!(first, {
        let mut s = first.clone();
        s.sort_unstable();
        s
    });
}

#[tokio::test(start_paused = true)]
async fn reliable_messages_keep_their_order_and_are_not_dropped_by_chance() {
    let net = MemoryNetwork::new(1);
    net.set_drop_rate(0.9);
    net.set_delay(Duration::ZERO, Duration::from_millis(30));
    let (a, b) = (net.transport(NodeId(1)), net.transport(NodeId(2)));
    for i in 0..100 {
        a.send(NodeId(2), i, Delivery::Reliable);
    }
    assert_eq!(
        drain(&b, Duration::from_millis(50)).await,
        (0..100).collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn partitions_one_way_cuts_heal_and_crash() {
    let net = MemoryNetwork::new(2);
    let a = net.transport(NodeId(1));
    let b = net.transport(NodeId(2));
    let c = net.transport(NodeId(3));
    net.partition(&[NodeId(1)], &[NodeId(2), NodeId(3)]);
    a.send(NodeId(2), 1, Delivery::Reliable);
    b.send(NodeId(1), 2, Delivery::Reliable);
    b.send(NodeId(3), 3, Delivery::Reliable);
    assert_eq!(drain(&a, Duration::from_millis(5)).await, Vec::<u32>::new());
    assert_eq!(drain(&c, Duration::from_millis(5)).await, vec![3]);
    net.heal();
    net.block(NodeId(1), NodeId(2));
    a.send(NodeId(2), 4, Delivery::Reliable);
    b.send(NodeId(1), 5, Delivery::Reliable);
    assert_eq!(drain(&b, Duration::from_millis(5)).await, Vec::<u32>::new());
    assert_eq!(drain(&a, Duration::from_millis(5)).await, vec![5]);
    net.heal();
    net.crash(NodeId(3));
    b.send(NodeId(3), 6, Delivery::Reliable);
    assert!(c.recv().await.is_none());
    let stats = net.stats();
    assert_eq!(stats.dropped_partition, 4);
    // A restart gets a fresh mailbox.
    let c = net.transport(NodeId(3));
    b.send(NodeId(3), 7, Delivery::Reliable);
    assert_eq!(drain(&c, Duration::from_millis(5)).await, vec![7]);
}

#[test]
fn configuration_comes_from_toml_with_defaults_and_clear_errors() {
    let config: Config = toml::from_str(
        r#"
        node = 2
        voters = [1, 2, 3]
        observers = [4]
        lease_duration = "500ms"
        rho = 0.002
        call_timeout = 750
        "#,
    )
    .unwrap();
    assert_eq!(config.node, NodeId(2));
    assert_eq!(config.lease_duration, Duration::from_millis(500));
    assert_eq!(config.call_timeout(), Duration::from_millis(750));
    assert_eq!(config.surrender_margin(), Duration::from_millis(25));
    assert_eq!(config.validate(), Ok(()));
    // Round trip.
    let text = toml::to_string(&config).unwrap();
    assert_eq!(toml::from_str::<Config>(&text).unwrap(), config);

    let mut bad = config.clone();
    bad.surrender_margin = Some(Duration::from_secs(1));
    let err = bad.validate().unwrap_err();
    assert!(matches!(err, ConfigError::Protocol(_)));
    assert!(err.to_string().contains("surrender margin"), "{err}");
    let mut bad = config.clone();
    bad.heartbeat_interval = Some(Duration::from_secs(1));
    assert!(matches!(bad.validate(), Err(ConfigError::Heartbeat { .. })));
    let mut bad = config;
    bad.voters.clear();
    assert_eq!(
        bad.validate().unwrap_err().to_string(),
        "the voter set is empty"
    );

    let unknown = toml::from_str::<Config>("node = 1\nvoters = [1]\nleese = \"2s\"");
    assert!(unknown.is_err());
    let bad_unit =
        toml::from_str::<Config>("node = 1\nvoters = [1]\nlease_duration = \"2 fortnights\"");
    assert!(
        bad_unit
            .unwrap_err()
            .to_string()
            .contains("invalid duration")
    );
}
