//! The cluster of real `gen-paxos node` processes: start, kill, restart, pause, skew,
//! partition, and the event lines each one prints.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::checker::{History, check};
use super::events::Ev;
use super::netns::{Netns, partition_shape};
use super::summary::{Outcome, summary};
use super::timeline::timeline_svg;
use super::workload::{Shared, Store, writer};
use super::{Fault, RHO, Token, lock, now_ms};

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Options {
    pub bin: PathBuf,
    pub nodes: usize,
    pub lease_ms: u64,
    /// Per node (index `id - 1`): a clock rate for `--clock-rate-for-tests`, if any.
    pub rates: Vec<Option<f64>>,
    /// Per node: `--priority`.
    pub priorities: Vec<u8>,
    pub out: PathBuf,
    /// Run the nodes in network namespaces (needed for partitions).
    pub netns: bool,
    /// Run `gen-paxos run ... -- sh -c SCRIPT` instead of `gen-paxos node`; the script
    /// finds the file `commands.log` of the run directory in `$GEN_PAXOS_BEATS`.
    pub run: Option<String>,
}

impl Options {
    /// `D_A = D_P (1 + rho) / (1 - rho)`, and `Q = D_A`.
    pub fn acceptor_ms(&self) -> f64 {
        self.lease_ms as f64 * (1.0 + RHO) / (1.0 - RHO)
    }
    /// A master must exist again this long after a healed fault: `Q + D_A + 1 s`, generous
    /// against the README's "about D_A plus a few message delays" for a crash and the
    /// simulator's `Q + D_A + ...` after healing.
    pub fn recovery_bound_ms(&self) -> f64 {
        2.0 * self.acceptor_ms() + 1000.0
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct NodeState {
    pub(crate) run: u32,
    pub(crate) alive: bool,
    /// Latest token and deadline while master, per the node's own lines.
    pub(crate) holding: Option<(Token, f64)>,
}

#[derive(Debug)]
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: Option<JoinHandle<()>>,
}

/// A running cluster; dropping it kills every process, then removes the namespaces.
#[derive(Debug)]
pub struct Cluster {
    pub opts: Options,
    certs: PathBuf,
    procs: Vec<Option<Proc>>,
    runs: Vec<u32>,
    shared: Arc<Shared>,
    writers: Vec<JoinHandle<()>>,
    pub net: Option<Netns>,
    pub faults: Vec<Fault>,
    pub t0: f64,
    ports: Vec<u16>,
    log: Vec<String>,
}

impl Cluster {
    /// Makes certificates, the namespaces if asked, and starts every node and writer.
    pub fn start(opts: Options) -> Result<Cluster, String> {
        std::fs::create_dir_all(&opts.out).map_err(|e| e.to_string())?;
        let certs = opts.out.join("certs");
        let ids: Vec<String> = (1..=opts.nodes).map(|i| i.to_string()).collect();
        let made = Command::new(&opts.bin)
            .args(["certs", "--nodes", &ids.join(","), "--out"])
            .arg(&certs)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", opts.bin.display()))?;
        if !made.status.success() {
            return Err(format!(
                "certs failed: {}",
                String::from_utf8_lossy(&made.stderr)
            ));
        }
        let net = if opts.netns {
            Some(Netns::create(opts.nodes)?)
        } else {
            None
        };
        let store_file = File::create(opts.out.join("store.log")).map_err(|e| e.to_string())?;
        let raw = File::create(opts.out.join("events.jsonl")).map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            margin_ms: opts.lease_ms as f64 * 0.05,
            states: (0..opts.nodes).map(|_| Mutex::default()).collect(),
            paused: (0..opts.nodes).map(|_| AtomicBool::new(false)).collect(),
            zombie: (0..opts.nodes).map(|_| Mutex::new(None)).collect(),
            stop: AtomicBool::new(false),
            store: Mutex::new(Store {
                file: Some(store_file),
                ..Store::default()
            }),
            writes: Mutex::default(),
            events: Mutex::default(),
            raw: Mutex::new(Some(raw)),
        });
        let mut c = Cluster {
            procs: (0..opts.nodes).map(|_| None).collect(),
            runs: vec![0; opts.nodes],
            opts,
            certs,
            shared,
            writers: Vec::new(),
            net,
            faults: Vec::new(),
            t0: now_ms(),
            ports: Vec::new(),
            log: Vec::new(),
        };
        let ports: Vec<u16> = if c.net.is_some() {
            vec![7000; c.opts.nodes]
        } else {
            (0..c.opts.nodes).map(|_| free_port()).collect()
        };
        c.ports = ports;
        for id in 1..=c.opts.nodes as u64 {
            c.spawn(id)?;
        }
        for id in 1..=c.opts.nodes as u64 {
            let shared = c.shared.clone();
            c.writers.push(thread::spawn(move || writer(shared, id)));
        }
        Ok(c)
    }
}

impl Cluster {
    fn addr(&self, id: u64) -> String {
        let port = self.ports[id as usize - 1];
        if self.net.is_some() {
            format!("{}:{port}", Netns::ip(id))
        } else {
            format!("127.0.0.1:{port}")
        }
    }

    pub(crate) fn note(&mut self, line: String) {
        let t = (now_ms() - self.t0) / 1000.0;
        let line = format!("[{t:7.2}s] {line}");
        println!("{line}");
        self.log.push(line);
    }

    /// Starts node `id` (again), as a new run.
    fn spawn(&mut self, id: u64) -> Result<(), String> {
        let idx = id as usize - 1;
        let run = self.runs[idx];
        let mut cmd = match &self.net {
            Some(net) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &net.ns(id)]).arg(&self.opts.bin);
                c
            }
            None => Command::new(&self.opts.bin),
        };
        cmd.args([
            if self.opts.run.is_some() {
                "run"
            } else {
                "node"
            },
            "--id",
            &id.to_string(),
            "--listen",
            &self.addr(id),
            "--lease-duration",
            &format!("{}ms", self.opts.lease_ms),
            // The harness resigns masters by a line on stdin.
            "--stdin-commands",
            "--certs",
        ])
        .arg(&self.certs);
        // The node's own default priority unless the run sets one.
        if let Some(p) = self.opts.priorities.get(idx) {
            cmd.args(["--priority", &p.to_string()]);
        }
        for peer in (1..=self.opts.nodes as u64).filter(|&p| p != id) {
            cmd.args(["--peer", &format!("{peer}={}", self.addr(peer))]);
        }
        if let Some(rate) = self.opts.rates.get(idx).copied().flatten() {
            cmd.args(["--clock-rate-for-tests", &rate.to_string()]);
        }
        if let Some(script) = &self.opts.run {
            cmd.env("GEN_PAXOS_BEATS", self.opts.out.join("commands.log"))
                .args(["--", "sh", "-c", script]);
        }
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(self.opts.out.join(format!("node-{id}.stderr")))
            .map_err(|e| e.to_string())?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot start node {id}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stdin = child.stdin.take();
        {
            let mut st = self.shared.state(id);
            *st = NodeState {
                run,
                alive: true,
                holding: None,
            };
        }
        let shared = self.shared.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Some(ev) = Ev::parse(run, &line) else {
                    continue;
                };
                {
                    let mut st = shared.state(id);
                    if st.run == run {
                        match ev.kind.as_str() {
                            "elected" | "renewed" => {
                                if let (Some(t), Some(d)) = (ev.token, ev.deadline) {
                                    st.holding = Some((t, d));
                                }
                            }
                            "surrendered" => st.holding = None,
                            _ => {}
                        }
                    }
                }
                if let Some(f) = lock(&shared.raw).as_mut() {
                    let _ = writeln!(f, "{{\"run\":{run},\"line\":{line}}}");
                }
                lock(&shared.events).push(ev);
            }
            let mut st = shared.state(id);
            if st.run == run {
                st.alive = false;
                st.holding = None;
            }
        });
        self.procs[idx] = Some(Proc {
            child,
            stdin,
            reader: Some(reader),
        });
        Ok(())
    }

    fn pid(&self, id: u64) -> Option<rustix::process::Pid> {
        let p = self.procs[id as usize - 1].as_ref()?;
        rustix::process::Pid::from_raw(i32::try_from(p.child.id()).ok()?)
    }

    fn signal(&self, id: u64, sig: rustix::process::Signal) {
        if let Some(pid) = self.pid(id) {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    /// The node that holds the lease now, per the nodes' own lines (the newest token if
    /// two lines overlap in flight).
    pub fn master(&self) -> Option<u64> {
        let now = now_ms();
        (1..=self.opts.nodes as u64)
            .filter(|&id| !self.shared.paused[id as usize - 1].load(Ordering::Relaxed))
            .filter_map(|id| {
                let st = self.shared.state(id);
                let (t, d) = st.holding?;
                (st.alive && d > now).then_some((t, id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Waits (bounded) for a master.
    pub fn wait_master(&self, limit: Duration) -> Option<u64> {
        let start = Instant::now();
        loop {
            if let Some(m) = self.master() {
                return Some(m);
            }
            if start.elapsed() > limit {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn alive(&self) -> Vec<u64> {
        (1..=self.opts.nodes as u64)
            .filter(|&id| self.shared.state(id).alive)
            .collect()
    }

    /// SIGKILL node `id`.
    pub fn kill(&mut self, id: u64) {
        let idx = id as usize - 1;
        if let Some(mut p) = self.procs[idx].take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
            if let Some(r) = p.reader.take() {
                let _ = r.join();
            }
        }
        let mut st = self.shared.state(id);
        st.alive = false;
        st.holding = None;
    }

    /// Starts a killed node again (a new process, a new incarnation).
    pub fn restart(&mut self, id: u64) -> Result<(), String> {
        self.runs[id as usize - 1] += 1;
        self.spawn(id)
    }

    /// Writes `line` to node `id`'s stdin (e.g. `resign`).
    pub fn say(&mut self, id: u64, line: &str) {
        if let Some(Some(p)) = self.procs.get_mut(id as usize - 1)
            && let Some(stdin) = &mut p.stdin
        {
            let _ = writeln!(stdin, "{line}");
        }
    }

    // ---- faults ---------------------------------------------------------------------------

    /// SIGKILL, `down_ms` dead, restart.
    pub fn fault_kill(&mut self, id: u64, down_ms: u64) -> Result<(), String> {
        self.stop_and_restart("kill", "SIGKILL", id, down_ms, Self::kill)
    }

    /// SIGTERM (the node releases its leases and exits), `down_ms` later a restart.
    pub fn fault_term(&mut self, id: u64, down_ms: u64) -> Result<(), String> {
        self.stop_and_restart("term", "SIGTERM", id, down_ms, |c, id| {
            c.signal(id, rustix::process::Signal::TERM);
            let idx = id as usize - 1;
            if let Some(mut p) = c.procs[idx].take() {
                let _ = p.child.wait();
                if let Some(r) = p.reader.take() {
                    let _ = r.join();
                }
            }
            let mut st = c.shared.state(id);
            st.alive = false;
            st.holding = None;
        })
    }

    /// Stops node `id` with `stop`, waits `down_ms`, restarts it, and records the fault.
    fn stop_and_restart(
        &mut self,
        kind: &'static str,
        signal: &str,
        id: u64,
        down_ms: u64,
        stop: impl FnOnce(&mut Self, u64),
    ) -> Result<(), String> {
        let was = if self.master() == Some(id) {
            " (master)"
        } else {
            ""
        };
        let desc = format!("{signal} node {id}{was}, restart after {down_ms} ms");
        self.note(format!("fault: {desc}"));
        let start = now_ms();
        stop(self, id);
        thread::sleep(Duration::from_millis(down_ms));
        self.restart(id)?;
        self.faults.push(Fault {
            kind,
            desc,
            nodes: vec![id],
            start,
            end: now_ms(),
            recover_from: Some(start),
        });
        Ok(())
    }

    /// SIGSTOP for `ms`, then SIGCONT. If the node was master, its writer is frozen
    /// between its lease check and its write.
    pub fn fault_pause(&mut self, id: u64, ms: u64) {
        let was_master = self.master() == Some(id);
        let desc = format!(
            "SIGSTOP node {id}{} for {ms} ms ({:.1}x lease)",
            if was_master { " (master)" } else { "" },
            ms as f64 / self.opts.lease_ms as f64
        );
        self.note(format!("fault: {desc}"));
        let idx = id as usize - 1;
        let start = now_ms();
        self.signal(id, rustix::process::Signal::STOP);
        self.shared.paused[idx].store(true, Ordering::Relaxed);
        if was_master {
            let holding = self.shared.state(id).holding;
            *lock(&self.shared.zombie[idx]) = holding.map(|(t, _)| t);
        }
        thread::sleep(Duration::from_millis(ms));
        self.signal(id, rustix::process::Signal::CONT);
        self.shared.paused[idx].store(false, Ordering::Relaxed);
        self.faults.push(Fault {
            kind: "pause",
            desc,
            nodes: vec![id],
            start,
            end: now_ms(),
            recover_from: Some(start),
        });
    }

    /// A partition of shape `shape` (see [`partition_shape`]) around `target` for `ms`.
    pub fn fault_partition(
        &mut self,
        shape: usize,
        target: u64,
        ms: u64,
        rng: &mut fastrand::Rng,
    ) -> Result<(), String> {
        let n = self.opts.nodes as u64;
        let (cuts, what) = partition_shape(shape, target, n, rng);
        let was = if self.master() == Some(target) {
            " (target is master)"
        } else {
            ""
        };
        let desc = format!("partition for {ms} ms: {what}{was}");
        self.note(format!("fault: {desc}"));
        let net = self.net.as_ref().ok_or("no network namespaces")?;
        let start = now_ms();
        net.set_cuts(&cuts)?;
        thread::sleep(Duration::from_millis(ms));
        net.set_cuts(&[])?;
        let end = now_ms();
        self.faults.push(Fault {
            kind: "partition",
            desc,
            nodes: (1..=n).collect(),
            start,
            end,
            recover_from: Some(end),
        });
        Ok(())
    }

    /// Records a fault that lasts the whole run (clock-rate skew).
    pub fn note_fault(&mut self, kind: &'static str, desc: String) {
        self.note(format!("fault: {desc}"));
        self.faults.push(Fault {
            kind,
            desc,
            nodes: vec![],
            start: self.t0,
            end: self.t0,
            recover_from: None,
        });
    }

    /// Waits for a master after a fault, then lets the cluster settle for `settle_ms`.
    pub fn recover(&mut self, settle_ms: u64) {
        let bound = Duration::from_millis(self.opts.recovery_bound_ms() as u64 + 2000);
        match self.wait_master(bound) {
            Some(m) => self.note(format!("master: node {m}")),
            None => {
                self.note("no master seen within the bound (the checker will report it)".into())
            }
        }
        thread::sleep(Duration::from_millis(settle_ms));
    }

    /// Ends the run: takes the final state, stops writers and nodes (SIGTERM), checks the
    /// history and writes `summary.txt`, `timeline.svg`, `events.jsonl`, `store.log` to
    /// the output directory.
    pub fn finish(mut self, title: &str) -> Outcome {
        thread::sleep(Duration::from_millis(self.opts.acceptor_ms() as u64 + 1000));
        let end = now_ms();
        let alive = self.alive();
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in self.writers.drain(..) {
            let _ = w.join();
        }
        for id in 1..=self.opts.nodes as u64 {
            self.signal(id, rustix::process::Signal::CONT);
            self.signal(id, rustix::process::Signal::TERM);
        }
        for id in 1..=self.opts.nodes as u64 {
            if let Some(mut p) = self.procs[id as usize - 1].take() {
                let t = Instant::now();
                while p.child.try_wait().ok().flatten().is_none()
                    && t.elapsed() < Duration::from_secs(5)
                {
                    thread::sleep(Duration::from_millis(20));
                }
                let _ = p.child.kill();
                let _ = p.child.wait();
                if let Some(r) = p.reader.take() {
                    let _ = r.join();
                }
            }
        }
        let t1 = now_ms();
        let events = lock(&self.shared.events).clone();
        let writes = lock(&self.shared.writes).clone();
        // The store's log as written to its file, read back.
        lock(&self.shared.store).file = None;
        let store_log: Vec<(u64, Token, u64)> =
            std::fs::read_to_string(self.opts.out.join("store.log"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let v: Vec<u64> = l
                        .split_whitespace()
                        .filter_map(|w| w.parse().ok())
                        .collect();
                    (v.len() == 5).then(|| (v[0], [v[1], v[2], v[3]], v[4]))
                })
                .collect();
        let report = check(&History {
            events: &events,
            faults: &self.faults,
            writes: &writes,
            store_log: &store_log,
            end,
            alive_at_end: &alive,
            recovery_bound_ms: self.opts.recovery_bound_ms(),
        });
        let nodes: Vec<u64> = (1..=self.opts.nodes as u64).collect();
        let svg = timeline_svg(title, &nodes, &self.faults, &report, &writes, self.t0, t1);
        let svg_path = self.opts.out.join("timeline.svg");
        let _ = std::fs::write(&svg_path, svg);
        let summary = summary(title, &self.faults, &report, &self.log, &events, self.t0);
        let _ = std::fs::write(self.opts.out.join("summary.txt"), &summary);
        Outcome {
            report,
            summary,
            svg: svg_path,
            faults: self.faults.clone(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for p in self.procs.iter_mut().filter_map(Option::take) {
            let mut p = p;
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        for w in self.writers.drain(..) {
            let _ = w.join();
        }
        // `net` drops after this: the namespaces go once their processes are gone.
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
