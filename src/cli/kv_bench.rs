//! `gen-paxos kv ... bench`: load on the key-value store from this process, and the
//! latencies it saw (like `etcdctl check perf`): how fast is this cluster, from here.
//!
//! Each client holds one connection to the node given with `--peer` and sends one request
//! at a time: closed loop (the next request as soon as the answer arrives), or open loop
//! at `--rate` requests per second across all clients. `--op ping` asks nothing of the
//! store: it measures the client path itself (a QUIC stream to the node and back). Exits 0
//! if every measured request was done, 1 otherwise (the first error is printed).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use gen_paxos_quic::{Settings, StatusClient};
use tokio::time::Instant;

use super::common::{load_identity_named, parse_duration, resolve};
use super::control::{EXIT_OK, Target, ToolAnswer, ToolRequest};
use super::kv_store::{KvOutcome, KvRequest};

/// What each request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchOp {
    /// Set a key (a log entry, answered once chosen and durable on a majority).
    Put,
    /// Read a key (a lease read on the master; a follower forwards it).
    Get,
    /// An empty round trip to the node (the store is not asked).
    Ping,
}

/// Arguments of `gen-paxos kv ... bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What each request is.
    #[arg(long, value_enum, default_value = "put")]
    pub op: BenchOp,
    /// Concurrent clients, each with its own connection and one request in flight.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// How long to measure (after the warm-up).
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub duration: Duration,
    /// Load before measuring, not counted.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Requests per second across all clients (default: each client as fast as answered).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Bytes per value.
    #[arg(long, default_value_t = 16)]
    pub value_size: usize,
    /// Distinct keys (`bench-0` ...), chosen at random.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
}

/// What the clients saw in the measured window.
#[derive(Debug, Default)]
struct Tally {
    /// Latencies of the requests done, in microseconds.
    done: Vec<u32>,
    refused: u64,
    unknown: u64,
    unavailable: u64,
    failed: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.done.extend(other.done);
        self.refused += other.refused;
        self.unknown += other.unknown;
        self.unavailable += other.unavailable;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn error(&mut self, why: String) {
        self.first_error.get_or_insert(why);
    }
}

/// Runs the load and prints one line (or one JSON object); exit 0 if every measured
/// request was done, 1 otherwise.
pub async fn run(target: &Target, args: &BenchArgs, json: bool) -> Result<u8> {
    if args.clients == 0 || args.keys == 0 {
        bail!("--clients and --keys must be at least 1");
    }
    if args.duration.is_zero() {
        bail!("--duration must be longer than zero");
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rate must be a positive number of requests per second");
    }
    let (identity, ca) = load_identity_named(&target.certs, None, target.client.as_deref())?;
    let addr = resolve(&target.peer.1).await.map_err(anyhow::Error::msg)?;
    let mut settings = Settings::default();
    settings.connect_timeout = target.timeout;
    // Clients connect one after another (a node admits a few new connections per second
    // from one address) and start sending at once, so that none sits idle; the measured
    // window opens `warmup` after the last one connected.
    let window: Arc<OnceLock<(Instant, Instant)>> = Arc::default();
    let args = Arc::new(args.clone());
    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let client = StatusClient::connect(addr, target.peer.0, &identity, &ca, &settings)
            .await
            .with_context(|| format!("client {i} cannot connect to node {}", target.peer.0))?;
        let (args, window) = (args.clone(), window.clone());
        tasks.push(tokio::spawn(async move {
            let tally = client_loop(&client, &args, i, &window).await;
            client.close().await;
            tally
        }));
    }
    let measure_from = Instant::now() + args.warmup;
    let _ = window.set((measure_from, measure_from + args.duration));
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.context("a bench client panicked")?);
    }
    let secs = args.duration.as_secs_f64();
    print(&args, &tally, secs, json);
    let all_done = tally.refused + tally.unknown + tally.unavailable + tally.failed == 0;
    Ok(if all_done && !tally.done.is_empty() {
        EXIT_OK
    } else {
        super::control::EXIT_ERROR
    })
}

/// One client: requests until the window closes, counting those sent inside it.
async fn client_loop(
    client: &StatusClient,
    args: &BenchArgs,
    index: usize,
    window: &OnceLock<(Instant, Instant)>,
) -> Tally {
    let mut rng = fastrand::Rng::with_seed(index as u64 + 1);
    let mut tally = Tally::default();
    // Open loop: this client's share of the rate, its first request staggered.
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.clients as f64 / r));
    let mut next = Instant::now() + interval.map_or(Duration::ZERO, |i| i.mul_f64(rng.f64()));
    loop {
        // Open loop: latency counts from when the request was due, so a client that fell
        // behind shows its queueing.
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
        let request = make_request(args, &mut rng);
        let answer = client.request::<_, ToolAnswer>(&request).await;
        let took = sent.elapsed();
        if let Some(i) = interval {
            next += i;
        }
        if !measured {
            // A broken connection fails every later request at once: stop this client,
            // and say so (the run measures one client fewer).
            if let Err(e @ gen_paxos_quic::Error::Connection(_)) = answer {
                tally.failed += 1;
                tally.error(format!("connection lost during the warm-up: {e}"));
                break;
            }
            continue;
        }
        match answer {
            Ok(ToolAnswer::Pong) | Ok(ToolAnswer::Kv(KvOutcome::Done { .. })) => {
                let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
                tally.done.push(micros);
            }
            Ok(ToolAnswer::Kv(KvOutcome::Refused { why, .. })) => {
                tally.refused += 1;
                tally.error(format!("refused: {why}"));
            }
            Ok(ToolAnswer::Kv(KvOutcome::Unknown(why))) => {
                tally.unknown += 1;
                tally.error(format!("unknown: {why}"));
            }
            Ok(ToolAnswer::Kv(KvOutcome::Unavailable(why))) => {
                tally.unavailable += 1;
                tally.error(format!("unavailable: {why}"));
            }
            Ok(other) => {
                tally.failed += 1;
                tally.error(format!("unexpected answer: {other:?}"));
            }
            Err(e) => {
                tally.failed += 1;
                tally.error(format!("no answer: {e}"));
                // A broken connection fails every later request at once: stop this client.
                if matches!(e, gen_paxos_quic::Error::Connection(_)) {
                    break;
                }
            }
        }
    }
    tally
}

fn make_request(args: &BenchArgs, rng: &mut fastrand::Rng) -> ToolRequest {
    let key = format!("bench-{}", rng.usize(..args.keys));
    match args.op {
        BenchOp::Ping => ToolRequest::Ping,
        BenchOp::Get => ToolRequest::Kv(KvRequest::Get { key }),
        BenchOp::Put => {
            let value = (0..args.value_size)
                .map(|_| rng.alphanumeric() as u8)
                .collect();
            ToolRequest::Kv(KvRequest::Put { key, value })
        }
    }
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn print(args: &BenchArgs, tally: &Tally, secs: f64, json: bool) {
    let mut done = tally.done.clone();
    done.sort_unstable();
    let op = match args.op {
        BenchOp::Put => "put",
        BenchOp::Get => "get",
        BenchOp::Ping => "ping",
    };
    let per_sec = done.len() as f64 / secs;
    let [p50, p90, p99, p999] = [0.5, 0.9, 0.99, 0.999].map(|q| quantile(&done, q));
    let max = done.last().copied().unwrap_or(0);
    if json {
        let line = serde_json::json!({
            "op": op, "clients": args.clients, "rate": args.rate, "secs": secs,
            "done": done.len(), "per_sec": per_sec,
            "refused": tally.refused, "unknown": tally.unknown,
            "unavailable": tally.unavailable, "failed": tally.failed,
            "p50_us": p50, "p90_us": p90, "p99_us": p99, "p999_us": p999, "max_us": max,
            "first_error": tally.first_error,
        });
        outln!("{line}");
    } else {
        outln!(
            "{op}: {} done in {secs:.1} s ({per_sec:.0}/s) by {} clients; latency p50 {p50} us, p90 {p90}, p99 {p99}, p99.9 {p999}, max {max}; refused {}, unknown {}, unavailable {}, failed {}",
            done.len(),
            args.clients,
            tally.refused,
            tally.unknown,
            tally.unavailable,
            tally.failed,
        );
        if let Some(e) = &tally.first_error {
            super::common::complain(&format!("first error: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 0.999), 100);
        assert_eq!(quantile(&[7], 0.5), 7);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
