//! Acquire latency of a free lease: three `Election` nodes over QUIC (mutual TLS) on
//! loopback in this process; node 1 joins fresh lease names one at a time and the time
//! from `join` to its `Elected` event is measured. A tracing wrapper around node 1's
//! transport time-stamps Prepare/Promise/Accept/Accepted for the last few acquisitions, to
//! show where the time goes.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use gen_paxos_election::{
    self, Candidacy, Delivery, Election, ElectionEvent, Incoming, NoCallbacks, NodeId, Transport,
    Wire,
};
use gen_paxos_quic::{CaCertificate, Identity, QuicTransport, Settings};
use tokio::time::Instant;

use super::util::summarize;

/// (when, sent?, message kind, lease) of protocol messages while tracing is on.
type Trace = Arc<Mutex<Vec<(Instant, bool, String, String)>>>;

struct Traced<T> {
    inner: T,
    on: Arc<AtomicBool>,
    trace: Trace,
}

fn record(trace: &Trace, sent: bool, wire: &Wire) {
    let Ok(value) = serde_json::to_value(wire) else {
        return;
    };
    let at = Instant::now();
    let Some(batch) = value.get("Protocol").and_then(|b| b.as_array()) else {
        return;
    };
    let mut t = trace.lock().unwrap_or_else(PoisonError::into_inner);
    for env in batch {
        let lease = env["lease"].as_str().unwrap_or("").to_string();
        let kind = env["message"]
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_default();
        t.push((at, sent, kind, lease));
    }
}

#[async_trait]
impl<T: Transport<Wire>> Transport<Wire> for Traced<T> {
    fn local_id(&self) -> NodeId {
        self.inner.local_id()
    }
    fn send(&self, to: NodeId, message: Wire, delivery: Delivery) {
        if self.on.load(Ordering::Relaxed) && message.is_protocol() {
            record(&self.trace, true, &message);
        }
        self.inner.send(to, message, delivery);
    }
    async fn recv(&self) -> Option<Incoming<Wire>> {
        let incoming = self.inner.recv().await?;
        if self.on.load(Ordering::Relaxed) && incoming.message.is_protocol() {
            record(&self.trace, false, &incoming.message);
        }
        Some(incoming)
    }
    fn try_recv(&self) -> Option<Incoming<Wire>> {
        let incoming = self.inner.try_recv()?;
        if self.on.load(Ordering::Relaxed) && incoming.message.is_protocol() {
            record(&self.trace, false, &incoming.message);
        }
        Some(incoming)
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}

/// One configuration of the acquire test.
#[derive(Debug, Clone)]
pub struct Variant {
    pub label: String,
    pub priority: u8,
    pub jitter: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct AcquireResult {
    pub variant: Variant,
    pub jitter_in_force: Duration,
    pub samples: Vec<f64>,
    /// Medians over the traced acquisitions: join→Prepare sent, Prepare→first remote
    /// Promise, Promise→Accept sent, Accept→first remote Accepted, Accepted→Elected seen.
    pub phases: Option<[f64; 5]>,
}

pub fn run(
    dir: &Path,
    lease: Duration,
    n: usize,
    variants: &[Variant],
) -> Result<Vec<AcquireResult>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    if !dir.join("ca.pem").exists() {
        gen_paxos_quic::write_cluster_certs(dir, &ids, true)
            .context("cannot write certificates")?;
    }
    let mut out = Vec::new();
    for v in variants {
        let result = runtime.block_on(one(dir, lease, n, v, &ids));
        out.push(result.with_context(|| format!("acquire variant {}", v.label))?);
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(out)
}

async fn one(
    dir: &Path,
    lease: Duration,
    n: usize,
    v: &Variant,
    ids: &[NodeId],
) -> Result<AcquireResult> {
    let ca = CaCertificate::load(&dir.join("ca.pem"))?;
    let sockets: Vec<UdpSocket> = ids
        .iter()
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addrs: Vec<SocketAddr> = sockets
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    let on = Arc::new(AtomicBool::new(false));
    let trace: Trace = Arc::default();
    let mut nodes = Vec::new();
    let mut jitter_in_force = Duration::ZERO;
    for (i, socket) in sockets.into_iter().enumerate() {
        let id = ids[i];
        let identity = Identity::load(
            &dir.join(format!("node-{id}.pem")),
            &dir.join(format!("node-{id}.key")),
        )?;
        let mut quic = gen_paxos_quic::Config::new(id, addrs[i], identity, ca.clone())
            .with_settings(Settings::for_lease(lease));
        for (j, &peer) in ids.iter().enumerate().filter(|(j, _)| *j != i) {
            quic = quic.with_peer(peer, addrs[j]);
        }
        let inner = QuicTransport::<Wire>::with_socket(quic, socket)?;
        let mut config =
            gen_paxos_election::Config::new(id, ids.to_vec()).with_lease_duration(lease);
        config.jitter = v.jitter;
        jitter_in_force = config.jitter();
        let election = if i == 0 {
            Election::start(
                config,
                Traced {
                    inner,
                    on: on.clone(),
                    trace: trace.clone(),
                },
            )?
        } else {
            Election::start(config, inner)?
        };
        nodes.push(election);
    }
    // Everyone's restart quarantine (one acceptor exclusion), plus a margin.
    tokio::time::sleep(paxos_core_d_a(lease) + Duration::from_millis(200)).await;
    let node = &nodes[0];
    let mut events = node.events();
    let mut samples = Vec::with_capacity(n);
    let traced_from = n.saturating_sub(20);
    let mut starts = Vec::new();
    let mut elected_at = Vec::new();
    for i in 0..n {
        if i == traced_from {
            on.store(true, Ordering::Relaxed);
        }
        let name = format!("acq-{}-{i}", v.priority);
        let t0 = Instant::now();
        node.join(&name, NoCallbacks, Candidacy::with_priority(v.priority))
            .await
            .with_context(|| format!("join {name}"))?;
        let until = t0 + Duration::from_secs(3);
        loop {
            match tokio::time::timeout_at(until, events.recv()).await {
                Ok(Ok(ElectionEvent::Elected { lease: l, .. })) if l.as_str() == name => break,
                Ok(Ok(_)) => {}
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(_)) => bail!("node stopped"),
                Err(_) => bail!("{name} not acquired within 3 s"),
            }
        }
        let at = Instant::now();
        samples.push((at - t0).as_secs_f64() * 1000.0);
        if i >= traced_from {
            starts.push((name, t0));
            elected_at.push(at);
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    on.store(false, Ordering::Relaxed);
    for node in &nodes {
        node.shutdown().await;
    }
    let phases = phases(&trace, &starts, &elected_at);
    Ok(AcquireResult {
        variant: v.clone(),
        jitter_in_force,
        samples,
        phases,
    })
}

fn paxos_core_d_a(lease: Duration) -> Duration {
    gen_paxos_core::acceptor_duration(lease, 0.001)
}

fn phases(trace: &Trace, starts: &[(String, Instant)], elected: &[Instant]) -> Option<[f64; 5]> {
    let t = trace.lock().unwrap_or_else(PoisonError::into_inner);
    let mut cols: [Vec<f64>; 5] = Default::default();
    for ((name, t0), done) in starts.iter().zip(elected) {
        let find = |sent: bool, kind: &str, after: Instant| {
            t.iter()
                .find(|(at, s, k, l)| *s == sent && k == kind && l == name && *at >= after)
                .map(|(at, ..)| *at)
        };
        let (Some(prepare), Some(accept)) = (find(true, "Prepare", *t0), find(true, "Accept", *t0))
        else {
            continue;
        };
        let (Some(promise), Some(accepted)) = (
            find(false, "Promise", prepare),
            find(false, "Accepted", accept),
        ) else {
            continue;
        };
        let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1000.0;
        cols[0].push(ms(*t0, prepare));
        cols[1].push(ms(prepare, promise));
        cols[2].push(ms(promise, accept));
        cols[3].push(ms(accept, accepted));
        cols[4].push(ms(accepted, *done));
    }
    let mut out = [0.0; 5];
    for (o, c) in out.iter_mut().zip(&cols) {
        *o = summarize(c)?.p50;
    }
    Some(out)
}
