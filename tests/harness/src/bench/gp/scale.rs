//! The scale run: many leases on the three nodes, what they cost, and whether every lease
//! stays held.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::super::util::{CpuWindow, rss_kib, udp_out_datagrams};
use super::Cluster;

impl Cluster {
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
        let mut next_held = started;
        // Every lease held by the nodes' own counts also ends the acquisition: a node's
        // line printer skips events when it falls behind ("event output fell behind"),
        // and a skipped `elected` line would otherwise keep the harness waiting for the
        // whole acquisition limit (it did once at 300,000 leases: 186 lines skipped).
        let all_held = |held: &[(f64, u64)]| held.last().is_some_and(|&(_, h)| h >= leases as u64);
        while self.counts.acquired() < leases && !all_held(&r.held) && Instant::now() < until {
            if Instant::now() >= next_held {
                self.sample_held(started, &mut r.held);
                next_held += Duration::from_secs(1);
            }
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
            let exited: Vec<(u64, String)> = self
                .nodes
                .iter_mut()
                .filter_map(|(&id, p)| p.exit_status().map(|s| (id, s.to_string())))
                .collect();
            if !exited.is_empty() {
                for (id, status) in exited {
                    let stderr =
                        std::fs::read_to_string(self.dir.join(format!("node-{id}.stderr")))
                            .unwrap_or_default();
                    let last = strip_ansi(stderr.lines().last().unwrap_or(""));
                    r.notes.push(format!(
                        "node {id} exited while acquiring ({status}); its last stderr line: `{}`",
                        last.chars().take(300).collect::<String>()
                    ));
                }
                break;
            }
        }
        r.acquired = self.counts.acquired();
        r.acquire_secs = started.elapsed().as_secs_f64();
        if r.acquired < leases && all_held(&r.held) {
            r.notes.push(format!(
                "all {leases} leases held by the nodes' metrics {:.1} s after start; {} \
                 `elected` lines seen (the nodes' printers skipped the rest)",
                r.acquire_secs, r.acquired
            ));
            r.acquired = leases;
        }
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
        let renewals = |c: &Self| -> Option<u64> {
            let mut sum = 0.0;
            for id in 1..=3 {
                sum += c.scrape(id)?.renewals;
            }
            Some(sum as u64)
        };
        // Renewals from the nodes' counters where they serve metrics (their `renewed`
        // lines are off), else from the lines.
        let metered = self.setup.metrics;
        let renewed_now = |c: &Self| {
            if metered {
                renewals(c).unwrap_or(0)
            } else {
                c.counts.renewed.load(Ordering::Relaxed)
            }
        };
        let renewed_before = renewed_now(self);
        let mut last_renewed = renewed_before;
        while t0.elapsed() < window {
            std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(t0.elapsed())));
            for (i, (_, pid)) in pids.iter().enumerate() {
                if let Some((rss, _)) = rss_kib(*pid) {
                    rss_max[i] = rss_max[i].max(rss);
                }
            }
            let now_renewed = renewed_now(self);
            per_sec.push(now_renewed.saturating_sub(last_renewed));
            last_renewed = now_renewed;
            self.sample_held(started, &mut r.held);
        }
        let secs = t0.elapsed().as_secs_f64();
        let after = self.counts.snapshot();
        let cpu = cpu.finish();
        r.window_secs = secs;
        r.elected_in_window = after[0] - before[0];
        r.renewed_per_sec = last_renewed.saturating_sub(renewed_before) as f64 / secs;
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

    /// Leases held across the cluster now (the sum of the nodes' `gen_paxos_leases_held`),
    /// appended to `held` with the seconds since `started`; nothing without metrics.
    fn sample_held(&self, started: Instant, held: &mut Vec<(f64, u64)>) {
        if !self.setup.metrics {
            return;
        }
        let sum: f64 = (1..=3)
            .filter_map(|id| self.scrape(id))
            .map(|f| f.held)
            .sum();
        held.push((started.elapsed().as_secs_f64(), sum as u64));
    }

    /// `gen-paxos status --summary --json` against node 1: how many leases have a master.
    fn status_masters(&self, leases: usize) -> String {
        let Some((_, addr)) = self.addrs.first() else {
            return "no node".into();
        };
        let out = Command::new(&self.setup.bin)
            .args([
                "status",
                "--summary",
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
            // Exit code 3: the node answered, some lease has no master.
            Ok(o) if matches!(o.status.code(), Some(0 | 3)) => {
                match serde_json::from_slice::<serde_json::Value>(&o.stdout) {
                    Ok(v) => format!(
                        "{} of {leases} leases have a master in node 1's status ({} joined there)",
                        v["with_master"], v["joined"]
                    ),
                    Err(e) => format!("status output not JSON: {e}"),
                }
            }
            Ok(o) => format!(
                "status failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("status did not run: {e}"),
        }
    }
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
    /// Protocol messages between processes per renewal: 6 in one round (P7), 10 in two
    /// (set by the caller, which knows how the nodes renew).
    pub messages_per_renewal: u32,
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
    /// (seconds since start, leases held across the cluster), about once a second from
    /// start to the end of the window (with metrics).
    pub held: Vec<(f64, u64)>,
}

impl ScaleResult {
    /// The busiest node's CPU over the window, % of one core (0 if none was read).
    pub fn max_cpu_pct(&self) -> f64 {
        self.nodes
            .iter()
            .filter_map(|n| n.cpu_pct)
            .fold(0.0, f64::max)
    }

    /// The largest node's RSS over the window, MiB.
    pub fn max_rss_mib(&self) -> f64 {
        self.nodes.iter().map(|n| n.rss_kib).max().unwrap_or(0) as f64 / 1024.0
    }

    /// CPU per renewal, all nodes together, in microseconds: the nodes' CPU over the
    /// window (cores) per renewal per second. None without renewals or without every
    /// node's CPU.
    pub fn cpu_us_per_renewal(&self) -> Option<f64> {
        if self.renewed_per_sec <= 0.0 || self.nodes.is_empty() {
            return None;
        }
        let pct: Option<f64> = self.nodes.iter().map(|n| n.cpu_pct).sum();
        Some(pct? / 100.0 / self.renewed_per_sec * 1e6)
    }

    /// The largest node's RSS divided by the leases it stands for, in bytes: an upper
    /// bound of the memory per lease (it includes what a node with no lease uses).
    pub fn rss_bytes_per_lease(&self) -> Option<f64> {
        (self.leases > 0 && !self.nodes.is_empty())
            .then(|| self.max_rss_mib() * 1024.0 * 1024.0 / self.leases as f64)
    }
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

/// How the scale runs' nodes renew and shed, for comparisons.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeOptions {
    /// Renew in two round trips (`two_round_renewals = true`).
    pub two_round_renewals: bool,
    /// Never shed load (`no_load_shedding = true`).
    pub no_load_shedding: bool,
    /// A `renewed` line per renewal: the config lists the leases only (older builds
    /// refuse any other key), so the two options above are ignored.
    pub renewal_lines: bool,
}

/// Writes the `--config` file listing `n` lease names, with `options`.
pub fn lease_config(path: &Path, n: usize, options: NodeOptions) -> Result<()> {
    let mut text = String::with_capacity(n * 12 + 16);
    // With `renewal_lines` the file lists the leases and nothing else (older builds refuse
    // any other key), whatever the other options say.
    if !options.renewal_lines {
        // A `renewed` line per renewal would cost the nodes (and the harness reading them)
        // more than the renewals; they are counted from /metrics instead.
        text.push_str("quiet_renewals = true\n");
        if options.two_round_renewals {
            text.push_str("two_round_renewals = true\n");
        }
        if options.no_load_shedding {
            text.push_str("no_load_shedding = true\n");
        }
    }
    text.push_str("leases = [\n");
    for i in 0..n {
        text.push_str(&format!("\"lease-{i:06}\",\n"));
    }
    text.push_str("]\n");
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, cpu_pct: Option<f64>, rss_kib: u64) -> NodeUse {
        NodeUse {
            id,
            cpu_pct,
            rss_kib,
            hwm_kib: rss_kib,
        }
    }

    #[test]
    fn cpu_per_renewal_sums_the_nodes_and_needs_every_one() {
        let mut s = ScaleResult {
            leases: 10_000,
            renewed_per_sec: 15_000.0,
            nodes: vec![
                node(1, Some(5.0), 65 * 1024),
                node(2, Some(5.5), 70 * 1024),
                node(3, Some(6.0), 66 * 1024),
            ],
            ..ScaleResult::default()
        };
        // 16.5% of a core for 15,000 renewals a second: 11 us each.
        let us = s.cpu_us_per_renewal().expect("every node has a CPU figure");
        assert!((us - 11.0).abs() < 1e-9, "{us}");
        // The largest node's RSS over the leases: 70 MiB / 10,000.
        let b = s.rss_bytes_per_lease().expect("leases and nodes");
        assert!((b - 70.0 * 1024.0 * 1024.0 / 10_000.0).abs() < 1e-6, "{b}");
        s.nodes[1].cpu_pct = None;
        assert_eq!(s.cpu_us_per_renewal(), None);
        s.nodes[1].cpu_pct = Some(5.5);
        s.renewed_per_sec = 0.0;
        assert_eq!(s.cpu_us_per_renewal(), None);
    }
}
