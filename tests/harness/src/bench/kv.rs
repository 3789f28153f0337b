//! Replicated state side by side with etcd: the built-in key-value store (`gen-paxos node
//! --kv`, loaded through `gen-paxos kv ... bench`) and etcd's key-value API (loaded through
//! its JSON gateway by [`super::etcd_kv`]), both 3 members on loopback, both durable with
//! an fsync per write. Then the store's failover to a ready master after SIGKILL, and a
//! follower catching up after missing 100,000 entries.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::process::Signal;

use super::gp::{self, KvFailover};
use super::util::{CpuWindow, rss_kib, summarize, wall_ms};
use super::{etcd, etcd_kv};

/// What each request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// An empty round trip (gen-paxos: a ping to the node; etcd: `GET /version`).
    Ping,
    /// A write of one key, answered once durable on a majority.
    Put,
    /// A read of one key (gen-paxos: a lease read on the master; etcd: a linearizable
    /// range, its default).
    Get,
}

/// One load: its shape.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub op: Op,
    pub clients: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Requests per second across the clients (open loop); `None`: closed loop.
    pub rate: Option<f64>,
    pub keys: usize,
    pub value_size: usize,
    /// gen-paxos: send to a follower (it forwards to the master) instead of the master;
    /// etcd: to a follower instead of the leader.
    pub via_follower: bool,
}

/// Per member of a cluster: (label, % of one core, RSS MiB) over a load.
pub type Usage = Vec<(String, Option<f64>, Option<f64>)>;

/// One load: what it did.
#[derive(Debug, Clone, Default)]
pub struct Load {
    latencies_us: Vec<f64>,
    pub done: u64,
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Per member of the cluster: (label, % of one core, RSS MiB) over the load.
    pub usage: Usage,
}

impl Load {
    pub fn record(&mut self, took: Duration) {
        self.latencies_us.push(took.as_secs_f64() * 1e6);
    }

    pub fn fail(&mut self, why: String) {
        self.errors += 1;
        self.first_error.get_or_insert(why);
    }

    pub fn merge(&mut self, other: Load) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Fills the figures from the latencies of a window of `secs`.
    pub fn finish(&mut self, secs: f64) {
        self.done = self.latencies_us.len() as u64;
        self.per_sec = self.done as f64 / secs;
        if let Some(s) = summarize(&self.latencies_us) {
            (self.p50_us, self.p99_us, self.max_us) = (s.p50, s.p99, s.max);
        }
        self.latencies_us = Vec::new();
    }
}

/// One row of the side-by-side table.
#[derive(Debug)]
pub struct Row {
    pub label: String,
    pub spec: LoadSpec,
    pub gp: Option<Result<Load, String>>,
    pub etcd: Option<Result<Load, String>>,
}

/// A follower's catch-up.
#[derive(Debug, Clone)]
pub struct CatchUp {
    /// Entries the master had applied beyond the follower when it came back.
    pub missed: u64,
    /// From SIGCONT to the follower's status showing them all applied (ms).
    pub ms: f64,
    /// How long it was stopped (ms).
    pub stopped_ms: f64,
}

/// The whole section.
#[derive(Debug, Default)]
pub struct KvResult {
    pub etcd_version: Option<String>,
    pub rows: Vec<Row>,
    pub failover: Vec<KvFailover>,
    pub catch_up: Option<Result<CatchUp, String>>,
    pub errors: Vec<String>,
}

fn spec(op: Op, clients: usize, secs: u64) -> LoadSpec {
    LoadSpec {
        op,
        clients,
        duration: Duration::from_secs(secs),
        warmup: Duration::from_secs(1),
        rate: None,
        keys: 1000,
        value_size: 16,
        via_follower: false,
    }
}

/// The rows, in order.
fn rows(secs: u64) -> Vec<Row> {
    let row = |label: &str, spec: LoadSpec| Row {
        label: label.into(),
        spec,
        gp: None,
        etcd: None,
    };
    let mut follower = spec(Op::Put, 1, secs);
    follower.via_follower = true;
    let mut paced = spec(Op::Put, 8, secs.max(10));
    paced.rate = Some(1000.0);
    vec![
        row("empty round trip, 1 client", spec(Op::Ping, 1, secs)),
        row("put, 1 client", spec(Op::Put, 1, secs)),
        row("put, 1 client, through a follower", follower),
        row("get, 1 client", spec(Op::Get, 1, secs)),
        row("put, 64 clients", spec(Op::Put, 64, secs)),
        row("get, 64 clients", spec(Op::Get, 64, secs)),
        row("put at 1,000/s (8 clients, open loop)", paced),
    ]
}

/// The section's settings.
#[derive(Debug, Clone)]
pub struct KvSettings {
    pub lease: Duration,
    /// Seconds per load.
    pub secs: u64,
    /// Failover trials.
    pub trials: usize,
    /// Entries the stopped follower misses (0: no catch-up run).
    pub catch_up_entries: u64,
    /// Run etcd's side (whether etcd may be installed); `None`: gen-paxos only.
    pub etcd_install: Option<bool>,
}

/// Runs the section: gen-paxos first, then etcd (one cluster at a time on the machine).
pub fn run(bin: &Path, work: &Path, settings: &KvSettings, rng: &mut fastrand::Rng) -> KvResult {
    let mut result = KvResult {
        rows: rows(settings.secs),
        ..KvResult::default()
    };
    if let Err(e) = gp_side(bin, work, settings, rng, &mut result) {
        result.errors.push(format!("gen-paxos: {e:#}"));
    }
    if let Some(may_install) = settings.etcd_install
        && let Err(e) = etcd_side(work, may_install, &mut result)
    {
        result.errors.push(format!("etcd: {e:#}"));
    }
    result
}

fn gp_side(
    bin: &Path,
    work: &Path,
    settings: &KvSettings,
    rng: &mut fastrand::Rng,
    result: &mut KvResult,
) -> Result<()> {
    let (trials, catch_up_entries) = (settings.trials, settings.catch_up_entries);
    let setup = gp::Setup {
        bin: bin.to_path_buf(),
        lease: settings.lease,
        priority: None,
        config: None,
        kv: true,
        metrics: false,
        worker_threads: None,
        realtime: None,
    };
    let mut cluster = gp::Cluster::new(setup, &work.join("kv"), false)?;
    cluster.start_all()?;
    for row in &mut result.rows {
        eprintln!("bench: kv, gen-paxos: {}", row.label);
        row.gp = Some(gp_load(bin, &cluster, &row.spec).map_err(|e| format!("{e:#}")));
    }
    eprintln!("bench: kv, gen-paxos: {trials} failovers");
    for i in 0..trials {
        // Some writes first, so the new master has entries to recover.
        let mut writes = spec(Op::Put, 8, 1);
        writes.warmup = Duration::ZERO;
        if let Err(e) = gp_load(bin, &cluster, &writes) {
            result
                .errors
                .push(format!("writes before failover {i}: {e:#}"));
        }
        match cluster.kv_failover(rng) {
            Ok(t) => result.failover.push(t),
            Err(e) => result.errors.push(format!("kv failover {i}: {e:#}")),
        }
        eprint!(".");
    }
    eprintln!();
    if catch_up_entries > 0 {
        eprintln!("bench: kv, gen-paxos: a follower misses {catch_up_entries} entries");
        result.catch_up =
            Some(catch_up(bin, &cluster, catch_up_entries).map_err(|e| format!("{e:#}")));
    }
    cluster.stop_all();
    Ok(())
}

/// Runs `spec` through `gen-paxos kv ... bench` against the store's master (or a follower).
fn gp_load(bin: &Path, cluster: &gp::Cluster, spec: &LoadSpec) -> Result<Load> {
    let master = cluster.kv_master(Duration::from_secs(10))?;
    let target = if spec.via_follower {
        (1..=3).find(|i| *i != master).context("no follower")?
    } else {
        master
    };
    let addr = cluster.addr(target).context("no address")?;
    let op = match spec.op {
        Op::Ping => "ping",
        Op::Put => "put",
        Op::Get => "get",
    };
    let mut cmd = Command::new(bin);
    cmd.args(["kv", "--json", "--timeout", "5s", "--peer"])
        .arg(format!("{target}={addr}"))
        .arg("--certs")
        .arg(cluster.certs())
        .args(["bench", "--op", op])
        .args(["--clients", &spec.clients.to_string()])
        .args(["--duration", &format!("{}ms", spec.duration.as_millis())])
        .args(["--warmup", &format!("{}ms", spec.warmup.as_millis())])
        .args(["--keys", &spec.keys.to_string()])
        .args(["--value-size", &spec.value_size.to_string()]);
    if let Some(rate) = spec.rate {
        cmd.args(["--rate", &rate.to_string()]);
    }
    let pids: Vec<(String, u32)> = cluster
        .pids()
        .into_iter()
        .map(|(id, pid)| {
            let role = if id == master { "master" } else { "follower" };
            (format!("node {id} ({role})"), pid)
        })
        .collect();
    let (out, usage) = measured(&pids, spec, || {
        cmd.output().context("cannot run gen-paxos kv bench")
    })?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "kv bench printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let n = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(Load {
        latencies_us: Vec::new(),
        done: v["done"].as_u64().unwrap_or(0),
        per_sec: n("per_sec"),
        p50_us: n("p50_us"),
        p99_us: n("p99_us"),
        max_us: n("max_us"),
        errors: ["refused", "unknown", "unavailable", "failed"]
            .iter()
            .map(|k| v[*k].as_u64().unwrap_or(0))
            .sum(),
        first_error: v["first_error"].as_str().map(str::to_string),
        usage,
    })
}

/// Runs `load`; for a paced load also measures each process's CPU and RSS meanwhile.
fn measured<T>(
    pids: &[(String, u32)],
    spec: &LoadSpec,
    load: impl FnOnce() -> Result<T>,
) -> Result<(T, Usage)> {
    if spec.rate.is_none() {
        return Ok((load()?, Vec::new()));
    }
    let stats: Vec<(String, String)> = pids
        .iter()
        .map(|(label, pid)| (label.clone(), format!("/proc/{pid}/stat")))
        .collect();
    let window = CpuWindow::start(&stats);
    let out = load()?;
    let cpu = window.finish();
    let usage = pids
        .iter()
        .zip(cpu)
        .map(|((label, pid), (_, pct))| {
            let rss = rss_kib(*pid).map(|(rss, _)| rss as f64 / 1024.0);
            (label.clone(), pct, rss)
        })
        .collect();
    Ok((out, usage))
}

/// SIGSTOP of a follower while the master takes `entries` writes, then SIGCONT: how long
/// until the follower has applied everything the master had.
fn catch_up(bin: &Path, cluster: &gp::Cluster, entries: u64) -> Result<CatchUp> {
    let master = cluster.kv_master(Duration::from_secs(10))?;
    let follower = (1..=3).find(|i| *i != master).context("no follower")?;
    let (_, before, _) = cluster.kv_status(follower)?;
    let stopped = cluster.signal(follower, Signal::STOP)?;
    let result = (|| {
        let mut writes = spec(Op::Put, 64, 2);
        writes.warmup = Duration::ZERO;
        let deadline = Instant::now() + Duration::from_secs(120);
        let target = loop {
            gp_load(bin, cluster, &writes)?;
            let (_, applied, _) = cluster.kv_status(master)?;
            if applied >= before + entries {
                break applied;
            }
            if Instant::now() >= deadline {
                bail!(
                    "the master applied only {} new entries in 120 s",
                    applied - before
                );
            }
        };
        let resumed = cluster.signal(follower, Signal::CONT)?;
        let limit = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, applied, _) = cluster.kv_status(follower)?;
            if applied >= target {
                return Ok(CatchUp {
                    missed: target - before,
                    ms: wall_ms() - resumed,
                    stopped_ms: resumed - stopped,
                });
            }
            if Instant::now() >= limit {
                bail!("the follower applied {applied} of {target} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })();
    let _ = cluster.signal(follower, Signal::CONT);
    result
}

fn etcd_side(work: &Path, may_install: bool, result: &mut KvResult) -> Result<()> {
    result.etcd_version = Some(etcd::ensure_installed(may_install)?);
    let mut cluster = etcd::EtcdCluster::start(&work.join("etcd-kv"))?;
    let pids: Vec<u32> = cluster.pids();
    for row in &mut result.rows {
        eprintln!("bench: kv, etcd: {}", row.label);
        let outcome = (|| {
            let leader = cluster.leader()?;
            let target = if row.spec.via_follower {
                cluster
                    .clients
                    .iter()
                    .find(|c| **c != leader)
                    .cloned()
                    .context("no etcd follower")?
            } else {
                leader.clone()
            };
            let labels: Vec<(String, u32)> = cluster
                .clients
                .iter()
                .zip(&pids)
                .map(|(c, pid)| {
                    let role = if *c == leader { "leader" } else { "follower" };
                    (format!("member {c} ({role})"), *pid)
                })
                .collect();
            let (mut load, usage) =
                measured(&labels, &row.spec, || etcd_kv::load(&target, &row.spec))?;
            load.usage = usage;
            Ok::<_, anyhow::Error>(load)
        })();
        row.etcd = Some(outcome.map_err(|e| format!("{e:#}")));
    }
    cluster.stop();
    Ok(())
}
