//! Fault tests with real processes: a cluster of `gen-paxos node` processes, faults injected
//! on a schedule (SIGKILL and restart, SIGSTOP/SIGCONT pauses, network partitions in network
//! namespaces with `nft` rules, clock-rate skew through the hidden `--clock-rate-for-tests`
//! option), a fenced workload, a checker over every event line, and a timeline picture.
//!
//! Shared by `tests/fault_injection.rs` (the short CI run and the checker's own tests) and
//! `examples/faults.rs` (the soak).
//!
//! **The fenced workload** is an honest approximation, documented here: the node tool only
//! prints events, so each node has a *writer thread in the harness* that plays that node's
//! application. It reads only its own node's event stream (the latest `elected`/`renewed`
//! token and `deadline_ms`, cleared by `surrendered`) and, while that says "master" and the
//! wall clock is more than the surrender margin before the deadline, appends to a shared
//! append-only store with that token. The store rejects a token older than the newest it has
//! accepted (the fencing check). When the harness pauses a node, its writer freezes too; if
//! it was master at that moment it is frozen *between its lease check and its write* and
//! makes that write with the old token when it resumes (the classic GC-pause zombie). A
//! killed node's writer stops at once. The store logs every accepted write to a file; the
//! checker re-reads it: tokens must never go down (no stale write accepted) and every write
//! acknowledged to a writer must be there (no lost write).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// A fencing token, `(counter, incarnation, node)`, compared lexicographically.
pub type Token = [u64; 3];

/// The `rho` every node runs with (the default of `gen_paxos_election::Config`).
pub const RHO: f64 = 0.001;

/// Wall clock in Unix milliseconds, the same clock the nodes print.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A small deterministic PRNG (splitmix64): the schedule is reproducible from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---- events ---------------------------------------------------------------------------------

/// One event line of one node process.
#[derive(Debug, Clone)]
pub struct Ev {
    pub node: u64,
    /// Which start of that node (0 for the first process, 1 after the first restart, ...).
    pub run: u32,
    pub ts: f64,
    pub kind: String,
    pub lease: String,
    pub token: Option<Token>,
    pub deadline: Option<f64>,
    /// For `master` events: the master named (`None` when no master is known).
    pub master: Option<u64>,
    pub reason: Option<String>,
}

fn token_of(v: &Value) -> Option<Token> {
    let a = v.as_array()?;
    if a.len() != 3 {
        return None;
    }
    Some([a[0].as_u64()?, a[1].as_u64()?, a[2].as_u64()?])
}

impl Ev {
    pub fn parse(run: u32, line: &str) -> Option<Ev> {
        let v: Value = serde_json::from_str(line).ok()?;
        Some(Ev {
            node: v["node"].as_u64()?,
            run,
            ts: v["ts_ms"].as_f64()?,
            kind: v["event"].as_str()?.to_string(),
            lease: v["lease"].as_str().unwrap_or("default").to_string(),
            token: token_of(&v["token"]),
            deadline: v["deadline_ms"].as_f64(),
            master: v["master"].as_u64(),
            reason: v["reason"].as_str().map(str::to_string),
        })
    }
}

// ---- faults ---------------------------------------------------------------------------------

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// `kill`, `pause`, `partition`, `clock-skew`.
    pub kind: &'static str,
    pub desc: String,
    /// The nodes it hit (for the picture).
    pub nodes: Vec<u64>,
    pub start: f64,
    pub end: f64,
    /// From when a master must exist again within the bound: the kill or the stop for
    /// crashes and pauses (a majority is still up), the heal for partitions; `None` for
    /// faults that last the whole run (clock-rate skew within rho).
    pub recover_from: Option<f64>,
}

// ---- the checker ----------------------------------------------------------------------------

/// One node's authority over one lease: from its `elected` line to the earlier of its
/// `surrendered` line and the last `deadline_ms` it printed.
#[derive(Debug, Clone)]
pub struct Interval {
    pub node: u64,
    pub run: u32,
    pub lease: String,
    pub start: f64,
    pub end: f64,
    /// The token it was elected with (the colour in the picture).
    pub token: Token,
    /// The last token it renewed with.
    pub last_token: Token,
}

impl Interval {
    fn is_empty(&self) -> bool {
        self.end <= self.start
    }
    /// Where the interval sits in the order of masters: its start, or for an interval whose
    /// `elected` line was printed only after its deadline (the process was paused in
    /// between), its deadline.
    fn key(&self) -> f64 {
        self.start.min(self.end)
    }
}

/// Builds every authority interval from the event lines.
pub fn intervals(events: &[Ev]) -> Vec<Interval> {
    let mut by_proc: BTreeMap<(u64, u32, String), Vec<&Ev>> = BTreeMap::new();
    for e in events {
        by_proc
            .entry((e.node, e.run, e.lease.clone()))
            .or_default()
            .push(e);
    }
    let mut out = Vec::new();
    for ((node, run, lease), evs) in by_proc {
        let mut open: Option<Interval> = None;
        for e in evs {
            match e.kind.as_str() {
                "elected" | "renewed" => {
                    let (Some(token), Some(deadline)) = (e.token, e.deadline) else {
                        continue;
                    };
                    match &mut open {
                        Some(i) if e.kind == "renewed" => {
                            i.end = deadline;
                            i.last_token = token;
                        }
                        _ => {
                            if let Some(i) = open.take() {
                                out.push(i);
                            }
                            open = Some(Interval {
                                node,
                                run,
                                lease: lease.clone(),
                                start: e.ts,
                                end: deadline,
                                token,
                                last_token: token,
                            });
                        }
                    }
                }
                "surrendered" => {
                    if let Some(mut i) = open.take() {
                        i.end = i.end.min(e.ts);
                        out.push(i);
                    }
                }
                _ => {}
            }
        }
        out.extend(open);
    }
    out.sort_by(|a, b| a.key().total_cmp(&b.key()));
    out
}

/// One accepted or rejected write of the fenced workload.
#[derive(Debug, Clone)]
pub struct WriteRec {
    pub node: u64,
    pub token: Token,
    pub seq: u64,
    pub ts: f64,
    pub accepted: bool,
    pub zombie: bool,
}

/// What the checker found.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub violations: Vec<Violation>,
    pub intervals: Vec<Interval>,
    /// Per fault (same order as the faults): the recovery time in ms, if measured.
    pub recoveries: Vec<Option<f64>>,
    pub recovery_bound_ms: f64,
    pub overlaps: usize,
    pub stale_writes: usize,
    pub lost_writes: usize,
    pub accepted_writes: usize,
    pub rejected_writes: usize,
    pub zombie_attempts: usize,
    pub zombie_rejected: usize,
}

#[derive(Debug, Clone)]
pub struct Violation {
    pub what: String,
    /// Where to mark it in the picture: time span and nodes.
    pub from: f64,
    pub to: f64,
    pub nodes: Vec<u64>,
}

/// The inputs of the checker.
#[derive(Debug)]
pub struct History<'a> {
    pub events: &'a [Ev],
    pub faults: &'a [Fault],
    /// Every write attempt, as the writers saw it (acknowledged = accepted).
    pub writes: &'a [WriteRec],
    /// The store's own log, re-read from its file: (node, token, seq) in order.
    pub store_log: &'a [(u64, Token, u64)],
    /// When the final state was taken, and which nodes were alive then.
    pub end: f64,
    pub alive_at_end: &'a [u64],
    pub recovery_bound_ms: f64,
}

/// Checks the history: exclusivity, token order, final knowledge, recovery, fencing.
pub fn check(h: &History<'_>) -> Report {
    let ivs = intervals(h.events);
    let mut r = Report {
        recovery_bound_ms: h.recovery_bound_ms,
        ..Report::default()
    };
    // Exclusivity: no two owners' intervals overlap, per lease.
    for (i, a) in ivs.iter().enumerate() {
        for b in &ivs[i + 1..] {
            if a.lease != b.lease || (a.node, a.run) == (b.node, b.run) {
                continue;
            }
            if a.is_empty() || b.is_empty() {
                continue;
            }
            let (from, to) = (a.start.max(b.start), a.end.min(b.end));
            if from < to {
                r.overlaps += 1;
                r.violations.push(Violation {
                    what: format!(
                        "overlap on {:?}: node {} (token {:?}) and node {} (token {:?}) both held authority for {:.1} ms",
                        a.lease,
                        a.node,
                        a.token,
                        b.node,
                        b.token,
                        to - from
                    ),
                    from,
                    to,
                    nodes: vec![a.node, b.node],
                });
            }
        }
    }
    // Tokens strictly increase from one master to the next.
    let mut leases: BTreeMap<&str, Vec<&Interval>> = BTreeMap::new();
    for i in &ivs {
        leases.entry(i.lease.as_str()).or_default().push(i);
    }
    for list in leases.values() {
        let mut highest: Option<&Interval> = None;
        for i in list {
            if let Some(p) = highest
                && i.token <= p.last_token
            {
                r.violations.push(Violation {
                    what: format!(
                        "token went back: node {} elected with {:?} after node {} held {:?}",
                        i.node, i.token, p.node, p.last_token
                    ),
                    from: i.key(),
                    to: i.key() + 1.0,
                    nodes: vec![i.node, p.node],
                });
            }
            if highest.is_none_or(|p| i.last_token > p.last_token) {
                highest = Some(i);
            }
        }
    }
    // At the end: a master, and every live node that was ever master knows it.
    for (lease, list) in &leases {
        let current: Vec<&&Interval> = list
            .iter()
            .filter(|i| i.start <= h.end && h.end < i.end)
            .collect();
        let Some(cur) = current.first() else {
            r.violations.push(Violation {
                what: format!("no master of {lease:?} at the end of the run"),
                from: h.end - 1.0,
                to: h.end,
                nodes: vec![],
            });
            continue;
        };
        for &n in h.alive_at_end {
            if n == cur.node || !list.iter().any(|i| i.node == n) {
                continue;
            }
            let knows = h
                .events
                .iter()
                .rfind(|e| e.node == n && e.kind == "master" && &e.lease == lease && e.ts <= h.end)
                .and_then(|e| e.master);
            if knows != Some(cur.node) {
                r.violations.push(Violation {
                    what: format!(
                        "node {n} (a former master) names {knows:?} as master of {lease:?} at the end, not {}",
                        cur.node
                    ),
                    from: h.end - 1.0,
                    to: h.end,
                    nodes: vec![n],
                });
            }
        }
    }
    // Recovery after each healed fault.
    for f in h.faults {
        let Some(t0) = f.recover_from else {
            r.recoveries.push(None);
            continue;
        };
        // A crashed or paused node's authority runs on to its deadline, but it is no
        // working master meanwhile: for recovery, its intervals are cut at the crash, and
        // the pause window is taken out of them.
        let mut live: Vec<(f64, f64)> = Vec::new();
        for i in &ivs {
            if !f.nodes.contains(&i.node) || !matches!(f.kind, "kill" | "pause") {
                live.push((i.start, i.end));
                continue;
            }
            live.push((i.start, i.end.min(f.start)));
            if f.kind == "pause" {
                live.push((i.start.max(f.end), i.end));
            }
        }
        live.retain(|(s, e)| s < e);
        let covered = live.iter().any(|&(s, e)| s <= t0 && t0 < e);
        let next = live
            .iter()
            .filter(|&&(s, _)| s >= t0)
            .map(|&(s, _)| s)
            .min_by(f64::total_cmp);
        let rec = if covered {
            Some(0.0)
        } else {
            next.map(|t| t - t0)
        };
        match rec {
            Some(ms) if ms <= h.recovery_bound_ms => {}
            _ => r.violations.push(Violation {
                what: format!(
                    "no master within {:.0} ms after {} ({})",
                    h.recovery_bound_ms,
                    f.desc,
                    rec.map_or("never".to_string(), |ms| format!("{ms:.0} ms"))
                ),
                from: t0,
                to: t0 + h.recovery_bound_ms,
                nodes: f.nodes.clone(),
            }),
        }
        r.recoveries.push(rec);
    }
    // Fencing: the store never takes a token lower than one it took before; no acked write
    // is missing from it.
    let mut top: Option<Token> = None;
    for &(node, token, seq) in h.store_log {
        if top.is_some_and(|t| token < t) {
            r.stale_writes += 1;
            let ts = h
                .writes
                .iter()
                .find(|w| w.node == node && w.seq == seq)
                .map_or(h.end, |w| w.ts);
            r.violations.push(Violation {
                what: format!(
                    "stale write accepted: node {node} seq {seq} token {token:?} after {top:?}"
                ),
                from: ts,
                to: ts + 1.0,
                nodes: vec![node],
            });
        }
        top = top.max(Some(token));
    }
    let stored: std::collections::BTreeSet<(u64, u64)> =
        h.store_log.iter().map(|&(n, _, s)| (n, s)).collect();
    for w in h.writes {
        if w.accepted {
            r.accepted_writes += 1;
            if !stored.contains(&(w.node, w.seq)) {
                r.lost_writes += 1;
                r.violations.push(Violation {
                    what: format!("acknowledged write lost: node {} seq {}", w.node, w.seq),
                    from: w.ts,
                    to: w.ts + 1.0,
                    nodes: vec![w.node],
                });
            }
        } else {
            r.rejected_writes += 1;
        }
        if w.zombie {
            r.zombie_attempts += 1;
            if !w.accepted {
                r.zombie_rejected += 1;
            }
        }
    }
    r.intervals = ivs;
    r
}

// ---- the picture ----------------------------------------------------------------------------

/// Colours by the token's rank among all elected tokens: golden-angle hues, so one master
/// and the next always differ.
fn colour(rank: usize) -> String {
    format!("hsl({:.0}, 65%, 52%)", (rank as f64 * 137.508) % 360.0)
}

/// Draws the run as SVG: one lane per node, authority bars coloured by token, fault windows
/// shaded, rejected (fenced-off) writes as ticks, violations in red.
pub fn timeline_svg(
    title: &str,
    nodes: &[u64],
    faults: &[Fault],
    report: &Report,
    writes: &[WriteRec],
    t0: f64,
    t1: f64,
) -> String {
    let span_s = ((t1 - t0) / 1000.0).max(1.0);
    let px_per_s = (1400.0 / span_s).clamp(4.0, 150.0);
    let left = 70.0;
    let width = left + span_s * px_per_s + 20.0;
    let lane = 36.0;
    let top = 60.0;
    let lanes_h = lane * nodes.len() as f64;
    let list_h = 14.0 * (faults.len().min(60) + report.violations.len().min(20) + 3) as f64;
    let height = top + lanes_h + 40.0 + list_h;
    let x = |t: f64| left + (t - t0) / 1000.0 * px_per_s;
    let y = |n: u64| top + lane * nodes.iter().position(|&m| m == n).unwrap_or(0) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="monospace" font-size="11" xml:space="preserve">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-size="14">{}</text>
<text x="10" y="36">bars: authority (elected .. min(surrendered, deadline)), colour = token; shaded: faults (grey kill, orange pause, blue partition); black ticks: writes fenced off; red: violations</text>
"#,
        esc(title)
    );
    // Time axis every 5 or 60 s.
    let step = if span_s > 600.0 {
        60.0
    } else if span_s > 120.0 {
        10.0
    } else {
        5.0
    };
    let mut t = 0.0;
    while t <= span_s {
        let xx = left + t * px_per_s;
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{:.1}" stroke="#eee"/><text x="{xx:.1}" y="{:.1}" fill="#888">{t:.0}s</text>"##,
            top + lanes_h,
            top + lanes_h + 14.0
        );
        t += step;
    }
    for f in faults {
        let (fill, all) = match f.kind {
            "kill" => ("#999", false),
            "pause" => ("#f90", false),
            "partition" => ("#39f", true),
            _ => ("#9c9", true),
        };
        let (x0, x1) = (x(f.start), x(f.end.max(f.start + 50.0)));
        let rows: Vec<u64> = if all || f.nodes.is_empty() {
            nodes.to_vec()
        } else {
            f.nodes.clone()
        };
        for n in rows {
            let _ = writeln!(
                s,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{lane}" fill="{fill}" fill-opacity="0.22"><title>{}</title></rect>"#,
                y(n),
                (x1 - x0).max(1.0),
                esc(&f.desc)
            );
        }
    }
    for n in nodes {
        let _ = writeln!(
            s,
            r##"<text x="8" y="{:.1}">node {n}</text><line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ccc"/>"##,
            y(*n) + lane / 2.0 + 4.0,
            y(*n) + lane,
            width - 10.0,
            y(*n) + lane
        );
    }
    let mut ranks: Vec<Token> = report.intervals.iter().map(|i| i.token).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let rank = |t: &Token| ranks.binary_search(t).unwrap_or(0);
    for i in &report.intervals {
        let (x0, x1) = (x(i.start), x(i.end));
        let w = if i.is_empty() {
            1.0
        } else {
            (x1 - x0).max(1.0)
        };
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>node {} run {} token {:?}..{:?} {:.0} ms</title></rect>"#,
            x0.min(x1),
            y(i.node) + 6.0,
            lane - 14.0,
            colour(rank(&i.token)),
            i.node,
            i.run,
            i.token,
            i.last_token,
            i.end - i.start
        );
        if x1 - x0 > 40.0 {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" fill="white" font-size="10">#{} ({})</text>"#,
                x0 + 3.0,
                y(i.node) + lane / 2.0 + 3.0,
                rank(&i.token) + 1,
                i.token[0] % 100_000
            );
        }
    }
    for w in writes.iter().filter(|w| !w.accepted) {
        let xx = x(w.ts);
        let _ = writeln!(
            s,
            r#"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="black" stroke-width="2"><title>write fenced off: node {} token {:?}{}</title></line>"#,
            y(w.node) + 2.0,
            y(w.node) + lane - 2.0,
            w.node,
            w.token,
            if w.zombie {
                " (zombie after pause)"
            } else {
                ""
            }
        );
    }
    for v in &report.violations {
        let rows: Vec<u64> = if v.nodes.is_empty() {
            nodes.to_vec()
        } else {
            v.nodes.clone()
        };
        for n in rows {
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{lane}" fill="red" fill-opacity="0.6" stroke="red"><title>{}</title></rect>"#,
                x(v.from),
                y(n),
                (x(v.to) - x(v.from)).max(3.0),
                esc(&v.what)
            );
        }
    }
    let mut ly = top + lanes_h + 36.0;
    let _ = writeln!(
        s,
        r#"<text x="10" y="{ly:.1}">faults ({}) and recovery (bound {:.0} ms):</text>"#,
        faults.len(),
        report.recovery_bound_ms
    );
    for (k, f) in faults.iter().enumerate().take(60) {
        ly += 14.0;
        let rec = report
            .recoveries
            .get(k)
            .copied()
            .flatten()
            .map_or("-".to_string(), |ms| format!("{ms:.0} ms"));
        let _ = writeln!(
            s,
            r#"<text x="10" y="{ly:.1}">{:>3} {:>7.1}s {:<9} {:<70} recovery {rec}</text>"#,
            k + 1,
            (f.start - t0) / 1000.0,
            f.kind,
            esc(&f.desc)
        );
    }
    for v in report.violations.iter().take(20) {
        ly += 14.0;
        let _ = writeln!(
            s,
            r#"<text x="10" y="{ly:.1}" fill="red">VIOLATION: {}</text>"#,
            esc(&v.what)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---- network namespaces ---------------------------------------------------------------------

/// One network namespace per node plus one holding the bridge; 10.99.0.<id>/24 exists only
/// inside them. Every link can be cut one way with an `nft` rule in the receiver's
/// namespace. Dropping it deletes the namespaces (and with them their rules and links).
#[derive(Debug)]
pub struct Netns {
    prefix: String,
    nodes: usize,
    created: Vec<String>,
}

fn run_cmd(args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Why network faults cannot run here, or `None` if they can.
    pub fn unavailable() -> Option<String> {
        for tool in ["ip", "nft"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !found {
                return Some(format!(
                    "`{tool}` is not installed (apt-get install iproute2 nftables)"
                ));
            }
        }
        let uid = Command::new("id").arg("-u").output().ok();
        if uid.is_none_or(|o| String::from_utf8_lossy(&o.stdout).trim() != "0") {
            return Some("not root: network namespaces need root".into());
        }
        // Root may still lack the capability (a container): try one namespace and a table.
        static PROBES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let probe = format!(
            "gpf{}probe{}",
            std::process::id(),
            PROBES.fetch_add(1, Ordering::Relaxed)
        );
        let tried = run_cmd(&["ip", "netns", "add", &probe], None).and_then(|()| {
            run_cmd(
                &["ip", "netns", "exec", &probe, "nft", "-f", "-"],
                Some("table inet gpf {\n chain input { type filter hook input priority 0; policy accept; }\n}\n"),
            )
        });
        let _ = run_cmd(&["ip", "netns", "del", &probe], None);
        tried
            .err()
            .map(|e| format!("cannot create a namespace with nft rules: {e}"))
    }

    /// Deletes namespaces left by a harness process that no longer exists.
    fn sweep_stale() {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let Some(rest) = name.strip_prefix("gpf") else {
                continue;
            };
            let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = run_cmd(&["ip", "netns", "del", name], None);
            }
        }
    }

    pub fn create(nodes: usize) -> Result<Netns, String> {
        Self::sweep_stale();
        // Unique per cluster: two tests of one process may each run one at once.
        static CLUSTERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut net = Netns {
            prefix: format!("gpf{}x{k}", std::process::id()),
            nodes,
            created: Vec::new(),
        };
        let hub = net.hub();
        run_cmd(&["ip", "netns", "add", &hub], None)?;
        net.created.push(hub.clone());
        run_cmd(
            &["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"],
            None,
        )?;
        run_cmd(&["ip", "-n", &hub, "link", "set", "br0", "up"], None)?;
        for id in 1..=nodes as u64 {
            let ns = net.ns(id);
            run_cmd(&["ip", "netns", "add", &ns], None)?;
            net.created.push(ns.clone());
            let v = format!("v{id}");
            run_cmd(
                &[
                    "ip", "-n", &hub, "link", "add", &v, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
                None,
            )?;
            run_cmd(
                &["ip", "-n", &hub, "link", "set", &v, "master", "br0"],
                None,
            )?;
            run_cmd(&["ip", "-n", &hub, "link", "set", &v, "up"], None)?;
            let addr = format!("{}/24", Self::ip(id));
            run_cmd(
                &["ip", "-n", &ns, "addr", "add", &addr, "dev", "eth0"],
                None,
            )?;
            run_cmd(&["ip", "-n", &ns, "link", "set", "eth0", "up"], None)?;
            run_cmd(&["ip", "-n", &ns, "link", "set", "lo", "up"], None)?;
            run_cmd(
                &["ip", "netns", "exec", &ns, "nft", "-f", "-"],
                Some(
                    "table inet gpf {\n chain input { type filter hook input priority 0; policy accept; }\n}\n",
                ),
            )?;
        }
        // Bridge ports come up asynchronously: wait for them (bounded). The nodes retry
        // their connections anyway, so this only keeps the first election prompt.
        for _ in 0..50 {
            let up = (1..=nodes as u64).all(|id| {
                Command::new("ip")
                    .args(["-n", &net.hub(), "-br", "link", "show", &format!("v{id}")])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("UP"))
            });
            if up {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        thread::sleep(Duration::from_millis(200));
        Ok(net)
    }

    fn hub(&self) -> String {
        format!("{}b", self.prefix)
    }
    pub fn ns(&self, id: u64) -> String {
        format!("{}n{id}", self.prefix)
    }
    pub fn ip(id: u64) -> String {
        format!("10.99.0.{id}")
    }

    /// Installs exactly these cuts: `(from, to)` means `to` does not receive from `from`.
    pub fn set_cuts(&self, cuts: &[(u64, u64)]) -> Result<(), String> {
        for to in 1..=self.nodes as u64 {
            let mut script = String::from("flush chain inet gpf input\n");
            for &(a, b) in cuts {
                if b == to {
                    let _ = writeln!(
                        script,
                        "add rule inet gpf input ip saddr {} drop",
                        Self::ip(a)
                    );
                }
            }
            run_cmd(
                &["ip", "netns", "exec", &self.ns(to), "nft", "-f", "-"],
                Some(&script),
            )?;
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            let _ = run_cmd(&["ip", "netns", "del", &ns], None);
        }
    }
}

/// The partition shapes, around a target (usually the master), over nodes `1..=n`.
/// Returns the one-way cuts and a description.
pub fn partition_shape(
    shape: usize,
    target: u64,
    n: u64,
    rng: &mut Rng,
) -> (Vec<(u64, u64)>, String) {
    let mut cuts = Vec::new();
    let both = |a: u64, b: u64, cuts: &mut Vec<(u64, u64)>| {
        cuts.push((a, b));
        cuts.push((b, a));
    };
    let mut others: Vec<u64> = (1..=n).filter(|&o| o != target).collect();
    // Shuffle the others.
    for i in (1..others.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        others.swap(i, j);
    }
    let desc = match shape {
        0 => {
            for &o in &others {
                both(target, o, &mut cuts);
            }
            format!("node {target} isolated")
        }
        1 => {
            let size = (n as usize - 1) / 2; // a minority including the target
            let mut minority: Vec<u64> = others.iter().copied().take(size - 1).collect();
            minority.push(target);
            for a in 1..=n {
                for b in 1..=n {
                    if minority.contains(&a) && !minority.contains(&b) {
                        both(a, b, &mut cuts);
                    }
                }
            }
            minority.sort_unstable();
            format!("minority {minority:?} split from the majority")
        }
        2 => {
            for &o in &others {
                cuts.push((target, o));
            }
            format!("node {target} one-way muted (hears, is not heard)")
        }
        3 => {
            for &o in &others {
                cuts.push((o, target));
            }
            format!("node {target} one-way deafened (is heard, hears nothing)")
        }
        4 => {
            // A chain with the target in the middle: only neighbours talk.
            let mut line = others.clone();
            line.insert(line.len() / 2, target);
            for i in 0..line.len() {
                for j in 0..line.len() {
                    if i.abs_diff(j) > 1 {
                        cuts.push((line[i], line[j]));
                    }
                }
            }
            format!("chain {line:?} (only neighbours talk)")
        }
        5 => {
            for &a in &others {
                for &b in &others {
                    if a != b {
                        cuts.push((a, b));
                    }
                }
            }
            format!("quorum-loss star: only node {target} talks to the others")
        }
        _ => {
            for a in 1..=n {
                for b in 1..=n {
                    if a != b {
                        cuts.push((a, b));
                    }
                }
            }
            "every node isolated (no quorum anywhere)".to_string()
        }
    };
    (cuts, desc)
}

pub const PARTITION_SHAPES: usize = 7;

// ---- the cluster ----------------------------------------------------------------------------

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
struct NodeState {
    run: u32,
    alive: bool,
    /// Latest token and deadline while master, per the node's own lines.
    holding: Option<(Token, f64)>,
}

#[derive(Debug)]
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    reader: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Store {
    top: Option<Token>,
    file: Option<File>,
    seq_log: Vec<(u64, Token, u64)>,
}

#[derive(Debug)]
struct Shared {
    nodes: usize,
    margin_ms: f64,
    states: Vec<Mutex<NodeState>>,
    paused: Vec<AtomicBool>,
    zombie: Vec<Mutex<Option<Token>>>,
    stop: AtomicBool,
    store: Mutex<Store>,
    writes: Mutex<Vec<WriteRec>>,
    events: Mutex<Vec<Ev>>,
    raw: Mutex<Option<File>>,
}

impl Shared {
    fn state(&self, id: u64) -> MutexGuard<'_, NodeState> {
        lock(&self.states[id as usize - 1])
    }

    fn append(&self, node: u64, token: Token, seq: u64, zombie: bool) {
        let ts = now_ms();
        let mut store = lock(&self.store);
        let accepted = store.top.is_none_or(|t| token >= t);
        if accepted {
            store.top = Some(token);
            if let Some(f) = &mut store.file {
                let _ = writeln!(f, "{node} {} {} {} {seq}", token[0], token[1], token[2]);
                let _ = f.flush();
            }
            store.seq_log.push((node, token, seq));
        }
        drop(store);
        lock(&self.writes).push(WriteRec {
            node,
            token,
            seq,
            ts,
            accepted,
            zombie,
        });
    }
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
            nodes: opts.nodes,
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

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// The writer thread playing node `id`'s application (see the module docs).
fn writer(shared: Arc<Shared>, id: u64) {
    let mut seq = 0u64;
    let idx = id as usize - 1;
    while !shared.stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(20));
        if shared.paused[idx].load(Ordering::Relaxed) {
            continue; // frozen with its process
        }
        // A write that was in flight when the process was frozen completes now.
        let pending = lock(&shared.zombie[idx]).take();
        if let Some(token) = pending {
            seq += 1;
            shared.append(id, token, seq, true);
            continue;
        }
        let holding = {
            let st = shared.state(id);
            if st.alive { st.holding } else { None }
        };
        if let Some((token, deadline)) = holding
            && now_ms() < deadline - shared.margin_ms
        {
            seq += 1;
            shared.append(id, token, seq, false);
        }
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

    fn note(&mut self, line: String) {
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
        rng: &mut Rng,
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

/// The result of a run.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub summary: String,
    pub svg: PathBuf,
    pub faults: Vec<Fault>,
}

fn summary(
    title: &str,
    faults: &[Fault],
    r: &Report,
    log: &[String],
    events: &[Ev],
    t0: f64,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{title}");
    let _ = writeln!(
        s,
        "\nfaults injected and recovery (a master again; bound {:.0} ms):",
        r.recovery_bound_ms
    );
    let mut worst: f64 = 0.0;
    let _ = writeln!(
        s,
        "(recovery: from the kill/stop, or the heal of a partition, to a working master; \
         new master: first election after the fault began, if any)"
    );
    for (k, f) in faults.iter().enumerate() {
        let rec = r.recoveries.get(k).copied().flatten();
        worst = worst.max(rec.unwrap_or(0.0));
        let elected = (f.recover_from.is_some())
            .then(|| {
                events
                    .iter()
                    .filter(|e| e.kind == "elected" && e.ts >= f.start)
                    .filter(|e| e.ts <= f.end + r.recovery_bound_ms)
                    .filter(|e| faults.get(k + 1).is_none_or(|next| e.ts < next.start))
                    .min_by(|a, b| a.ts.total_cmp(&b.ts))
            })
            .flatten();
        let _ = writeln!(
            s,
            "{:>4} {:>8.2}s {:<9} {:<80} recovery {:>8}  new master {}",
            k + 1,
            (f.start - t0) / 1000.0,
            f.kind,
            f.desc,
            rec.map_or("-".to_string(), |ms| format!("{ms:.0} ms")),
            elected.map_or("-".to_string(), |e| format!(
                "node {} +{:.0} ms",
                e.node,
                e.ts - f.start
            ))
        );
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for f in faults {
        *kinds.entry(f.kind).or_default() += 1;
    }
    let elections = events.iter().filter(|e| e.kind == "elected").count();
    let _ = writeln!(s, "\nfault kinds: {kinds:?}; worst recovery {worst:.0} ms");
    let _ = writeln!(
        s,
        "events {} (elections {elections}), authority intervals {}",
        events.len(),
        r.intervals.len()
    );
    let _ = writeln!(
        s,
        "writes: accepted {}, fenced off {} (zombie writes after a pause: {} tried, {} fenced off)",
        r.accepted_writes, r.rejected_writes, r.zombie_attempts, r.zombie_rejected
    );
    let _ = writeln!(
        s,
        "checks: overlaps {}, stale writes accepted {}, acknowledged writes lost {}, violations {}",
        r.overlaps,
        r.stale_writes,
        r.lost_writes,
        r.violations.len()
    );
    for v in &r.violations {
        let _ = writeln!(s, "VIOLATION: {}", v.what);
    }
    let _ = writeln!(s, "\nlog:");
    for l in log {
        let _ = writeln!(s, "{l}");
    }
    s
}

// ---- schedules ------------------------------------------------------------------------------

/// The short run: every fault kind at least once, fixed order, one seed.
pub fn short_run(mut opts: Options, seed: u64) -> Result<Outcome, String> {
    let skip_net = if opts.netns {
        Netns::unavailable()
    } else {
        Some("disabled".into())
    };
    opts.netns = skip_net.is_none();
    // Clock-rate skew within rho on every node, for the whole run.
    let spread = [-0.9, 0.9, -0.5, 0.5, 0.0, -0.7, 0.7];
    opts.rates = (0..opts.nodes)
        .map(|i| Some(1.0 + RHO * spread[i % spread.len()]))
        .collect();
    let rates = opts.rates.clone();
    let lease = opts.lease_ms;
    let mut rng = Rng::new(seed);
    let mut c = Cluster::start(opts)?;
    c.note(format!(
        "seed {seed}, {} nodes, lease {lease} ms",
        c.opts.nodes
    ));
    c.note_fault(
        "clock-skew",
        format!(
            "clock-rate skew within rho={RHO} on every node for the whole run: {:?}",
            rates.iter().map(|r| r.unwrap_or(1.0)).collect::<Vec<_>>()
        ),
    );
    if let Some(why) = &skip_net {
        c.note(format!(
            "SKIPPED: partition scenarios (network namespaces unavailable: {why})"
        ));
    }
    let first = c
        .wait_master(Duration::from_secs(20))
        .ok_or("no first master within 20 s")?;
    c.note(format!("first master: node {first}"));
    thread::sleep(Duration::from_millis(500));
    let n = c.opts.nodes as u64;
    let master_or = |c: &Cluster, rng: &mut Rng| c.master().unwrap_or(1 + rng.below(n));

    let m = master_or(&c, &mut rng);
    c.fault_kill(m, lease * 3 / 2)?;
    c.recover(700);
    let m = master_or(&c, &mut rng);
    let follower = (1..=n).find(|&i| i != m).unwrap_or(1);
    c.fault_kill(follower, lease)?;
    c.recover(700);
    let m = master_or(&c, &mut rng);
    c.fault_pause(m, lease / 2);
    c.recover(700);
    let m = master_or(&c, &mut rng);
    c.fault_pause(m, lease * 5);
    c.recover(700);
    if c.net.is_some() {
        for shape in 0..PARTITION_SHAPES {
            let m = master_or(&c, &mut rng);
            c.fault_partition(shape, m, lease * 5 / 2, &mut rng)?;
            c.recover(700);
        }
    }
    // Two faults at once: pause the master while a follower is dead.
    let m = master_or(&c, &mut rng);
    let other = (1..=n).rev().find(|&i| i != m).unwrap_or(1);
    c.kill(other);
    c.note(format!("node {other} killed for a combined fault"));
    let t = now_ms();
    c.fault_pause(m, lease * 2);
    c.restart(other)?;
    if let Some(f) = c.faults.last_mut() {
        f.desc = format!("{} while node {other} is dead", f.desc);
        f.start = f.start.min(t);
    }
    c.recover(700);
    let title = format!(
        "gen-paxos fault test: short run, seed {seed}, {n} nodes, lease {lease} ms{}",
        if skip_net.is_some() {
            " (partitions SKIPPED)"
        } else {
            ""
        }
    );
    Ok(c.finish(&title))
}

/// The soak: random faults every few seconds for `duration`.
pub fn soak(mut opts: Options, seed: u64, duration: Duration) -> Result<Outcome, String> {
    let skip_net = if opts.netns {
        Netns::unavailable()
    } else {
        Some("disabled".into())
    };
    opts.netns = skip_net.is_none();
    let mut rng = Rng::new(seed);
    opts.rates = (0..opts.nodes)
        .map(|_| Some(1.0 + rng.range(-0.9, 0.9) * RHO))
        .collect();
    let rates = opts.rates.clone();
    let lease = opts.lease_ms;
    let n = opts.nodes as u64;
    let mut c = Cluster::start(opts)?;
    c.note(format!(
        "soak: seed {seed}, {n} nodes, lease {lease} ms, duration {duration:?}"
    ));
    c.note_fault(
        "clock-skew",
        format!(
            "clock-rate skew within rho={RHO} on every node: {:?}",
            rates
                .iter()
                .map(|r| format!("{:.5}", r.unwrap_or(1.0)))
                .collect::<Vec<_>>()
        ),
    );
    if let Some(why) = &skip_net {
        c.note(format!(
            "SKIPPED: partition faults (network namespaces unavailable: {why})"
        ));
    }
    c.wait_master(Duration::from_secs(20))
        .ok_or("no first master within 20 s")?;
    let until = Instant::now() + duration;
    while Instant::now() < until {
        let m = c.master().unwrap_or(1 + rng.below(n));
        let target = if rng.below(3) == 0 {
            1 + rng.below(n)
        } else {
            m
        };
        let kinds = if c.net.is_some() { 3 } else { 2 };
        match rng.below(kinds) {
            0 => {
                let down = lease / 2 + rng.below(lease * 3);
                c.fault_kill(target, down)?;
            }
            1 => {
                let ms = (rng.range(0.5, 5.0) * lease as f64) as u64;
                c.fault_pause(target, ms);
            }
            _ => {
                let shape = rng.below(PARTITION_SHAPES as u64) as usize;
                let ms = lease + rng.below(lease * 4);
                c.fault_partition(shape, target, ms, &mut rng)?;
            }
        }
        c.recover(500 + rng.below(2500));
    }
    let title = format!(
        "gen-paxos fault test: soak, seed {seed}, {n} nodes, lease {lease} ms, {:.0} min{}",
        duration.as_secs_f64() / 60.0,
        if skip_net.is_some() {
            " (partitions SKIPPED)"
        } else {
            ""
        }
    );
    Ok(c.finish(&title))
}
