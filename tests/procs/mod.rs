//! Real `gen-paxos node` processes for end-to-end tests: spawn, collect their JSON event
//! lines and stderr, rebuild each node's authority intervals and check they never
//! overlap.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gen_paxos::election::{EventLine, LineEvent};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_gen-paxos");

/// Held for the whole of a test that runs node processes: one such test at a time per
/// test binary, so their timing does not depend on how many others share the 2 cores.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fresh directory under the system's temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gen-paxos-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `gen-paxos certs --nodes <nodes> --out <dir>`.
pub fn make_certs(dir: &Path, nodes: &str) {
    let out = Command::new(BIN)
        .args(["certs", "--nodes", nodes, "--out"])
        .arg(dir)
        .output()
        .expect("run certs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free UDP address on 127.0.0.1.
pub fn free_addr() -> String {
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    format!("127.0.0.1:{port}")
}

/// One running node process.
pub struct Proc {
    pub id: u64,
    pub addr: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Event lines with the time (ms since the Unix epoch) each was read.
    lines: Arc<Mutex<Vec<EventLine>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    pub started: Instant,
}

impl Proc {
    /// Starts `gen-paxos node --id <id> --listen <addr> --certs <certs> <args...>`.
    pub fn start(id: u64, addr: &str, certs: &Path, args: &[String]) -> Proc {
        Self::spawn(Command::new(BIN), id, addr, certs, args)
    }

    /// Like [`Proc::start`], inside network namespace `netns` (`ip netns exec`, which also
    /// mounts the files of `/etc/netns/<netns>/` over `/etc`, e.g. its own `hosts`).
    pub fn start_in_netns(netns: &str, id: u64, addr: &str, certs: &Path, args: &[String]) -> Proc {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns, BIN]);
        Self::spawn(command, id, addr, certs, args)
    }

    fn spawn(mut command: Command, id: u64, addr: &str, certs: &Path, args: &[String]) -> Proc {
        let mut child = command
            .args(["node", "--id", &id.to_string(), "--listen", addr])
            .args(["--stdin-commands", "--certs"])
            .arg(certs)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (out, sink) = (child.stdout.take().expect("stdout"), lines.clone());
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<EventLine>(&line) {
                    sink.lock().expect("lock").push(v);
                }
            }
        });
        let (err, sink) = (child.stderr.take().expect("stderr"), stderr.clone());
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        Proc {
            id,
            addr: addr.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn events(&self, kind: &str) -> Vec<EventLine> {
        let lines = self.lines.lock().expect("lock");
        lines
            .iter()
            .filter(|v| v.event.kind() == kind)
            .cloned()
            .collect()
    }

    pub fn all_events(&self) -> Vec<EventLine> {
        self.lines.lock().expect("lock").clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").join("\n")
    }

    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn command(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The latest `master` event's master, if the node has learned one.
    pub fn known_master(&self) -> Option<u64> {
        self.events("master").last().and_then(|v| match v.event {
            LineEvent::Master { master, .. } => master,
            _ => None,
        })
    }

    /// Whether this node currently claims the lease (its last elected/renewed is not
    /// followed by a surrender and its deadline is in the future).
    pub fn holds(&self) -> bool {
        let mut holding = false;
        for v in self.all_events() {
            match v.event {
                LineEvent::Elected { .. } | LineEvent::Renewed { .. } => holding = true,
                LineEvent::Surrendered { .. } => holding = false,
                LineEvent::Master { .. } | LineEvent::Ready { .. } => {}
            }
        }
        holding
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `--peer ID=ADDR` (or `--observer-peer`) arguments.
pub fn peer_args(flag: &str, peers: &[(u64, &str)]) -> Vec<String> {
    peers
        .iter()
        .flat_map(|(id, addr)| [flag.to_string(), format!("{id}={addr}")])
        .collect()
}

/// Each node's authority intervals in Unix milliseconds: from an `elected` line to the
/// earlier of its `surrendered` line and the last deadline it announced.
pub fn intervals(p: &Proc) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut current: Option<(f64, f64)> = None;
    for v in p.all_events() {
        let ts = v.ts_ms;
        match v.event {
            LineEvent::Elected { deadline_ms, .. } | LineEvent::Renewed { deadline_ms, .. } => {
                let deadline = deadline_ms;
                current = Some(match current {
                    Some((start, _)) => (start, deadline),
                    None => (ts, deadline),
                });
            }
            LineEvent::Surrendered { .. } => {
                if let Some((start, end)) = current.take() {
                    out.push((start, end.min(ts)));
                }
            }
            LineEvent::Master { .. } | LineEvent::Ready { .. } => {}
        }
    }
    out.extend(current);
    out
}

/// Every pair of overlapping authority intervals of different nodes.
pub fn overlaps(procs: &[&Proc]) -> Vec<String> {
    let all: Vec<(u64, (f64, f64))> = procs
        .iter()
        .flat_map(|p| intervals(p).into_iter().map(move |i| (p.id, i)))
        .collect();
    let mut found = Vec::new();
    for (i, (a, (a0, a1))) in all.iter().enumerate() {
        for (b, (b0, b1)) in &all[i + 1..] {
            if a != b && a0 < b1 && b0 < a1 {
                found.push(format!(
                    "node {a} [{a0:.1}, {a1:.1}] overlaps node {b} [{b0:.1}, {b1:.1}]"
                ));
            }
        }
    }
    found
}

/// Polls `done` every 20 ms; false after `limit`.
pub fn within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// `gen-paxos status --json` against `p`.
pub fn status(certs: &Path, p: &Proc) -> Option<Value> {
    let out = Command::new(BIN)
        .args([
            "status",
            "--json",
            "--peer",
            &format!("{}={}", p.id, p.addr),
            "--certs",
        ])
        .arg(certs)
        .output()
        .ok()?;
    // Exit 0: a master is known; 3: the node answered but knows none.
    matches!(out.status.code(), Some(0 | 3))
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}
