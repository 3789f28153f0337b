//! Mutual TLS refuses everyone without a valid cluster certificate for a cluster member,
//! and attribution follows the certificate, never the configuration of the sender.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    Msg, node, node_settings, node_with, raw_connect, recv_within, socket, stats_eventually,
};
use gen_paxos_core::NodeId;
use gen_paxos_election::{Delivery, Transport};
use gen_paxos_quic::{ClusterCa, Config, Error, QuicTransport, Validity};
use time::OffsetDateTime;

/// Sends from `attacker` to node 1 for a while; node 1 must receive nothing and count a
/// refused handshake.
async fn assert_refused(n1: &common::Node, attacker: &common::Node) -> anyhow::Result<()> {
    for i in 0..5 {
        attacker.send(NodeId(1), Msg::Ping(i), Delivery::BestEffort);
        attacker.send(NodeId(1), Msg::Ping(i), Delivery::Reliable);
        assert!(
            recv_within(n1, Duration::from_millis(100)).await.is_none(),
            "a message got through"
        );
    }
    stats_eventually(n1, "a rejected handshake", |s| s.rejected_handshakes >= 1).await?;
    let stats = n1.stats();
    assert_eq!(
        (stats.received, stats.connections_accepted),
        (0, 0),
        "{stats:?}"
    );
    Ok(())
}

/// Sends a frame from a hand-made client with `issued` (trusting the cluster CA) to node
/// 1; node 1 must receive nothing and count a refused handshake.
async fn assert_client_refused(
    n1: &common::Node,
    issued: &gen_paxos_quic::IssuedCert,
    ca: &ClusterCa,
) -> anyhow::Result<()> {
    let a1 = n1.local_addr()?;
    // TLS 1.3 client authentication ends after the client's last flight: the connection
    // may look open to the client until its first stream or datagram is refused.
    if let Ok((_endpoint, conn)) = raw_connect(issued, &ca.certificate(), a1, 1).await {
        let frame = gen_paxos_quic::codec::encode(&Msg::Ping(7), 1 << 20)?;
        if let Ok(mut uni) = conn.open_uni().await {
            let _ = uni.write_all(&common::stream_frame(&frame)).await;
        }
        let _ = conn.send_datagram(frame.into());
    }
    assert!(recv_within(n1, Duration::from_millis(300)).await.is_none());
    stats_eventually(n1, "a rejected handshake", |s| s.rejected_handshakes >= 1).await?;
    let stats = n1.stats();
    assert_eq!(
        (stats.received, stats.connections_accepted),
        (0, 0),
        "{stats:?}"
    );
    Ok(())
}

/// Node 1 dials node 2, where a server presenting `issued` answers: the dial must fail.
async fn assert_server_refused(issued: &gen_paxos_quic::IssuedCert) -> anyhow::Result<()> {
    let ca = ClusterCa::generate("cluster")?;
    let server = common::raw_server(issued)?;
    let n1 = node(&ca, 1, socket()?, &[(2, server.local_addr()?)])?;
    n1.send(NodeId(2), Msg::Ping(0), Delivery::Reliable);
    stats_eventually(&n1, "a failed dial", |s| s.dial_failures >= 1).await?;
    assert_eq!(n1.stats().connections_dialled, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_a_foreign_ca_is_rejected() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("cluster")?;
    let foreign = ClusterCa::generate("foreign")?;
    let n1 = node(&ca, 1, socket()?, &[(2, "127.0.0.1:9".parse()?)])?;
    // A client with the right id from another CA.
    let issued = foreign.issue_node(NodeId(2))?;
    assert_client_refused(&n1, &issued, &ca).await?;
    // A server with it.
    assert_server_refused(&issued).await?;
    // And a node holding it does not start: its peers would refuse it.
    let config = Config::new(
        NodeId(2),
        "127.0.0.1:0".parse()?,
        issued.identity()?,
        ca.certificate(),
    );
    match QuicTransport::<Msg>::bind(config) {
        Err(Error::Cert(gen_paxos_quic::CertError::NotIssuedByCa(_))) => {}
        other => anyhow::bail!("expected a refusal to start, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_without_client_certificate_is_rejected() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("cluster")?;
    let s1 = socket()?;
    let a1 = s1.local_addr()?;
    let n1 = node(&ca, 1, s1, &[(2, "127.0.0.1:9".parse()?)])?;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.certificate().der().clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    crypto.alpn_protocols = vec![gen_paxos_quic::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(common::quic_transport_config());

    // The handshake may look complete to the client (TLS 1.3 client auth ends after its
    // last flight); then the refusal closes the connection. Either way nothing arrives.
    if let Ok((_endpoint, conn)) = common::raw_connect_with(config, a1, 1).await {
        let frame = gen_paxos_quic::codec::encode(&Msg::Ping(1), 1 << 20)?;
        if let Ok(mut uni) = conn.open_uni().await {
            let _ = uni.write_all(&common::stream_frame(&frame)).await;
        }
        let closed = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
        assert!(
            closed.is_ok(),
            "the node kept a connection without a client certificate"
        );
    }
    assert!(recv_within(&n1, Duration::from_millis(100)).await.is_none());
    stats_eventually(&n1, "a rejected handshake", |s| s.rejected_handshakes >= 1).await?;
    assert_eq!(n1.stats().received, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_certificate_for_a_node_outside_the_cluster_is_rejected_without_guests()
-> anyhow::Result<()> {
    let ca = ClusterCa::generate("cluster")?;
    let (s1, s9) = (socket()?, socket()?);
    let (a1, a9) = (s1.local_addr()?, s9.local_addr()?);
    // Node 1's cluster is {1, 2}; node 9 holds a valid certificate from the same CA.
    let mut no_guests = common::settings();
    no_guests.accept_guests = false;
    let n1 = node_settings(&ca, 1, s1, &[(2, "127.0.0.1:9".parse()?)], no_guests)?;
    let n9 = node(&ca, 9, s9, &[(1, a1)])?;
    assert_refused(&n1, &n9).await?;
    // Node 1 never sends to it either: it is not a peer.
    n1.send(NodeId(9), Msg::Ping(0), Delivery::Reliable);
    assert_eq!(n1.stats().dropped_unknown_peer, 1);
    let _ = a9;
    Ok(())
}

/// By default such a node is a guest: its messages arrive under its verified id (the
/// runtime decides what to make of them), it can be answered on its own connection with
/// datagrams, and guests are bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outside_the_cluster_is_a_bounded_guest() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("cluster")?;
    let s1 = socket()?;
    let a1 = s1.local_addr()?;
    let mut one_guest = common::settings();
    one_guest.max_guests = 1;
    let n1 = node_settings(&ca, 1, s1, &[(2, "127.0.0.1:9".parse()?)], one_guest)?;
    let n9 = node(&ca, 9, socket()?, &[(1, a1)])?;
    let got = common::send_until_received(&n9, 1, &n1, Msg::Ping(9), Delivery::BestEffort).await?;
    assert_eq!(got.from, NodeId(9), "attributed to the certificate's id");
    // Node 1 answers its guest.
    let back = common::send_until_received(&n1, 9, &n9, Msg::Ping(1), Delivery::BestEffort).await?;
    assert_eq!((back.from, back.message), (NodeId(1), Msg::Ping(1)));
    // A second guest finds no room.
    let n8 = node(&ca, 8, socket()?, &[(1, a1)])?;
    for i in 0..5 {
        n8.send(NodeId(1), Msg::Ping(i), Delivery::BestEffort);
        if let Some(m) = recv_within(&n1, Duration::from_millis(100)).await {
            assert_ne!(m.from, NodeId(8), "no room for a second guest");
        }
    }
    stats_eventually(&n1, "the second guest refused", |s| {
        s.rejected_handshakes >= 1
    })
    .await?;
    assert_eq!(n1.stats().guest_connections, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_cannot_impersonate_another_id() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("cluster")?;
    let issued3 = ca.issue_node(NodeId(3))?;
    let cert3 = issued3.identity()?;

    // 1. A transport configured as node 2 holding node 3's certificate does not start.
    let config = Config::new(
        NodeId(2),
        "127.0.0.1:0".parse()?,
        cert3.clone(),
        ca.certificate(),
    );
    match QuicTransport::<Msg>::bind(config) {
        Err(Error::IdentityMismatch { configured, .. }) => assert_eq!(configured, NodeId(2)),
        other => anyhow::bail!("expected an identity mismatch, got {other:?}"),
    }

    // 2. A hand-made client with node 3's certificate, whatever it claims, is node 3.
    let (s1, s3) = (socket()?, socket()?);
    let (a1, a3) = (s1.local_addr()?, s3.local_addr()?);
    let n1 = node(&ca, 1, s1, &[(2, a3), (3, "127.0.0.1:9".parse()?)])?;
    let (_endpoint, conn) = raw_connect(&issued3, &ca.certificate(), a1, 1).await?;
    let frame = gen_paxos_quic::codec::encode(&Msg::Ping(2), 1 << 20)?;
    let mut uni = conn.open_uni().await?;
    uni.write_all(&common::stream_frame(&frame)).await?;
    let got = recv_within(&n1, Duration::from_secs(2)).await;
    assert_eq!(
        got.map(|g| (g.from, g.message)),
        Some((NodeId(3), Msg::Ping(2)))
    );
    drop(uni);
    conn.close(0u32.into(), b"");

    // 3. Node 1 dialling "node 2" at an address where node 3 answers refuses the server.
    let n3 = node_with(
        3,
        cert3,
        ca.certificate(),
        s3,
        &[(1, a1)],
        common::settings(),
    )?;
    n1.send(NodeId(2), Msg::Ping(2), Delivery::Reliable);
    stats_eventually(&n1, "a failed dial", |s| s.dial_failures >= 1).await?;
    assert!(recv_within(&n3, Duration::from_millis(300)).await.is_none());
    assert!(recv_within(&n1, Duration::from_millis(10)).await.is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_rejected() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("cluster")?;
    let n1 = node(&ca, 1, socket()?, &[(2, "127.0.0.1:9".parse()?)])?;
    let now = OffsetDateTime::now_utc();
    let expired = Validity {
        not_before: now - time::Duration::days(30),
        not_after: now - time::Duration::days(1),
    };
    let issued = ca.issue_node_with_validity(NodeId(2), expired)?;
    assert_client_refused(&n1, &issued, &ca).await?;
    assert_server_refused(&issued).await?;
    let config = Config::new(
        NodeId(2),
        "127.0.0.1:0".parse()?,
        issued.identity()?,
        ca.certificate(),
    );
    match QuicTransport::<Msg>::bind(config) {
        Err(Error::Cert(gen_paxos_quic::CertError::NotIssuedByCa(why))) => {
            assert!(why.to_lowercase().contains("expired"), "{why}");
        }
        other => anyhow::bail!("expected a refusal to start, got {other:?}"),
    }
    Ok(())
}
