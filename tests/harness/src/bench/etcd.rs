//! etcd 3.4 (Debian `etcd-server`, `etcd-client`): a 3-member cluster on loopback, three
//! `etcdctl lock --ttl 1` contenders (failover after SIGKILL of the holder; graceful
//! release by SIGINT, which makes etcdctl unlock), and 10,000 leases kept alive through the
//! JSON gateway while the members' CPU and RSS are measured.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::process::Signal;

use super::gp::NodeUse;
use super::util::{CpuWindow, Proc, command_output, free_tcp_ports, http, random_wait, rss_kib};

/// Makes sure `etcd` and `etcdctl` exist, installing the Debian packages if allowed.
/// Returns the version line.
pub fn ensure_installed(may_install: bool) -> Result<String> {
    let present =
        || command_output("sh", &["-c", "command -v etcd && command -v etcdctl"]).is_some();
    if !present() {
        if !may_install {
            bail!("etcd is not installed and --no-etcd-install was given");
        }
        eprintln!("bench: etcd missing: apt-get install etcd-server etcd-client");
        let status = Command::new("sh")
            .args([
                "-c",
                "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >/dev/null && apt-get install -y -qq etcd-server etcd-client >/dev/null",
            ])
            .status()
            .context("cannot run apt-get")?;
        if !status.success() || !present() {
            bail!("installing etcd-server and etcd-client with apt-get failed ({status})");
        }
    }
    let version = command_output("etcd", &["--version"]).unwrap_or_default();
    Ok(version
        .lines()
        .next()
        .unwrap_or("etcd (unknown version)")
        .to_string())
}

/// A 3-member etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Proc>,
    pub clients: Vec<String>,
    dir: PathBuf,
}

impl EtcdCluster {
    pub fn start(dir: &Path) -> Result<EtcdCluster> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let ports = free_tcp_ports(6)?;
        let peer = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let client = |i: usize| format!("127.0.0.1:{}", ports[2 * i]);
        let initial = (0..3)
            .map(|i| format!("m{i}={}", peer(i)))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("bench-{}", std::process::id());
        let mut members = Vec::new();
        for i in 0..3 {
            let mut cmd = Command::new("etcd");
            cmd.args([
                "--name",
                &format!("m{i}"),
                "--listen-client-urls",
                &format!("http://{}", client(i)),
                "--advertise-client-urls",
                &format!("http://{}", client(i)),
                "--listen-peer-urls",
                &peer(i),
                "--initial-advertise-peer-urls",
                &peer(i),
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                &token,
                // 50 ms heartbeat, 500 ms election timeout: etcd's minimum lease TTL is
                // ceil(1.5 × election timeout) = 1 s, so `--ttl 1` is honoured (with the
                // defaults, 100 ms / 1 s, every TTL below 2 s is raised to 2 s).
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                "--logger",
                "zap",
                "--log-level",
                "warn",
            ])
            .arg("--data-dir")
            .arg(dir.join(format!("m{i}")));
            let stderr = dir.join(format!("m{i}.log"));
            members.push(Proc::spawn(
                &format!("etcd-m{i}"),
                cmd,
                false,
                Some(&stderr),
                |_, _| {},
            )?);
        }
        let cluster = EtcdCluster {
            members,
            clients: (0..3).map(client).collect(),
            dir: dir.to_path_buf(),
        };
        let until = Instant::now() + Duration::from_secs(30);
        for c in &cluster.clients {
            loop {
                let ok = http(c, "GET", "/health", b"", Duration::from_secs(2))
                    .map(|b| String::from_utf8_lossy(&b).contains("\"true\""))
                    .unwrap_or(false);
                if ok {
                    break;
                }
                if Instant::now() >= until {
                    bail!(
                        "etcd member {c} not healthy within 30 s (see {})",
                        dir.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(cluster)
    }

    pub fn endpoints(&self) -> String {
        self.clients.join(",")
    }

    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().map(Proc::pid).collect()
    }

    /// The client address of the current raft leader.
    pub fn leader(&self) -> Result<String> {
        for c in &self.clients {
            let body = http(
                c,
                "POST",
                "/v3/maintenance/status",
                b"{}",
                Duration::from_secs(2),
            )?;
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            if v["leader"].is_string() && v["leader"] == v["header"]["member_id"] {
                return Ok(c.clone());
            }
        }
        bail!("no etcd leader")
    }

    pub fn stop(&mut self) {
        for m in &mut self.members {
            m.stop(Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.members.clear();
    }
}

/// Lines `etcdctl lock` printed: (wall ms at reading, contender number, line).
#[derive(Debug, Default)]
struct LockLog {
    lines: Mutex<Vec<(f64, u64, String)>>,
    changed: Condvar,
}

/// Three `etcdctl lock --ttl 1` contenders, replaced when they exit.
#[derive(Debug)]
pub struct Contenders {
    endpoints: String,
    ttl: u32,
    log: Arc<LockLog>,
    procs: Vec<(u64, Proc)>,
    next: u64,
    dir: PathBuf,
}

const LOCK: &str = "benchlock";

impl Contenders {
    pub fn new(cluster: &EtcdCluster, ttl: u32) -> Contenders {
        Contenders {
            endpoints: cluster.endpoints(),
            ttl,
            log: Arc::default(),
            procs: Vec::new(),
            next: 1,
            dir: cluster.dir.clone(),
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let n = self.next;
        self.next += 1;
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3").args([
            &format!("--endpoints={}", self.endpoints),
            "lock",
            "--ttl",
            &self.ttl.to_string(),
            LOCK,
        ]);
        let log = self.log.clone();
        let stderr = self.dir.join("etcdctl.log");
        let proc = Proc::spawn(
            &format!("etcdctl-{n}"),
            cmd,
            false,
            Some(&stderr),
            move |at, line| {
                log.lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((at, n, line.to_string()));
                log.changed.notify_all();
            },
        )?;
        self.procs.push((n, proc));
        Ok(())
    }

    /// Keeps three contenders, each given time to queue up.
    fn fill(&mut self) -> Result<()> {
        self.procs.retain_mut(|(_, p)| p.is_running());
        let mut spawned = false;
        while self.procs.len() < 3 {
            self.spawn()?;
            spawned = true;
        }
        if spawned {
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    }

    fn holder_after(&self, after: f64, not: Option<u64>, limit: Duration) -> Option<(f64, u64)> {
        let until = Instant::now() + limit;
        let mut lines = self
            .log
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some((at, n, _)) = lines
                .iter()
                .find(|(at, n, l)| *at > after && Some(*n) != not && l.starts_with(LOCK))
            {
                return Some((*at, *n));
            }
            let now = Instant::now();
            if now >= until {
                return None;
            }
            lines = self
                .log
                .changed
                .wait_timeout(lines, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The contender holding the lock now.
    fn holder(&self) -> Option<u64> {
        let lines = self
            .log
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        lines
            .iter()
            .rev()
            .find(|(_, _, l)| l.starts_with(LOCK))
            .map(|(_, n, _)| *n)
            .filter(|n| self.procs.iter().any(|(m, _)| m == n))
    }

    fn wait_holder(&mut self) -> Result<u64> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            self.fill()?;
            if let Some(h) = self.holder() {
                return Ok(h);
            }
            if Instant::now() >= until {
                bail!("no etcdctl lock holder within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Signals the holder at a random point of its keep-alive cycle; time to the next
    /// holder's printed key.
    pub fn trial(&mut self, signal: Signal, rng: &mut fastrand::Rng) -> Result<f64> {
        self.wait_holder()?;
        std::thread::sleep(random_wait(
            rng,
            Duration::from_millis(u64::from(self.ttl) * 1000 / 3),
        ));
        let holder = self.wait_holder()?;
        let at = self
            .procs
            .iter()
            .find(|(n, _)| *n == holder)
            .context("holder vanished")?
            .1
            .signal(signal)?;
        let (next_at, _) = self
            .holder_after(at, Some(holder), Duration::from_secs(15))
            .context("no new etcd lock holder within 15 s")?;
        if let Some((_, p)) = self.procs.iter_mut().find(|(n, _)| *n == holder) {
            p.wait_exit(Duration::from_secs(5));
        }
        self.procs.retain(|(n, _)| *n != holder);
        self.fill()?;
        Ok(next_at - at)
    }
}

#[derive(Debug, Clone, Default)]
pub struct EtcdScale {
    pub leases: usize,
    pub setup_secs: f64,
    pub window_secs: f64,
    pub keepalive_rounds: u64,
    pub lost: u64,
    pub alive_at_end: Option<usize>,
    pub members: Vec<NodeUse>,
    pub keepalive_round_ms: f64,
}

/// Grants `n` leases (TTL `ttl` s) with a key each, keeps them alive every TTL/3 through
/// the JSON gateway from this process (from the first grant on), and measures the members
/// over `window`.
pub fn scale(cluster: &EtcdCluster, n: usize, ttl: u64, window: Duration) -> Result<EtcdScale> {
    let started = Instant::now();
    let leader = cluster.leader()?;
    let ids: Mutex<Vec<String>> = Mutex::new(Vec::with_capacity(n));
    let failed = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let measuring = AtomicBool::new(false);
    let lost = AtomicU64::new(0);
    let rounds = AtomicU64::new(0);
    let round_ms = Mutex::new(Vec::new());
    let period = Duration::from_millis(ttl * 1000 / 3);
    let pids = cluster.pids();
    let mut rss_max = vec![0u64; pids.len()];
    let mut r = EtcdScale::default();
    let threads = 8;
    let cpu = std::thread::scope(|s| -> Result<Vec<(String, Option<f64>)>> {
        let keeper = s.spawn(|| -> Result<()> {
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let body: Vec<u8> = ids
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .map(|id| format!("{{\"ID\":\"{id}\"}}\n"))
                    .collect::<String>()
                    .into_bytes();
                let count = body.iter().filter(|&&b| b == b'\n').count();
                if count > 0 {
                    let measured = measuring.load(Ordering::Relaxed);
                    let answer = http(
                        &leader,
                        "POST",
                        "/v3/lease/keepalive",
                        &body,
                        Duration::from_secs(10),
                    )?;
                    let alive = String::from_utf8_lossy(&answer)
                        .lines()
                        .filter(|l| l.contains("\"TTL\""))
                        .count();
                    if measured {
                        lost.fetch_add(count.saturating_sub(alive) as u64, Ordering::Relaxed);
                        rounds.fetch_add(1, Ordering::Relaxed);
                        round_ms
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                std::thread::sleep(period.saturating_sub(t0.elapsed()));
            }
            Ok(())
        });
        std::thread::scope(|g| {
            for t in 0..threads {
                let (ids, failed, leader) = (&ids, &failed, &leader);
                g.spawn(move || {
                    for i in (t..n).step_by(threads) {
                        let grant = http(
                            leader,
                            "POST",
                            "/v3/lease/grant",
                            format!("{{\"TTL\":{ttl}}}").as_bytes(),
                            Duration::from_secs(10),
                        );
                        let id = grant.ok().and_then(|b| {
                            serde_json::from_slice::<serde_json::Value>(&b).ok()?["ID"]
                                .as_str()
                                .map(str::to_string)
                        });
                        let Some(id) = id else {
                            failed.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        ids.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(id.clone());
                        let key = b64(format!("bench/lease-{i:06}").as_bytes());
                        let put =
                            format!("{{\"key\":\"{key}\",\"value\":\"eA==\",\"lease\":\"{id}\"}}");
                        if http(
                            leader,
                            "POST",
                            "/v3/kv/put",
                            put.as_bytes(),
                            Duration::from_secs(10),
                        )
                        .is_err()
                        {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        r.setup_secs = started.elapsed().as_secs_f64();
        r.leases = ids.lock().unwrap_or_else(PoisonError::into_inner).len();
        // Two keep-alive rounds with every lease before measuring.
        std::thread::sleep(period * 2);
        let labels: Vec<(String, String)> = pids
            .iter()
            .enumerate()
            .map(|(i, pid)| (format!("etcd m{i}"), format!("/proc/{pid}/stat")))
            .collect();
        measuring.store(true, Ordering::Relaxed);
        let window_cpu = CpuWindow::start(&labels);
        let t0 = Instant::now();
        while t0.elapsed() < window && !keeper.is_finished() {
            std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(t0.elapsed())));
            for (i, pid) in pids.iter().enumerate() {
                if let Some((rss, _)) = rss_kib(*pid) {
                    rss_max[i] = rss_max[i].max(rss);
                }
            }
        }
        r.window_secs = t0.elapsed().as_secs_f64();
        let cpu = window_cpu.finish();
        measuring.store(false, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        keeper
            .join()
            .map_err(|_| anyhow::anyhow!("keep-alive thread panicked"))??;
        Ok(cpu)
    })?;
    if failed.load(Ordering::Relaxed) > 0 {
        bail!(
            "{} lease grants or puts failed",
            failed.load(Ordering::Relaxed)
        );
    }
    r.lost = lost.load(Ordering::Relaxed);
    r.keepalive_rounds = rounds.load(Ordering::Relaxed);
    let times = round_ms
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    r.keepalive_round_ms = super::util::summarize(&times).map_or(0.0, |s| s.p50);
    r.alive_at_end = http(
        &leader,
        "POST",
        "/v3/lease/leases",
        b"{}",
        Duration::from_secs(10),
    )
    .ok()
    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    .and_then(|v| v["leases"].as_array().map(Vec::len));
    for (i, pid) in pids.iter().enumerate() {
        let (rss, hwm) = rss_kib(*pid).unwrap_or((0, 0));
        r.members.push(NodeUse {
            id: i as u64,
            cpu_pct: cpu.get(i).and_then(|c| c.1),
            rss_kib: rss_max[i].max(rss),
            hwm_kib: hwm,
        });
    }
    Ok(r)
}

pub(super) fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[((v >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
