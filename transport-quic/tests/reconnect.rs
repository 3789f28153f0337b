//! A peer that restarts on the same address is reconnected to automatically.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Msg, node, node_settings, node_with, recv_within, socket};
use gen_paxos_core::NodeId;
use gen_paxos_election::{Delivery, Transport};
use gen_paxos_quic::ClusterCa;

/// Rebinds `addr`, retrying while the previous endpoint lets go of the port.
async fn rebind(addr: std::net::SocketAddr) -> anyhow::Result<std::net::UdpSocket> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match std::net::UdpSocket::bind(addr) {
            Ok(socket) => return Ok(socket),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// A UDP relay between node 1 and node 2 that can black-hole everything, so node 2 can
/// "crash" without a word reaching node 1 (no CONNECTION_CLOSE, like a killed process).
struct Relay {
    front: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(
        client: std::net::SocketAddr,
        server: std::net::SocketAddr,
    ) -> anyhow::Result<Relay> {
        let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let addr = front.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        let task = tokio::spawn(async move {
            let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
            loop {
                tokio::select! {
                    r = front.recv_from(&mut a) => if let Ok((n, _)) = r
                        && !flag.load(Ordering::Relaxed)
                    {
                        let _ = back.send_to(&a[..n], server).await;
                    },
                    r = back.recv_from(&mut b) => if let Ok((n, _)) = r
                        && !flag.load(Ordering::Relaxed)
                    {
                        let _ = front.send_to(&b[..n], client).await;
                    },
                }
            }
        });
        Ok(Relay {
            front: addr,
            cut,
            task,
        })
    }
}

async fn restarted_peer_is_reconnected(graceful: bool) -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let (s1, s2) = (socket()?, socket()?);
    let (a1, a2) = (s1.local_addr()?, s2.local_addr()?);
    let n1 = Arc::new(node(&ca, 1, s1, &[(2, a2)])?);
    let n2 = node(&ca, 2, s2, &[(1, a1)])?;

    // Node 1 keeps sending, as a leader renewing its lease would.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (n1, stop) = (n1.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let delivery = if i.is_multiple_of(2) {
                    Delivery::BestEffort
                } else {
                    Delivery::Reliable
                };
                n1.send(NodeId(2), Msg::Ping(i), delivery);
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let got = recv_within(&n2, Duration::from_secs(2)).await;
    assert_eq!(got.map(|g| g.from), Some(NodeId(1)));

    if graceful {
        n2.close().await;
    }
    drop(n2);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let socket = rebind(a2).await?;
    let restarted_at = Instant::now();
    let n2 = node(&ca, 2, socket, &[(1, a1)])?;
    let got = recv_within(&n2, Duration::from_secs(1)).await;
    let elapsed = restarted_at.elapsed();
    assert_eq!(
        got.map(|g| g.from),
        Some(NodeId(1)),
        "no message within a second of the restart"
    );
    assert!(elapsed < Duration::from_secs(1));
    let stats = n1.stats();
    assert!(stats.connections_dialled >= 2, "{stats:?}");

    stop.store(true, Ordering::Relaxed);
    sender.await?;
    n1.close().await;
    n2.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_restarted_after_close_is_reconnected_within_a_second() -> anyhow::Result<()> {
    restarted_peer_is_reconnected(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_restarted_after_being_dropped_is_reconnected_within_a_second() -> anyhow::Result<()> {
    restarted_peer_is_reconnected(false).await
}

/// Node 2 crashes without a word reaching node 1 and comes back on the same address with
/// the same key. With `relay_restored`, node 1's packets for the old connection reach the
/// new node 2, which answers with a stateless reset. Without, node 1's old connection
/// stays a black hole, and the new node 2 speaks first.
async fn crashed_peer_is_reconnected(relay_restored: bool) -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let (s1, s2) = (socket()?, socket()?);
    let (a1, a2) = (s1.local_addr()?, s2.local_addr()?);
    let relay = Relay::start(a1, a2).await?;
    // Node 1 reaches node 2 only through the relay; node 2 reaches node 1 directly.
    let n1 = Arc::new(node(&ca, 1, s1, &[(2, relay.front)])?);
    // A restarted node comes back with the same certificate and key (from its files).
    let identity2 = ca.issue_node(NodeId(2))?.identity()?;
    let n2 = node_with(
        2,
        identity2.clone(),
        ca.certificate(),
        s2,
        &[(1, a1)],
        common::settings(),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (n1, stop) = (n1.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n1.send(NodeId(2), Msg::Ping(i), Delivery::BestEffort);
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let got = recv_within(&n2, Duration::from_secs(2)).await;
    assert_eq!(got.map(|g| g.from), Some(NodeId(1)));
    // Let the connection settle, as a long-lived one would be.
    let settled = Instant::now() + Duration::from_millis(600);
    while Instant::now() < settled {
        let _ = recv_within(&n2, Duration::from_millis(50)).await;
    }

    // Crash: node 2 vanishes and its goodbye is lost.
    relay.cut.store(true, Ordering::Relaxed);
    n2.close().await;
    drop(n2);
    let socket = rebind(a2).await?;
    let restarted_at = Instant::now();
    let n2 = node_with(
        2,
        identity2,
        ca.certificate(),
        socket,
        &[(1, a1)],
        common::settings(),
    )?;
    if relay_restored {
        relay.cut.store(false, Ordering::Relaxed);
    } else {
        n2.send(NodeId(1), Msg::Ping(0), Delivery::Reliable);
    }
    // Skip what node 1 may have queued before; wait for node 1's messages.
    let got = recv_within(&n2, Duration::from_secs(1)).await;
    let elapsed = restarted_at.elapsed();
    assert_eq!(
        got.map(|g| g.from),
        Some(NodeId(1)),
        "no message within a second of the restart"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    if !relay_restored {
        let got = recv_within(&n1, Duration::from_secs(1)).await;
        assert_eq!(
            got.map(|g| (g.from, g.message)),
            Some((NodeId(2), Msg::Ping(0)))
        );
    }

    stop.store(true, Ordering::Relaxed);
    sender.await?;
    relay.task.abort();
    n1.close().await;
    n2.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_that_crashed_silently_is_reconnected_within_a_second() -> anyhow::Result<()> {
    crashed_peer_is_reconnected(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_peer_that_speaks_first_replaces_the_dead_connection() -> anyhow::Result<()> {
    crashed_peer_is_reconnected(false).await
}

/// Node 1 starts first and dials node 2 before node 2 listens: its first packet is lost,
/// and QUIC would resend it only after a probe timeout (seconds here, with a 1 s initial
/// round trip). Node 2 then starts and dials node 1. Node 1's queued message must go out
/// on the connection node 2 made, not wait for its own dial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_sent_before_the_peer_listened_gives_way_to_the_peers_connection()
-> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let s1 = socket()?;
    let a1 = s1.local_addr()?;
    let a2 = {
        let s2 = socket()?;
        s2.local_addr()?
    };
    let mut slow = common::settings();
    slow.initial_rtt = Duration::from_secs(1);
    slow.connect_timeout = Duration::from_secs(10);
    let n1 = node_settings(&ca, 1, s1, &[(2, a2)], slow.clone())?;
    n1.send(NodeId(2), Msg::Ping(1), Delivery::Reliable);
    // Let node 1's first packet leave for the closed port.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let n2 = node_settings(&ca, 2, rebind(a2).await?, &[(1, a1)], slow)?;
    n2.send(NodeId(1), Msg::Ping(2), Delivery::Reliable);
    let got = recv_within(&n1, Duration::from_secs(2)).await;
    assert_eq!(
        got.map(|g| g.message),
        Some(Msg::Ping(2)),
        "node 2's dial was accepted"
    );
    // Node 1's own dial would complete only after its probe timeout, about 3 s after it
    // began: within 1.5 s of node 2's start the message came over node 2's connection.
    let got = recv_within(&n2, Duration::from_millis(1_500)).await;
    assert_eq!(
        got.map(|g| g.message),
        Some(Msg::Ping(1)),
        "node 1's message waited for its own dial ({:?} after node 2 started)",
        started.elapsed()
    );
    n1.close().await;
    n2.close().await;
    Ok(())
}
