//! Two nodes with valid certificates talk both ways; status clients get answers.

mod common;

use std::time::Duration;

use common::{Msg, node, recv_within, send_until_received, socket, stats_eventually};
use gen_paxos_core::NodeId;
use gen_paxos_election::{Delivery, Transport};
use gen_paxos_quic::{ClusterCa, StatusClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_exchange_messages_both_ways_attributed_by_certificate() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let (s1, s2) = (socket()?, socket()?);
    let (a1, a2) = (s1.local_addr()?, s2.local_addr()?);
    let n1 = node(&ca, 1, s1, &[(2, a2)])?;
    let n2 = node(&ca, 2, s2, &[(1, a1)])?;
    assert_eq!(n1.local_id(), NodeId(1));

    let got = send_until_received(&n1, 2, &n2, Msg::Ping(12), Delivery::BestEffort).await?;
    assert_eq!((got.from, got.message), (NodeId(1), Msg::Ping(12)));
    let got = send_until_received(&n2, 1, &n1, Msg::Ping(21), Delivery::BestEffort).await?;
    assert_eq!((got.from, got.message), (NodeId(2), Msg::Ping(21)));

    // Reliable messages arrive, in order, on the stream.
    for i in 0..50 {
        n1.send(NodeId(2), Msg::Ping(i), Delivery::Reliable);
    }
    for i in 0..50 {
        let got = recv_within(&n2, Duration::from_secs(2)).await;
        let got = got.ok_or_else(|| anyhow::anyhow!("reliable message {i} missing"))?;
        assert_eq!((got.from, got.message), (NodeId(1), Msg::Ping(i)));
    }
    n2.send(NodeId(1), Msg::Ping(99), Delivery::Reliable);
    let got = recv_within(&n1, Duration::from_secs(2)).await;
    assert_eq!(
        got.map(|g| (g.from, g.message)),
        Some((NodeId(2), Msg::Ping(99)))
    );

    // A best-effort message too big for a datagram falls back to the stream.
    let blob = Msg::Blob(vec![7; 8 * 1024]);
    n1.send(NodeId(2), blob.clone(), Delivery::BestEffort);
    let got = recv_within(&n2, Duration::from_secs(2)).await;
    assert_eq!(got.map(|g| (g.from, g.message)), Some((NodeId(1), blob)));

    let s1 = n1.stats();
    assert!(s1.sent_datagrams >= 1, "{s1:?}");
    assert!(s1.sent_stream_frames >= 51, "{s1:?}");
    // One connection serves both directions: node 2 answered on the one node 1 dialled.
    let s2 = n2.stats();
    assert_eq!(
        s1.connections_dialled + s2.connections_dialled,
        1,
        "{s1:?} {s2:?}"
    );
    assert_eq!(s2.connections_accepted, 1, "{s2:?}");
    assert_eq!(
        s2.malformed_frames + s2.oversized_frames + s2.rejected_handshakes,
        0
    );
    // QUIC's own figures per peer: every message handed to it as a datagram went out as
    // one (nothing dropped by its buffers at this rate), and arrived as one.
    let (m1, m2) = (metrics_text(&n1), metrics_text(&n2));
    let sent = labelled(&m1, "gen_paxos_transport_peer_datagrams_sent_total", "2");
    assert_eq!(sent, s1.sent_datagrams as f64, "{m1}");
    let received = labelled(
        &m2,
        "gen_paxos_transport_peer_datagrams_received_total",
        "1",
    );
    assert_eq!(received, sent, "{m2}");
    assert!(labelled(&m1, "gen_paxos_transport_peer_rtt_seconds", "2") > 0.0);
    assert!(labelled(&m1, "gen_paxos_transport_peer_congestion_window_bytes", "2") > 0.0);
    assert_eq!(
        labelled(&m1, "gen_paxos_transport_peer_lost_packets_total", "2"),
        0.0
    );

    // Unknown peers and over-limit messages are dropped and counted, never sent.
    n1.send(NodeId(7), Msg::Ping(0), Delivery::Reliable);
    n1.send(NodeId(2), Msg::Blob(vec![0; 2 << 20]), Delivery::Reliable);
    let s1 = n1.stats();
    assert_eq!((s1.dropped_unknown_peer, s1.dropped_unencodable), (1, 1));

    n1.close().await;
    n2.close().await;
    assert!(n1.recv().await.is_none());
    n1.send(NodeId(2), Msg::Ping(0), Delivery::Reliable);
    assert_eq!(n1.stats().dropped_closed, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dials_both_deliver() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let (s1, s2) = (socket()?, socket()?);
    let (a1, a2) = (s1.local_addr()?, s2.local_addr()?);
    let n1 = node(&ca, 1, s1, &[(2, a2)])?;
    let n2 = node(&ca, 2, s2, &[(1, a1)])?;
    // Both queue before either is connected: both dial at once.
    n1.send(NodeId(2), Msg::Ping(1), Delivery::Reliable);
    n2.send(NodeId(1), Msg::Ping(2), Delivery::Reliable);
    let at2 = recv_within(&n2, Duration::from_secs(2)).await;
    let at1 = recv_within(&n1, Duration::from_secs(2)).await;
    assert_eq!(
        at2.map(|g| (g.from, g.message)),
        Some((NodeId(1), Msg::Ping(1)))
    );
    assert_eq!(
        at1.map(|g| (g.from, g.message)),
        Some((NodeId(2), Msg::Ping(2)))
    );
    // Whatever happened, at most one connection per direction, and traffic keeps flowing.
    for i in 0..20 {
        n1.send(NodeId(2), Msg::Ping(i), Delivery::Reliable);
        n2.send(NodeId(1), Msg::Ping(i), Delivery::Reliable);
    }
    for i in 0..20 {
        let a = recv_within(&n2, Duration::from_secs(2))
            .await
            .map(|g| g.message);
        let b = recv_within(&n1, Duration::from_secs(2))
            .await
            .map(|g| g.message);
        assert_eq!((a, b), (Some(Msg::Ping(i)), Some(Msg::Ping(i))));
    }
    let (x, y) = (n1.stats(), n2.stats());
    assert!(
        x.connections_dialled <= 1 && y.connections_dialled <= 1,
        "{x:?} {y:?}"
    );
    n1.close().await;
    n2.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_client_gets_one_answer_and_cannot_speak_the_protocol() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let s1 = socket()?;
    let a1 = s1.local_addr()?;
    let mut settings = common::settings();
    settings.accept_clients = true;
    let identity = ca.issue_node(NodeId(1))?.identity()?;
    let n1 = common::node_with(
        1,
        identity,
        ca.certificate(),
        s1,
        &[(2, "127.0.0.1:9".parse()?)],
        settings.clone(),
    )?;
    let mut requests = n1
        .client_requests()
        .ok_or_else(|| anyhow::anyhow!("no requests"))?;
    assert!(n1.client_requests().is_none(), "handed out twice");
    let server = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            match request.decode::<String>() {
                Ok(question) if question == "everything" => {
                    // A status listing 100,000 leases is several MiB: more than a protocol
                    // frame may be, within the status reply limit.
                    let _ = request.respond(&"x".repeat(3 << 20));
                }
                Ok(question) => {
                    let _ = request.respond(&format!("node 1 heard {question:?}"));
                }
                Err(_) => drop(request),
            }
        }
    });

    let client_issued = ca.issue_client()?;
    let client_identity = client_issued.identity()?;
    let client = StatusClient::connect(
        a1,
        NodeId(1),
        &client_identity,
        &ca.certificate(),
        &settings,
    )
    .await?;
    let answer: String = client.request(&"status?".to_string()).await?;
    assert_eq!(answer, "node 1 heard \"status?\"");
    // A question the node cannot decode is refused, and the client is told so.
    assert!(client.request::<_, String>(&12345u64).await.is_err());
    let answer: String = client.request(&"again".to_string()).await?;
    assert_eq!(answer, "node 1 heard \"again\"");
    assert!(settings.max_frame_len < 3 << 20);
    let answer: String = client.request(&"everything".to_string()).await?;
    assert_eq!(answer.len(), 3 << 20);

    // The client's identity is not a node: protocol frames from it are never delivered.
    let (_endpoint, raw) = common::raw_connect(&client_issued, &ca.certificate(), a1, 1).await?;
    let frame = gen_paxos_quic::codec::encode(&Msg::Ping(1), 1 << 20)?;
    let _ = raw.send_datagram(frame.clone().into());
    if let Ok(mut uni) = raw.open_uni().await {
        let _ = uni.write_all(&common::stream_frame(&frame)).await;
        let _ = uni.finish();
    }
    assert!(recv_within(&n1, Duration::from_millis(300)).await.is_none());
    client.close().await;
    assert_eq!(n1.stats().client_requests, 4);
    n1.close().await;
    server.await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_without_accept_clients_refuses_status_clients() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let s1 = socket()?;
    let a1 = s1.local_addr()?;
    let n1 = node(&ca, 1, s1, &[(2, "127.0.0.1:9".parse()?)])?;
    let client_issued = ca.issue_client()?;
    let client_identity = client_issued.identity()?;
    let settings = common::settings();
    // The refusal shows either at connect or at the first request (TLS 1.3 client auth).
    let outcome = match StatusClient::connect(
        a1,
        NodeId(1),
        &client_identity,
        &ca.certificate(),
        &settings,
    )
    .await
    {
        Ok(client) => client
            .request::<_, String>(&"status?".to_string())
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(outcome.is_err());
    stats_eventually(&n1, "a rejected handshake", |s| s.rejected_handshakes >= 1).await?;
    n1.close().await;
    Ok(())
}

/// A reliable message sent just before `close` arrives, also on a connection the *peer*
/// dialled. (Found by the benchmark: a SIGTERM'd master's Release sometimes never reached
/// one survivor, because closing dropped the accepted connection before the message was
/// flushed, and the survivors waited for the lease to expire.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliable_message_sent_right_before_close_is_delivered() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    // Before the first fix this failed within five rounds; with it but with the closing
    // side closing the connection itself, about once in 120 rounds (the peer's QUIC stack
    // had acknowledged the data, its reader had not taken it yet).
    for round in 0..50 {
        let (s1, s2) = (socket()?, socket()?);
        let (a1, a2) = (s1.local_addr()?, s2.local_addr()?);
        let n1 = node(&ca, 1, s1, &[(2, a2)])?;
        let n2 = node(&ca, 2, s2, &[(1, a1)])?;
        // Node 2 dials: node 1 holds only the accepted end of the connection.
        send_until_received(&n2, 1, &n1, Msg::Ping(1), Delivery::BestEffort).await?;
        n1.send(NodeId(2), Msg::Ping(2), Delivery::Reliable);
        n1.close().await;
        let got = recv_within(&n2, Duration::from_secs(2)).await;
        assert_eq!(
            got.map(|g| (g.from, g.message)),
            Some((NodeId(1), Msg::Ping(2))),
            "round {round}: the last message before close was lost"
        );
        n2.close().await;
    }
    Ok(())
}

/// A burst of datagrams larger than quinn's datagram send buffer (256 KiB) all arrive:
/// the sender waits for room instead of letting quinn drop its oldest unsent ones. One
/// thread, as a busy node's: nothing drains quinn's buffers while the peer's driver fills
/// them.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_beyond_the_datagram_send_buffer_arrives_whole() -> anyhow::Result<()> {
    burst_arrives_whole(1000).await
}

/// The same burst with two threads, where the receiver's QUIC gets datagrams faster than
/// the node reads them: its buffer of unread datagrams keeps what the socket kept (at
/// 256 KiB quinn dropped the oldest, silently).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_faster_than_the_node_reads_arrives_whole() -> anyhow::Result<()> {
    burst_arrives_whole(2500).await
}

/// Sends `burst` datagrams of 800 bytes at once from node 1 to node 2 and checks that QUIC
/// sent every one handed to it and that node 2's runtime got every one its QUIC received
/// (the kernel may still drop some where `net.core.rmem_max` is small: not the node's
/// doing, and visible in `/proc/net/snmp`).
async fn burst_arrives_whole(burst: u64) -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let (s1, s2) = (socket()?, socket()?);
    let (a1, a2) = (s1.local_addr()?, s2.local_addr()?);
    let mut settings = common::settings();
    settings.send_queue_len = 4096;
    let identity = ca.issue_node(NodeId(1))?.identity()?;
    let n1 = common::node_with(1, identity, ca.certificate(), s1, &[(2, a2)], settings)?;
    let n2 = node(&ca, 2, s2, &[(1, a1)])?;
    send_until_received(&n1, 2, &n2, Msg::Ping(1), Delivery::BestEffort).await?;
    while recv_within(&n2, Duration::from_millis(200)).await.is_some() {}
    let quic_datagrams_received = || {
        labelled(
            &metrics_text(&n2),
            "gen_paxos_transport_peer_datagrams_received_total",
            "1",
        )
    };
    let (sent_before, quic_before) = (n1.stats().sent_datagrams, quic_datagrams_received());
    // At least 800 KB: three times quinn's send buffer, pushed at once.
    for _ in 0..burst {
        n1.send(NodeId(2), Msg::Blob(vec![3; 800]), Delivery::BestEffort);
    }
    let mut received = 0;
    while recv_within(&n2, Duration::from_secs(2)).await.is_some() {
        received += 1;
    }
    let s1 = n1.stats();
    assert_eq!(s1.dropped_queue_full, 0, "{s1:?}");
    assert_eq!(s1.sent_datagrams - sent_before, burst, "{s1:?}");
    let sent = labelled(
        &metrics_text(&n1),
        "gen_paxos_transport_peer_datagrams_sent_total",
        "2",
    );
    assert_eq!(
        sent, s1.sent_datagrams as f64,
        "quinn sent every datagram handed to it"
    );
    let quic_received = quic_datagrams_received() - quic_before;
    assert_eq!(received as f64, quic_received, "{:?}", n2.stats());
    assert!(received > 0);
    n1.close().await;
    n2.close().await;
    Ok(())
}

/// `node`'s transport metrics in the Prometheus text format.
fn metrics_text(node: &common::Node) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(node.stats_handle()));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    text
}

/// The value of `name{peer="PEER"}` in `text`.
fn labelled(text: &str, name: &str, peer: &str) -> f64 {
    let prefix = format!("{name}{{peer=\"{peer}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
        .parse()
        .expect("a number")
}

/// Two nodes start a few milliseconds apart, as a restarted cluster's processes do, and
/// send best-effort messages to each other every millisecond from the start. The first
/// dials the second before it runs (its first packet waits in the second's socket); the
/// second dials back as it starts. Whichever connection the two ends settle on, no message
/// may go to a connection one end has given up: on loopback every message arrives. (A
/// dial abandoned the moment the peer's connection arrived had often been accepted by the
/// peer already, which sent on it until the close reached it: in a benchmark's cold starts
/// for up to 200 ms, every message lost, a retransmission interval each for the protocol.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_is_lost_while_crossing_dials_settle() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let mut lost = Vec::new();
    for round in 0..10 {
        let (s1, s2) = (socket()?, socket()?);
        let (a1, a2) = (s1.local_addr()?, s2.local_addr()?);
        let n1 = node(&ca, 1, s1, &[(2, a2)])?;
        let sent = 200u64;
        n1.send(NodeId(2), Msg::Ping(0), Delivery::BestEffort);
        tokio::time::sleep(Duration::from_millis(3)).await;
        let n2 = node(&ca, 2, s2, &[(1, a1)])?;
        n2.send(NodeId(1), Msg::Ping(0), Delivery::BestEffort);
        for i in 1..sent {
            tokio::time::sleep(Duration::from_millis(1)).await;
            n1.send(NodeId(2), Msg::Ping(i), Delivery::BestEffort);
            n2.send(NodeId(1), Msg::Ping(i), Delivery::BestEffort);
        }
        let (mut at1, mut at2) = (0u64, 0u64);
        while at1 < sent || at2 < sent {
            tokio::select! {
                Some(_) = recv_within(&n1, Duration::from_millis(500)), if at1 < sent => at1 += 1,
                Some(_) = recv_within(&n2, Duration::from_millis(500)), if at2 < sent => at2 += 1,
                else => break,
            }
        }
        if at1 < sent || at2 < sent {
            lost.push((round, sent - at1, sent - at2));
        }
        n1.close().await;
        n2.close().await;
    }
    assert!(
        lost.is_empty(),
        "(round, lost on the way to node 1, to node 2): {lost:?}"
    );
    Ok(())
}
