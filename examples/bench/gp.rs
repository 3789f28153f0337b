//! gen-paxos with real processes: `gen-paxos node` ×3 over QUIC on loopback. Cold start,
//! failover after SIGKILL, graceful handover (resign on stdin, SIGTERM), and the scale run.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::process::Signal;
use serde::Deserialize;

use crate::util::{CpuWindow, Proc, Rng, free_udp_port, rss_kib, udp_out_datagrams, wall_ms};

/// What one event line says (only the fields the benchmark needs).
#[derive(Debug, Deserialize)]
struct Line<'a> {
    ts_ms: f64,
    node: u64,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    lease: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Elected,
    Renewed,
    Surrendered,
    Other,
}

#[derive(Debug, Clone)]
pub struct Ev {
    pub ts: f64,
    pub node: u64,
    pub kind: Kind,
}

/// Every event of the trial cluster, in arrival order.
#[derive(Debug, Default)]
struct Log {
    events: Mutex<Vec<Ev>>,
    changed: Condvar,
}

impl Log {
    fn push(&self, ev: Ev) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ev);
        self.changed.notify_all();
    }

    /// The first event matching `pred`, waiting up to `limit`.
    fn wait_for(&self, limit: Duration, pred: impl Fn(&Ev) -> bool) -> Option<Ev> {
        let until = Instant::now() + limit;
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(ev) = events.iter().find(|e| pred(e)) {
                return Some(ev.clone());
            }
            let now = Instant::now();
            if now >= until {
                return None;
            }
            events = self
                .changed
                .wait_timeout(events, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn last(&self, pred: impl Fn(&Ev) -> bool) -> Option<Ev> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .rev()
            .find(|e| pred(e))
            .cloned()
    }
}

/// Counters of the scale run, fed by the reader threads.
#[derive(Debug, Default)]
pub struct Counts {
    pub elected: AtomicU64,
    pub renewed: AtomicU64,
    /// Surrendered with reason `expired` or `lost`: a lease the holder did not give up.
    pub lost: AtomicU64,
    pub other_surrenders: AtomicU64,
    pub lines: AtomicU64,
    pub unparsed: AtomicU64,
    acquired: Mutex<HashSet<String>>,
}

impl Counts {
    pub fn acquired(&self) -> usize {
        self.acquired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn snapshot(&self) -> [u64; 4] {
        [
            self.elected.load(Ordering::Relaxed),
            self.renewed.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed),
            self.other_surrenders.load(Ordering::Relaxed),
        ]
    }
}

#[derive(Debug, Clone)]
enum Sink {
    Log(Arc<Log>),
    Count(Arc<Counts>),
}

impl Sink {
    fn take(&self, line: &str) {
        match self {
            Sink::Log(log) => match serde_json::from_str::<Line<'_>>(line) {
                Ok(l) => log.push(Ev {
                    ts: l.ts_ms,
                    node: l.node,
                    kind: match &*l.event {
                        "elected" => Kind::Elected,
                        "renewed" => Kind::Renewed,
                        "surrendered" => Kind::Surrendered,
                        _ => Kind::Other,
                    },
                }),
                Err(_) => eprintln!("bench: not an event line: {line}"),
            },
            Sink::Count(c) => {
                c.lines.fetch_add(1, Ordering::Relaxed);
                let Ok(l) = serde_json::from_str::<Line<'_>>(line) else {
                    c.unparsed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                match &*l.event {
                    "elected" => {
                        c.elected.fetch_add(1, Ordering::Relaxed);
                        if let Some(lease) = l.lease {
                            c.acquired
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .insert(lease.into_owned());
                        }
                    }
                    "renewed" => {
                        c.renewed.fetch_add(1, Ordering::Relaxed);
                    }
                    "surrendered" => {
                        if matches!(l.reason.as_deref(), Some("expired" | "lost")) {
                            c.lost.fetch_add(1, Ordering::Relaxed);
                        } else {
                            c.other_surrenders.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Settings of a process cluster.
#[derive(Debug, Clone)]
pub struct Setup {
    pub bin: PathBuf,
    pub lease: Duration,
    pub priority: Option<u8>,
    /// A `--config` TOML (the scale runs list their leases there).
    pub config: Option<PathBuf>,
}

/// Three `gen-paxos node` processes.
#[derive(Debug)]
pub struct Cluster {
    setup: Setup,
    dir: PathBuf,
    certs: PathBuf,
    addrs: Vec<(u64, String)>,
    nodes: BTreeMap<u64, Proc>,
    started: BTreeMap<u64, Instant>,
    sink: Sink,
    log: Arc<Log>,
    pub counts: Arc<Counts>,
    restarts: u64,
}

impl Cluster {
    /// Certificates and addresses; no process yet.
    pub fn new(setup: Setup, dir: &Path, counting: bool) -> Result<Cluster> {
        std::fs::create_dir_all(dir)?;
        let certs = dir.join("certs");
        if !certs.join("ca.pem").exists() {
            let out = Command::new(&setup.bin)
                .args(["certs", "--nodes", "1,2,3", "--out"])
                .arg(&certs)
                .output()
                .context("cannot run gen-paxos certs")?;
            if !out.status.success() {
                bail!(
                    "gen-paxos certs failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let addrs = (1..=3)
            .map(|i| Ok((i, format!("127.0.0.1:{}", free_udp_port()?))))
            .collect::<Result<Vec<_>>>()?;
        let log = Arc::new(Log::default());
        let counts = Arc::new(Counts::default());
        let sink = if counting {
            Sink::Count(counts.clone())
        } else {
            Sink::Log(log.clone())
        };
        Ok(Cluster {
            setup,
            dir: dir.to_path_buf(),
            certs,
            addrs,
            nodes: BTreeMap::new(),
            started: BTreeMap::new(),
            sink,
            log,
            counts,
            restarts: 0,
        })
    }

    pub fn d_a(&self) -> Duration {
        gen_paxos::core::acceptor_duration(self.setup.lease, 0.001)
    }

    fn command(&self, id: u64) -> Command {
        let own = &self.addrs[(id - 1) as usize].1;
        let mut cmd = Command::new(&self.setup.bin);
        // Resign is timed from a line on the master's stdin.
        cmd.args(["node", "--id", &id.to_string(), "--listen", own])
            .arg("--stdin-commands")
            .arg("--certs")
            .arg(&self.certs)
            .args([
                "--lease-duration",
                &format!("{}ms", self.setup.lease.as_millis()),
            ]);
        for (peer, addr) in self.addrs.iter().filter(|(p, _)| *p != id) {
            cmd.args(["--peer", &format!("{peer}={addr}")]);
        }
        if let Some(p) = self.setup.priority {
            cmd.args(["--priority", &p.to_string()]);
        }
        if let Some(config) = &self.setup.config {
            cmd.arg("--config").arg(config);
        }
        cmd
    }

    /// Starts (or restarts) node `id`.
    pub fn start(&mut self, id: u64) -> Result<()> {
        if let Some(mut old) = self.nodes.remove(&id) {
            old.stop(Duration::from_secs(3));
        }
        self.restarts += 1;
        let sink = self.sink.clone();
        let cmd = self.command(id);
        let stderr = self.dir.join(format!("node-{id}.stderr"));
        // BENCH_KEEP=1 keeps every event line (and the work directory) for inspection.
        let mut tee = std::env::var_os("BENCH_KEEP")
            .filter(|_| matches!(self.sink, Sink::Log(_)))
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(format!("node-{id}.events")))
                    .ok()
            });
        let proc = Proc::spawn(
            &format!("node-{id}"),
            cmd,
            true,
            Some(&stderr),
            move |_, l| {
                if let Some(f) = tee.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{l}");
                }
                sink.take(l)
            },
        )?;
        self.nodes.insert(id, proc);
        self.started.insert(id, Instant::now());
        Ok(())
    }

    pub fn start_all(&mut self) -> Result<f64> {
        let t0 = wall_ms();
        for id in 1..=3 {
            self.start(id)?;
        }
        Ok(t0)
    }

    pub fn stop_all(&mut self) {
        for (_, mut p) in std::mem::take(&mut self.nodes) {
            p.stop(Duration::from_secs(3));
        }
    }

    pub fn kill_all(&mut self) {
        for (_, mut p) in std::mem::take(&mut self.nodes) {
            let _ = p.signal(Signal::KILL);
            p.wait_exit(Duration::from_secs(5));
            p.drain(Duration::from_secs(1));
        }
    }

    pub fn pids(&self) -> Vec<(u64, u32)> {
        self.nodes.iter().map(|(id, p)| (*id, p.pid())).collect()
    }

    /// Waits until every node is out of its restart quarantine (plus a margin) and a
    /// master has renewed or been elected recently; returns the master and the time (ms)
    /// of its last elected/renewed event.
    fn settled_master(&self, limit: Duration) -> Result<(u64, f64)> {
        let ready = self
            .started
            .values()
            .map(|s| *s + self.d_a() + Duration::from_millis(100))
            .max()
            .unwrap_or_else(Instant::now);
        if let Some(wait) = ready.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let renew = self.setup.lease / 3;
        let until = Instant::now() + limit;
        loop {
            let now = wall_ms();
            let recent = now - (renew.as_secs_f64() * 1000.0 + 100.0);
            if let Some(ev) = self
                .log
                .last(|e| matches!(e.kind, Kind::Elected | Kind::Renewed) && e.ts >= recent)
                .filter(|e| self.nodes.contains_key(&e.node))
            {
                return Ok((ev.node, ev.ts));
            }
            if Instant::now() >= until {
                bail!("no master renewed within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last elected/renewed time of `node` no later than `before`.
    fn last_accept(&self, node: u64, before: f64) -> Option<f64> {
        self.log
            .last(|e| {
                e.node == node && matches!(e.kind, Kind::Elected | Kind::Renewed) && e.ts <= before
            })
            .map(|e| e.ts)
    }

    fn next_elected(&self, not: u64, after: f64, limit: Duration) -> Option<Ev> {
        self.log.wait_for(limit, |e| {
            e.kind == Kind::Elected && e.node != not && e.ts > after
        })
    }

    /// All three started together; time from the first spawn to the first `elected`.
    pub fn cold_start(&mut self) -> Result<f64> {
        self.kill_all();
        let t0 = self.start_all()?;
        let ev = self
            .log
            .wait_for(Duration::from_secs(10), |e| {
                e.kind == Kind::Elected && e.ts > t0
            })
            .context("no election within 10 s of a cold start")?;
        Ok(ev.ts - t0)
    }

    /// SIGKILL of the master at a random point of its renewal cycle.
    pub fn failover(&mut self, rng: &mut Rng) -> Result<FailoverTrial> {
        self.settled_master(Duration::from_secs(5))?;
        std::thread::sleep(rng.duration(self.setup.lease / 3));
        let (master, _) = self.settled_master(Duration::from_secs(5))?;
        let proc = self.nodes.get_mut(&master).context("master not running")?;
        let kill_ms = proc.signal(Signal::KILL)?;
        proc.wait_exit(Duration::from_secs(5));
        proc.drain(Duration::from_secs(2));
        let last = self
            .last_accept(master, kill_ms)
            .context("the master's last renewal is unknown")?;
        // Restart the dead node at once, as a supervisor would; it is silent for its
        // quarantine, so the two survivors decide the failover.
        self.start(master)?;
        let d_a = self.d_a().as_secs_f64() * 1000.0;
        let ev = self
            .next_elected(master, kill_ms, Duration::from_secs(10))
            .context("no new master within 10 s of the kill")?;
        let floor = (last + d_a - kill_ms).max(0.0);
        Ok(FailoverTrial {
            total: ev.ts - kill_ms,
            floor,
            since_accept: kill_ms - last,
            killed: master,
            winner: ev.node,
        })
    }

    /// `resign` on the master's stdin.
    pub fn resign(&mut self, rng: &mut Rng) -> Result<f64> {
        self.settled_master(Duration::from_secs(5))?;
        std::thread::sleep(rng.duration(self.setup.lease / 3));
        let (master, _) = self.settled_master(Duration::from_secs(5))?;
        let proc = self.nodes.get_mut(&master).context("master not running")?;
        let at = proc.send_line("resign")?;
        let ev = self
            .next_elected(master, at, Duration::from_secs(5))
            .context("no new master within 5 s of resign")?;
        // Let the new master settle before the next trial.
        std::thread::sleep(Duration::from_millis(50));
        Ok(ev.ts - at)
    }

    /// SIGTERM of the master (graceful shutdown releases its lease); it is restarted after.
    pub fn sigterm(&mut self, rng: &mut Rng) -> Result<f64> {
        self.settled_master(Duration::from_secs(5))?;
        std::thread::sleep(rng.duration(self.setup.lease / 3));
        let (master, _) = self.settled_master(Duration::from_secs(5))?;
        let at = self
            .nodes
            .get(&master)
            .context("master not running")?
            .signal(Signal::TERM)?;
        let ev = self
            .next_elected(master, at, Duration::from_secs(5))
            .context("no new master within 5 s of SIGTERM")?;
        let status = self
            .nodes
            .get_mut(&master)
            .and_then(|p| p.wait_exit(Duration::from_secs(5)));
        if !status.is_some_and(|s| s.success()) {
            eprintln!("bench: node {master} after SIGTERM: {status:?}");
        }
        self.start(master)?;
        Ok(ev.ts - at)
    }

    /// The scale run: all leases acquired, then a window of `window`.
    pub fn scale(
        &mut self,
        leases: usize,
        window: Duration,
        acquire_limit: Duration,
    ) -> Result<ScaleResult> {
        let mut r = ScaleResult {
            leases,
            lease_ms: u64::try_from(self.setup.lease.as_millis()).unwrap_or(u64::MAX),
            window_secs: window.as_secs_f64(),
            ..ScaleResult::default()
        };
        let started = Instant::now();
        self.start_all()?;
        let until = started + acquire_limit;
        let mut peak_during_acquire = [0u64; 3];
        let mut next_sample = started;
        while self.counts.acquired() < leases && Instant::now() < until {
            if Instant::now() >= next_sample {
                r.progress.push((
                    started.elapsed().as_secs_f64(),
                    self.counts.acquired(),
                    self.counts.lines.load(Ordering::Relaxed),
                ));
                next_sample += Duration::from_secs(5);
            }
            std::thread::sleep(Duration::from_millis(200));
            for (i, (_, pid)) in self.pids().iter().enumerate() {
                if let Some((_, hwm)) = rss_kib(*pid) {
                    peak_during_acquire[i] = peak_during_acquire[i].max(hwm);
                }
            }
            if self.nodes.values_mut().any(|p| !p.is_running()) {
                r.notes.push("a node exited while acquiring".into());
                break;
            }
        }
        r.acquired = self.counts.acquired();
        r.acquire_secs = started.elapsed().as_secs_f64();
        if r.acquired < leases {
            r.notes.push(format!(
                "only {} of {leases} leases were ever elected within {:.0} s",
                r.acquired,
                acquire_limit.as_secs_f64()
            ));
        }
        // One renewal cycle to let the start-up burst pass.
        std::thread::sleep(self.setup.lease / 2);
        let pids = self.pids();
        let procs: Vec<(String, String)> = pids
            .iter()
            .map(|(id, pid)| (format!("node {id}"), format!("/proc/{pid}/stat")))
            .chain(std::iter::once((
                "harness".to_string(),
                "/proc/self/stat".to_string(),
            )))
            .collect();
        let before = self.counts.snapshot();
        let udp_before = udp_out_datagrams();
        let cpu = CpuWindow::start(&procs);
        let t0 = Instant::now();
        let mut rss_max = vec![0u64; pids.len()];
        let mut per_sec: Vec<u64> = Vec::new();
        let mut last_renewed = before[1];
        while t0.elapsed() < window {
            std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(t0.elapsed())));
            for (i, (_, pid)) in pids.iter().enumerate() {
                if let Some((rss, _)) = rss_kib(*pid) {
                    rss_max[i] = rss_max[i].max(rss);
                }
            }
            let now_renewed = self.counts.renewed.load(Ordering::Relaxed);
            per_sec.push(now_renewed - last_renewed);
            last_renewed = now_renewed;
        }
        let secs = t0.elapsed().as_secs_f64();
        let after = self.counts.snapshot();
        let cpu = cpu.finish();
        r.window_secs = secs;
        r.elected_in_window = after[0] - before[0];
        r.renewed_per_sec = (after[1] - before[1]) as f64 / secs;
        r.lost_in_window = after[2] - before[2];
        r.other_surrenders = after[3] - before[3];
        r.renewals_per_sec_min = per_sec.iter().copied().min().unwrap_or(0);
        r.renewals_per_sec_max = per_sec.iter().copied().max().unwrap_or(0);
        r.udp_datagrams_per_sec = match (udp_before, udp_out_datagrams()) {
            (Some(b), Some(a)) if a >= b => Some((a - b) as f64 / secs),
            _ => None,
        };
        for (i, (id, pid)) in pids.iter().enumerate() {
            let (rss, hwm) = rss_kib(*pid).unwrap_or((0, 0));
            r.nodes.push(NodeUse {
                id: *id,
                cpu_pct: cpu.get(i).and_then(|c| c.1),
                rss_kib: rss_max[i].max(rss),
                hwm_kib: hwm.max(peak_during_acquire[i]),
            });
        }
        r.harness_cpu_pct = cpu.last().and_then(|c| c.1);
        r.status = self.status_masters(leases);
        r.unparsed = self.counts.unparsed.load(Ordering::Relaxed);
        self.stop_all();
        for id in 1..=3 {
            let text = std::fs::read_to_string(self.dir.join(format!("node-{id}.stderr")))
                .unwrap_or_default();
            let plain = strip_ansi(&text);
            let warnings: Vec<&str> = plain
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            if let Some(first) = warnings.first() {
                r.notes.push(format!(
                    "node {id} logged {} warnings/errors; the first: `{}`",
                    warnings.len(),
                    first.chars().take(300).collect::<String>()
                ));
            }
        }
        Ok(r)
    }

    /// `gen-paxos status --json` against node 1: how many leases have a master.
    fn status_masters(&self, leases: usize) -> String {
        let Some((_, addr)) = self.addrs.first() else {
            return "no node".into();
        };
        let out = Command::new(&self.setup.bin)
            .args([
                "status",
                "--json",
                "--timeout",
                "10s",
                "--peer",
                &format!("1={addr}"),
            ])
            .arg("--certs")
            .arg(&self.certs)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                match serde_json::from_slice::<serde_json::Value>(&o.stdout) {
                    Ok(v) => {
                        let list = v["leases"].as_array().cloned().unwrap_or_default();
                        let with = list.iter().filter(|l| !l["master"].is_null()).count();
                        format!("{with} of {leases} leases have a master in node 1's status")
                    }
                    Err(e) => format!("status output not JSON: {e}"),
                }
            }
            Ok(o) => format!(
                "status failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("status did not run: {e}"),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

#[derive(Debug, Clone)]
pub struct FailoverTrial {
    /// Kill to the next `elected`, ms.
    pub total: f64,
    /// Remaining acceptor exclusion at the kill instant, ms.
    pub floor: f64,
    /// How long before the kill the master last renewed, ms.
    pub since_accept: f64,
    pub killed: u64,
    pub winner: u64,
}

#[derive(Debug, Clone, Default)]
pub struct NodeUse {
    pub id: u64,
    pub cpu_pct: Option<f64>,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ScaleResult {
    pub leases: usize,
    /// The lease duration of this run.
    pub lease_ms: u64,
    pub acquired: usize,
    pub acquire_secs: f64,
    pub window_secs: f64,
    pub elected_in_window: u64,
    pub lost_in_window: u64,
    pub other_surrenders: u64,
    pub renewed_per_sec: f64,
    pub renewals_per_sec_min: u64,
    pub renewals_per_sec_max: u64,
    pub udp_datagrams_per_sec: Option<f64>,
    pub nodes: Vec<NodeUse>,
    pub harness_cpu_pct: Option<f64>,
    pub status: String,
    pub unparsed: u64,
    pub notes: Vec<String>,
    /// (seconds since start, leases elected at least once, event lines) while acquiring.
    pub progress: Vec<(f64, usize, u64)>,
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes the `--config` file listing `n` lease names.
pub fn lease_config(path: &Path, n: usize) -> Result<()> {
    let mut text = String::with_capacity(n * 12 + 16);
    text.push_str("leases = [\n");
    for i in 0..n {
        text.push_str(&format!("\"lease-{i:06}\",\n"));
    }
    text.push_str("]\n");
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
