//! The result of a run and its text summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::Fault;
use super::checker::Report;
use super::events::Ev;

/// The result of a run.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub summary: String,
    pub svg: PathBuf,
    pub faults: Vec<Fault>,
}

pub(crate) fn summary(
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
