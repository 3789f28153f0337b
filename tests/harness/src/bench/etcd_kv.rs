//! The etcd side of the key-value benchmark: load on etcd's key-value API through its JSON
//! gateway, each client on its own persistent HTTP/1.1 connection with one request in
//! flight, measured like `gen-paxos kv ... bench` measures the other side.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::etcd::b64;
use super::kv::{Load, LoadSpec, Op};

type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

/// Runs `spec` against the etcd member whose client address is `addr` (`127.0.0.1:port`).
pub fn load(addr: &str, spec: &LoadSpec) -> Result<Load> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(addr.to_string(), spec.clone()))
}

async fn run(addr: String, spec: LoadSpec) -> Result<Load> {
    let window: Arc<OnceLock<(Instant, Instant)>> = Arc::default();
    let spec = Arc::new(spec);
    let mut tasks = Vec::with_capacity(spec.clients);
    for i in 0..spec.clients {
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .with_context(|| format!("cannot connect to etcd at {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with etcd")?;
        tokio::spawn(conn);
        let (spec, window) = (spec.clone(), window.clone());
        tasks.push(tokio::spawn(client(sender, spec, i, window)));
    }
    let from = Instant::now() + spec.warmup;
    let _ = window.set((from, from + spec.duration));
    let mut load = Load::default();
    for task in tasks {
        load.merge(task.await.context("an etcd bench client panicked")?);
    }
    load.finish(spec.duration.as_secs_f64());
    Ok(load)
}

fn request(spec: &LoadSpec, rng: &mut fastrand::Rng) -> Result<Request<Body>> {
    let key = format!("bench-{}", rng.usize(..spec.keys));
    let (method, path, body) = match spec.op {
        Op::Ping => ("GET", "/version", None),
        Op::Get => (
            "POST",
            "/v3/kv/range",
            Some(format!("{{\"key\":\"{}\"}}", b64(key.as_bytes()))),
        ),
        Op::Put => {
            let value: Vec<u8> = (0..spec.value_size)
                .map(|_| rng.alphanumeric() as u8)
                .collect();
            let body = format!(
                "{{\"key\":\"{}\",\"value\":\"{}\"}}",
                b64(key.as_bytes()),
                b64(&value)
            );
            ("POST", "/v3/kv/put", Some(body))
        }
    };
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1");
    Ok(match body {
        Some(b) => builder
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(b)).map_err(|e| match e {}).boxed())?,
        None => builder.body(Empty::new().map_err(|e| match e {}).boxed())?,
    })
}

async fn exchange(sender: &mut SendRequest<Body>, request: Request<Body>) -> Result<()> {
    sender.ready().await?;
    let response: hyper::Response<Incoming> = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

async fn client(
    mut sender: SendRequest<Body>,
    spec: Arc<LoadSpec>,
    index: usize,
    window: Arc<OnceLock<(Instant, Instant)>>,
) -> Load {
    let mut rng = fastrand::Rng::with_seed(index as u64 + 1);
    let mut load = Load::default();
    let interval = spec
        .rate
        .map(|r| Duration::from_secs_f64(spec.clients as f64 / r));
    let mut next = Instant::now() + interval.map_or(Duration::ZERO, |i| i.mul_f64(rng.f64()));
    loop {
        // Open loop: latency counts from when the request was due.
        let sent = if interval.is_some() {
            tokio::time::sleep_until(next).await;
            next
        } else {
            Instant::now()
        };
        let measured = match window.get() {
            Some((_, end)) if sent >= *end => break,
            Some((from, _)) => sent >= *from,
            None => false,
        };
        let outcome = match request(&spec, &mut rng) {
            Ok(r) => exchange(&mut sender, r).await,
            Err(e) => Err(e),
        };
        let took = sent.elapsed();
        if let Some(i) = interval {
            next += i;
        }
        let broken = sender.is_closed();
        if measured {
            match outcome {
                Ok(()) => load.record(took),
                Err(e) => load.fail(format!("{e:#}")),
            }
        }
        if broken {
            load.fail("the connection to etcd closed".into());
            break;
        }
    }
    load
}
