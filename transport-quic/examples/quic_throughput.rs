//! Loopback benchmark of the QUIC transport: one-way latency of a small protocol-sized
//! message (median, p99) and messages per second over one connection.
//!
//! ```text
//! cargo run --release -p gen-paxos-quic --example quic_throughput
//! ```
//!
//! Both nodes run in this process, so one clock stamps the send and the receipt: the
//! one-way figure covers `send` (encode, queue), the peer's driver task, QUIC + TLS,
//! the receiving task, decode, and `recv`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gen_paxos_core::NodeId;
use gen_paxos_election::{Delivery, Transport};
use gen_paxos_quic::{ClusterCa, Config, QuicTransport, Settings};
use serde::{Deserialize, Serialize};

/// About the size of a lease message: a lease name, a ballot, a timestamp.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    lease: String,
    ballot: (u64, u64, u64),
    sent_ns: u64,
}

type Node = QuicTransport<Lease>;

const LATENCY_SAMPLES: usize = 20_000;
const THROUGHPUT_MESSAGES: u64 = 300_000;
const WINDOW: u64 = 8_192;

fn settings() -> Settings {
    let mut s = Settings::default();
    s.initial_rtt = Duration::from_millis(10);
    s.send_queue_len = 2 * WINDOW as usize;
    s.recv_queue_len = 2 * WINDOW as usize;
    s
}

fn lease(base: Instant) -> Lease {
    Lease {
        lease: "master".into(),
        ballot: (42, 7, 1),
        sent_ns: base.elapsed().as_nanos() as u64,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latency(a: &Node, b: &Node, delivery: Delivery, base: Instant) -> anyhow::Result<()> {
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    let mut lost = 0;
    for _ in 0..LATENCY_SAMPLES {
        a.send(NodeId(2), lease(base), delivery);
        match tokio::time::timeout(Duration::from_millis(200), b.recv()).await {
            Ok(Some(incoming)) => {
                let now = base.elapsed().as_nanos() as u64;
                samples.push(Duration::from_nanos(
                    now.saturating_sub(incoming.message.sent_ns),
                ));
            }
            Ok(None) => anyhow::bail!("transport closed"),
            Err(_) => lost += 1,
        }
    }
    samples.sort();
    println!(
        "one-way latency, {delivery:?} ({}): median {:>6.1} µs   p99 {:>6.1} µs   p99.9 {:>6.1} µs   ({} samples, {lost} lost)",
        if delivery == Delivery::BestEffort {
            "datagram"
        } else {
            "stream"
        },
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        percentile(&samples, 0.999).as_secs_f64() * 1e6,
        samples.len(),
    );
    Ok(())
}

async fn throughput(
    a: Arc<Node>,
    b: Arc<Node>,
    delivery: Delivery,
    base: Instant,
) -> anyhow::Result<()> {
    let received = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (b, received) = (b.clone(), received.clone());
        tokio::spawn(async move {
            while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), b.recv()).await
            {
                received.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let before = a.stats();
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < THROUGHPUT_MESSAGES {
        // Keep at most WINDOW messages in flight so the send queue never drops.
        while sent - received.load(Ordering::Relaxed) >= WINDOW {
            if start.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::task::yield_now().await;
            if delivery == Delivery::BestEffort {
                // Lost datagrams never arrive: let the window drain, then move on.
                tokio::time::sleep(Duration::from_micros(200)).await;
                if sent - received.load(Ordering::Relaxed) >= WINDOW {
                    break;
                }
            }
        }
        for _ in 0..256 {
            a.send(NodeId(2), lease(base), delivery);
            sent += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::Relaxed) < sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if delivery == Delivery::BestEffort
            && Instant::now() + Duration::from_millis(4800) > deadline
        {
            break;
        }
    }
    let elapsed = start.elapsed();
    let got = received.load(Ordering::Relaxed);
    let after = a.stats();
    receiver.abort();
    println!(
        "throughput, {delivery:?} over one connection: {:>8.0} messages/s delivered ({got} of {sent} in {:.2} s; {} dropped from the send queue)",
        got as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        after.dropped_queue_full - before.dropped_queue_full,
    );
    // Drain stragglers before the next measurement.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), b.recv()).await {}
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("bench")?;
    let s1 = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let s2 = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let (a1, a2) = (s1.local_addr()?, s2.local_addr()?);
    let config = |id: u64, peer: u64, addr| -> anyhow::Result<Config> {
        let identity = ca.issue_node(NodeId(id))?.identity()?;
        Ok(Config::new(
            NodeId(id),
            "127.0.0.1:0".parse()?,
            identity,
            ca.certificate(),
        )
        .with_peer(NodeId(peer), addr)
        .with_settings(settings()))
    };
    let a = Arc::new(Node::with_socket(config(1, 2, a2)?, s1)?);
    let b = Arc::new(Node::with_socket(config(2, 1, a1)?, s2)?);
    let base = Instant::now();

    // Connect and warm up.
    for _ in 0..1000 {
        a.send(NodeId(2), lease(base), Delivery::Reliable);
        let _ = tokio::time::timeout(Duration::from_secs(2), b.recv()).await;
    }
    println!(
        "message size: {} bytes per frame",
        gen_paxos_quic::codec::encode(&lease(base), 1 << 20)?.len()
    );

    latency(&a, &b, Delivery::BestEffort, base).await?;
    latency(&a, &b, Delivery::Reliable, base).await?;
    throughput(a.clone(), b.clone(), Delivery::Reliable, base).await?;
    throughput(a.clone(), b.clone(), Delivery::BestEffort, base).await?;

    a.close().await;
    b.close().await;
    Ok(())
}
