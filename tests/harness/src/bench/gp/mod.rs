//! gen-paxos with real processes: `gen-paxos node` ×3 over QUIC on loopback. Cold start,
//! failover after SIGKILL, graceful handover (resign on stdin, SIGTERM), and the scale run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::process::Signal;

mod events;
mod kv;
mod metrics;
mod scale;

pub use events::{Counts, Ev, Kind};
use events::{Log, Sink};
pub use kv::KvFailover;
pub use scale::{NodeOptions, NodeUse, ScaleResult, lease_config};

use super::util::{Proc, free_tcp_ports, free_udp_ports, random_wait, wall_ms};

/// Settings of a process cluster.
#[derive(Debug, Clone)]
pub struct Setup {
    pub bin: PathBuf,
    pub lease: Duration,
    pub priority: Option<u8>,
    /// A `--config` TOML (the scale runs list their leases there).
    pub config: Option<PathBuf>,
    /// Run the key-value store (`--kv`), each node with its data directory.
    pub kv: bool,
    /// Serve `/metrics` (`--metrics`) on a port of each node's own, read by
    /// [`Cluster::scrape`].
    pub metrics: bool,
    /// Each node's tokio worker threads (`TOKIO_WORKER_THREADS`); `None`: tokio's default,
    /// one per core.
    pub worker_threads: Option<usize>,
    /// Run each node under the real-time policy SCHED_FIFO at this priority (`chrt -f`,
    /// which execs the node, so its pid is the node's); `None`: the default policy.
    pub realtime: Option<u8>,
}

/// Three `gen-paxos node` processes.
#[derive(Debug)]
pub struct Cluster {
    setup: Setup,
    dir: PathBuf,
    certs: PathBuf,
    addrs: Vec<(u64, String)>,
    /// Each node's `/metrics` address, with [`Setup::metrics`].
    metrics: Vec<String>,
    nodes: BTreeMap<u64, Proc>,
    /// When each node was last started, and the same in wall-clock ms (the event lines'
    /// time base).
    started: BTreeMap<u64, (Instant, f64)>,
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
        let addrs: Vec<_> = (1..=3)
            .zip(free_udp_ports(3)?)
            .map(|(i, port)| (i, format!("127.0.0.1:{port}")))
            .collect();
        let metrics = if setup.metrics {
            free_tcp_ports(3)?
                .into_iter()
                .map(|port| format!("127.0.0.1:{port}"))
                .collect()
        } else {
            Vec::new()
        };
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
            metrics,
            nodes: BTreeMap::new(),
            started: BTreeMap::new(),
            sink,
            log,
            counts,
            restarts: 0,
        })
    }

    pub fn d_a(&self) -> Duration {
        gen_paxos_core::acceptor_duration(self.setup.lease, 0.001)
    }

    fn command(&self, id: u64) -> Command {
        let own = &self.addrs[(id - 1) as usize].1;
        let mut cmd = match self.setup.realtime {
            Some(priority) => {
                let mut chrt = Command::new("chrt");
                chrt.args(["-f", &priority.to_string()])
                    .arg(&self.setup.bin);
                chrt
            }
            None => Command::new(&self.setup.bin),
        };
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
        if let Some(addr) = self.metrics.get((id - 1) as usize) {
            cmd.args(["--metrics", addr]);
        }
        if let Some(n) = self.setup.worker_threads {
            cmd.env("TOKIO_WORKER_THREADS", n.to_string());
        }
        if self.setup.kv {
            let data = self.dir.join(format!("data-{id}"));
            if !data.exists() {
                cmd.arg("--init-data-dir");
            }
            cmd.arg("--kv").arg("--data-dir").arg(data);
        }
        cmd
    }

    /// Starts (or restarts) node `id`.
    pub fn start(&mut self, id: u64) -> Result<()> {
        if let Some(mut old) = self.nodes.remove(&id) {
            old.stop(Duration::from_secs(3));
        }
        self.restarts += 1;
        let start_ms = wall_ms();
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
        self.started.insert(id, (Instant::now(), start_ms));
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

    /// Waits until every node is out of its restart quarantine (plus a margin), a master
    /// has renewed or been elected recently, and every running node knows that master
    /// (its last `master` line since it started names it); returns the master and the
    /// time (ms) of its last elected/renewed event. Without the last condition a trial
    /// could begin before every node had joined: with a 20 ms lease and CPU-bound
    /// competitors a node once heard nothing from the master for the first 128 ms (its
    /// messages waited behind a dial sent before the node listened, since fixed in the
    /// transport), and the kill of the master then left the survivors unable to agree.
    fn settled_master(&self, limit: Duration) -> Result<(u64, f64)> {
        let ready = self
            .started
            .values()
            .map(|(s, _)| *s + self.d_a() + Duration::from_millis(100))
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
                && self.all_know(ev.node)
            {
                return Ok((ev.node, ev.ts));
            }
            if Instant::now() >= until {
                bail!("no master renewed and known to every node within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether every running node's last `master` line since its start names `master`.
    fn all_know(&self, master: u64) -> bool {
        self.nodes.keys().all(|&id| {
            let since = self.started.get(&id).map_or(0.0, |&(_, ms)| ms);
            self.log
                .last(|e| e.node == id && matches!(e.kind, Kind::Master(_)) && e.ts >= since)
                .is_some_and(|e| e.kind == Kind::Master(Some(master)))
        })
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

    /// `elected` lines between two wall-clock times (ms): master changes.
    pub fn elections_between(&self, from: f64, to: f64) -> usize {
        self.log
            .count(|e| e.kind == Kind::Elected && e.ts >= from && e.ts <= to)
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
    pub fn failover(&mut self, rng: &mut fastrand::Rng) -> Result<FailoverTrial> {
        self.settled_master(Duration::from_secs(5))?;
        std::thread::sleep(random_wait(rng, self.setup.lease / 3));
        let (master, _) = self.settled_master(Duration::from_secs(5))?;
        let proc = self.nodes.get_mut(&master).context("master not running")?;
        let kill_ms = proc.signal(Signal::KILL)?;
        proc.wait_exit(Duration::from_secs(5));
        proc.drain(Duration::from_secs(2));
        let last = self
            .last_accept(master, kill_ms)
            .context("the master's last renewal is unknown")?;
        // Restart the dead node at once, as a supervisor would; it is silent for its
        // quarantine, so the two survivors should decide the failover. Should: if they
        // cannot (it happened at a 20 ms lease while two survivors could not reach each
        // other), the restarted node wins once its quarantine is over, and the lease has
        // a master again all the same, so the next `elected` of any node ends the trial
        // (the trial table names the winner) rather than dropping it.
        self.start(master)?;
        let d_a = self.d_a().as_secs_f64() * 1000.0;
        let ev = self
            .log
            .wait_for(Duration::from_secs(10), |e| {
                e.kind == Kind::Elected && e.ts > kill_ms
            })
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
    pub fn resign(&mut self, rng: &mut fastrand::Rng) -> Result<f64> {
        self.settled_master(Duration::from_secs(5))?;
        std::thread::sleep(random_wait(rng, self.setup.lease / 3));
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
    pub fn sigterm(&mut self, rng: &mut fastrand::Rng) -> Result<f64> {
        self.settled_master(Duration::from_secs(5))?;
        std::thread::sleep(random_wait(rng, self.setup.lease / 3));
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
