//! The checker: authority intervals rebuilt from the event lines, and every property a
//! run must keep (no overlap, tokens increase, recovery within the bound, no stale or lost
//! write).

use std::collections::BTreeMap;

use super::events::Ev;
use super::{Fault, Token};

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
    pub(crate) fn is_empty(&self) -> bool {
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
