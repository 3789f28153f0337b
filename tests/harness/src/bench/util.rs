//! Process guards, /proc sampling, summaries and small helpers shared by the sections.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use rustix::process::{Pid, Signal, kill_process};

/// Unix time in milliseconds (the clock `gen-paxos node` stamps its event lines with).
pub fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// A child process that is killed (SIGKILL) and reaped when dropped, with a thread that
/// hands each stdout line, stamped with the wall clock at reading, to a callback.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    reader: Option<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with stdout piped to `on_line`, stderr appended to `stderr_to` (or
    /// discarded), and stdin piped if `with_stdin`.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        with_stdin: bool,
        stderr_to: Option<&Path>,
        mut on_line: impl FnMut(f64, &str) + Send + 'static,
    ) -> Result<Proc> {
        let stderr = match stderr_to {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?,
            ),
            None => Stdio::null(),
        };
        cmd.stdout(Stdio::piped())
            .stderr(stderr)
            .stdin(if with_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let stdin = child.stdin.take();
        let reader = std::thread::Builder::new()
            .name(format!("read-{name}"))
            .spawn(move || {
                let mut reader = BufReader::with_capacity(1 << 16, stdout);
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => on_line(wall_ms(), line.trim_end()),
                    }
                }
            })
            .context("cannot start a reader thread")?;
        Ok(Proc {
            name: name.to_string(),
            child,
            stdin,
            reader: Some(reader),
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal`; returns the wall-clock instant (ms) read just before the system call.
    pub fn signal(&self, signal: Signal) -> Result<f64> {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(Pid::from_raw)
            .context("bad pid")?;
        let at = wall_ms();
        kill_process(pid, signal).with_context(|| format!("cannot signal {}", self.name))?;
        Ok(at)
    }

    /// Writes one line to the child's stdin; returns the wall-clock instant (ms) read just
    /// before the write.
    pub fn send_line(&mut self, line: &str) -> Result<f64> {
        let stdin = self.stdin.as_mut().context("no stdin pipe")?;
        let text = format!("{line}\n");
        let at = wall_ms();
        stdin.write_all(text.as_bytes())?;
        stdin.flush()?;
        Ok(at)
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return self.exited;
        }
        let until = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                return self.exited;
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits (bounded) until every stdout line has been handed over (EOF).
    pub fn drain(&mut self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.reader.as_ref().is_some_and(|r| !r.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(r) = self.reader.take_if(|r| r.is_finished()) {
            let _ = r.join();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.exited.is_none() {
            let _ = self.signal(Signal::TERM);
        }
        if let Some(status) = self.wait_exit(grace) {
            return Some(status);
        }
        let _ = self.child.kill();
        self.wait_exit(Duration::from_secs(5))
    }

    pub fn is_running(&mut self) -> bool {
        self.exited.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// How the process ended, if it has.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.exited.or_else(|| self.child.try_wait().ok().flatten())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        self.drain(Duration::from_millis(500));
    }
}

/// `n` distinct free UDP ports on 127.0.0.1, released again for the children to take soon
/// after. Each socket is held until all are chosen, so the system cannot hand the same
/// port out twice (a node that cannot bind its port exits, and two nodes on one metrics
/// port would be counted twice).
pub fn free_udp_ports(n: usize) -> Result<Vec<u16>> {
    free_ports(n, || UdpSocket::bind("127.0.0.1:0"), UdpSocket::local_addr)
}

/// `n` distinct free TCP ports on 127.0.0.1 (see [`free_udp_ports`]).
pub fn free_tcp_ports(n: usize) -> Result<Vec<u16>> {
    free_ports(
        n,
        || TcpListener::bind("127.0.0.1:0"),
        TcpListener::local_addr,
    )
}

fn free_ports<S>(
    n: usize,
    bind: impl Fn() -> std::io::Result<S>,
    addr: impl Fn(&S) -> std::io::Result<std::net::SocketAddr>,
) -> Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| bind())
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(held
        .iter()
        .map(|s| addr(s).map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()?)
}

/// utime + stime of a process (or thread: `/proc/thread-self`) in clock ticks.
pub fn cpu_ticks(stat_path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(stat_path).ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 is the state; utime and stime are fields 14 and 15 of the full line.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// (VmRSS, VmHWM) of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU use of a set of processes over a window.
#[derive(Debug)]
pub struct CpuWindow {
    start: Instant,
    ticks: Vec<(String, String, Option<u64>)>,
}

impl CpuWindow {
    /// Starts measuring the processes `(label, /proc/<pid>/stat path)`.
    pub fn start(procs: &[(String, String)]) -> CpuWindow {
        CpuWindow {
            start: Instant::now(),
            ticks: procs
                .iter()
                .map(|(label, path)| (label.clone(), path.clone(), cpu_ticks(path)))
                .collect(),
        }
    }

    /// Percent of one core per process since the start.
    pub fn finish(&self) -> Vec<(String, Option<f64>)> {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let hz = ticks_per_second();
        self.ticks
            .iter()
            .map(|(label, path, before)| {
                let pct = match (before, cpu_ticks(path)) {
                    (Some(b), Some(a)) if a >= *b => Some((a - b) as f64 / hz / secs * 100.0),
                    _ => None,
                };
                (label.clone(), pct)
            })
            .collect()
    }
}

/// `/proc/loadavg`'s first three fields.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Loopback-wide UDP datagrams sent so far (`/proc/net/snmp`, this network namespace).
pub fn udp_out_datagrams() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let i = names.iter().position(|n| *n == "OutDatagrams")?;
    values.get(i)?.parse().ok()
}

/// min / median / p90 / p99 / max (nearest rank) and mean of a sample.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

pub fn summarize(values: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let k = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[k.clamp(1, v.len()) - 1]
    };
    Some(Summary {
        n: v.len(),
        min: v[0],
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        max: v[v.len() - 1],
    })
}

/// A random wait in `[0, max)`, for the random phase of the kills.
pub fn random_wait(rng: &mut fastrand::Rng, max: Duration) -> Duration {
    max.mul_f64(rng.f64())
}

/// A minimal HTTP/1.1 client for etcd's JSON gateway: one connection per request,
/// `Connection: close`, chunked or sized bodies. The body is written from a second thread so
/// a streaming answer cannot dead-lock against a large request.
pub fn http(addr: &str, method: &str, path: &str, body: &[u8], limit: Duration) -> Result<Vec<u8>> {
    let stream = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    stream.set_nodelay(true)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut writer = stream.try_clone()?;
    let payload = [head.as_bytes(), body].concat();
    let sender = std::thread::spawn(move || writer.write_all(&payload));
    let mut raw = Vec::new();
    let mut reader = stream;
    reader
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to {path}"))?;
    sender
        .join()
        .map_err(|_| anyhow!("writer thread panicked"))?
        .with_context(|| format!("sending {path}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header end")?;
    let header = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = header
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .context("no HTTP status")?;
    let mut content = raw[split + 4..].to_vec();
    if header.contains("transfer-encoding: chunked") {
        content = dechunk(&content)?;
    }
    if status != 200 {
        bail!(
            "{path}: HTTP {status}: {}",
            String::from_utf8_lossy(&content)
        );
    }
    Ok(content)
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk header")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            // Truncated stream: keep what arrived.
            out.extend_from_slice(data);
            return Ok(out);
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
}

/// Runs a short command and returns its trimmed stdout, or `None`.
pub fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
