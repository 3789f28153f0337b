//! Garbage and bad frames never hurt a node.

mod common;

use std::time::Duration;

use common::{
    Msg, node, node_settings, raw_connect, recv_within, send_until_received, socket,
    stats_eventually,
};
use gen_paxos_core::NodeId;
use gen_paxos_election::Delivery;
use gen_paxos_quic::{ClusterCa, code, codec};

/// A small deterministic generator: the test is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_garbage_datagrams_leave_the_node_working() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let (s1, s2) = (socket()?, socket()?);
    let (a1, a2) = (s1.local_addr()?, s2.local_addr()?);
    let n1 = node(&ca, 1, s1, &[(2, a2)])?;
    let n2 = node(&ca, 2, s2, &[(1, a1)])?;
    // An established connection must survive the flood too.
    send_until_received(&n2, 1, &n1, Msg::Ping(0), Delivery::BestEffort).await?;

    let garbage = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let mut buf = vec![0u8; 1500];
    for i in 0..10_000u32 {
        let len = 1 + (rng.next() % 1400) as usize;
        let packet = &mut buf[..len.max(1)];
        rng.fill(packet);
        match i % 4 {
            // Looks like a QUIC v1 Initial: long header, version 1, padded to 1200.
            0 if len >= 8 => {
                packet[0] = 0xc0 | (packet[0] & 0x0f);
                packet[1..5].copy_from_slice(&1u32.to_be_bytes());
                packet[5] = 8;
            }
            // Short header: looks like a packet of some connection.
            1 => packet[0] = 0x40 | (packet[0] & 0x3f),
            _ => {}
        }
        let len = if i % 4 == 0 { 1200.max(len) } else { len };
        let _ = garbage.send_to(&buf[..len.min(1500)], a1);
        if i % 100 == 99 {
            // Let the node's endpoint drain its socket between bursts.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    for (i, delivery) in [Delivery::BestEffort, Delivery::Reliable]
        .into_iter()
        .enumerate()
    {
        let got = send_until_received(&n1, 2, &n2, Msg::Ping(i as u64), delivery).await?;
        assert_eq!((got.from, got.message), (NodeId(1), Msg::Ping(i as u64)));
        let got = send_until_received(&n2, 1, &n1, Msg::Ping(10 + i as u64), delivery).await?;
        assert_eq!(
            (got.from, got.message),
            (NodeId(2), Msg::Ping(10 + i as u64))
        );
    }
    let stats = n1.stats();
    assert_eq!(
        stats.malformed_frames + stats.oversized_frames,
        0,
        "{stats:?}"
    );
    // A new node can still connect afterwards. Node 1 does not list 3 as a peer: it is
    // admitted as a guest, and what it sends arrives under its own id.
    let s3 = socket()?;
    let n3 = node(&ca, 3, s3, &[(1, a1)])?;
    let got = send_until_received(&n3, 1, &n1, Msg::Ping(3), Delivery::BestEffort).await?;
    assert_eq!((got.from, got.message), (NodeId(3), Msg::Ping(3)));
    stats_eventually(&n1, "node 3 as a guest", |s| s.guest_connections >= 1).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_are_dropped_counted_and_the_connection_keeps_serving()
-> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let s1 = socket()?;
    let a1 = s1.local_addr()?;
    let mut settings = common::settings();
    settings.max_frame_len = 4096;
    let n1 = node_settings(&ca, 1, s1, &[(2, "127.0.0.1:9".parse()?)], settings)?;
    let cert2 = ca.issue_node(NodeId(2))?;
    let (_endpoint, conn) = raw_connect(&cert2, &ca.certificate(), a1, 1).await?;

    let valid = |n| codec::encode(&Msg::Ping(n), 4096);
    let mut uni = conn.open_uni().await?;
    uni.write_all(&common::stream_frame(&valid(1)?)).await?;
    // Bad encoding (variant index 200 of a two-variant enum).
    uni.write_all(&common::stream_frame(&[codec::WIRE_VERSION, 200, 1]))
        .await?;
    // Unknown wire version.
    uni.write_all(&common::stream_frame(&[9, 0, 1])).await?;
    // Trailing bytes after a valid message.
    let mut trailing = valid(5)?;
    trailing.push(0);
    uni.write_all(&common::stream_frame(&trailing)).await?;
    // Oversized: 100 KiB against a 4 KiB limit.
    uni.write_all(&common::stream_frame(&vec![1u8; 100 * 1024]))
        .await?;
    uni.write_all(&common::stream_frame(&valid(2)?)).await?;
    // A malformed datagram, then a valid one.
    conn.send_datagram(vec![codec::WIRE_VERSION, 0xff, 0xff].into())?;

    let mut got = Vec::new();
    for _ in 0..2 {
        let incoming = recv_within(&n1, Duration::from_secs(2)).await;
        got.push(incoming.map(|g| (g.from, g.message)));
    }
    assert_eq!(
        got,
        vec![
            Some((NodeId(2), Msg::Ping(1))),
            Some((NodeId(2), Msg::Ping(2)))
        ]
    );
    let stats = stats_eventually(&n1, "four malformed frames", |s| s.malformed_frames >= 4).await?;
    assert_eq!(
        (stats.malformed_frames, stats.oversized_frames),
        (4, 1),
        "{stats:?}"
    );
    assert_eq!(stats.closed_for_bad_frames, 0);

    // Still served, on both paths.
    conn.send_datagram(valid(3)?.into())?;
    let incoming = recv_within(&n1, Duration::from_secs(2)).await;
    assert_eq!(
        incoming.map(|g| (g.from, g.message)),
        Some((NodeId(2), Msg::Ping(3)))
    );
    uni.write_all(&common::stream_frame(&valid(4)?)).await?;
    let incoming = recv_within(&n1, Duration::from_secs(2)).await;
    assert_eq!(
        incoming.map(|g| (g.from, g.message)),
        Some((NodeId(2), Msg::Ping(4)))
    );
    assert!(conn.close_reason().is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_bad_frames_close_the_connection() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let s1 = socket()?;
    let a1 = s1.local_addr()?;
    let mut settings = common::settings();
    settings.bad_frame_limit = 3;
    let n1 = node_settings(&ca, 1, s1, &[(2, "127.0.0.1:9".parse()?)], settings)?;
    let cert2 = ca.issue_node(NodeId(2))?;
    let (_endpoint, conn) = raw_connect(&cert2, &ca.certificate(), a1, 1).await?;
    let mut uni = conn.open_uni().await?;
    for _ in 0..3 {
        uni.write_all(&common::stream_frame(&[9, 9, 9])).await?;
    }
    uni.write_all(&common::stream_frame(&codec::encode(&Msg::Ping(1), 4096)?))
        .await?;
    let got = recv_within(&n1, Duration::from_secs(2)).await;
    assert_eq!(
        got.map(|g| g.message),
        Some(Msg::Ping(1)),
        "three bad frames are tolerated"
    );
    assert!(conn.close_reason().is_none());
    // The fourth breaks the rule.
    uni.write_all(&common::stream_frame(&[9, 9, 9])).await?;
    let reason = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await?;
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, code::BAD_FRAMES)
        }
        other => anyhow::bail!("closed for another reason: {other}"),
    }
    let stats = n1.stats();
    assert_eq!(
        (stats.malformed_frames, stats.closed_for_bad_frames),
        (4, 1),
        "{stats:?}"
    );
    Ok(())
}
