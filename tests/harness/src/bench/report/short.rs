//! Section 9: short leases on a busy machine.

use std::fmt::Write as _;

use super::{HEAD, Report, met, ms, row};
use crate::bench::util::summarize;

pub(super) fn section(w: &mut String, r: &Report) {
    let _ = writeln!(w, "## 9. Short leases on a busy machine\n");
    if r.short.is_empty() {
        let _ = writeln!(w, "Skipped.\n");
        return;
    }
    let competitors = r.short.first().map_or(0, |s| s.competitors);
    let _ = writeln!(
        w,
        "Three `gen-paxos node --lease-duration L` on loopback with the default settings (renewal after a third of the lease, retransmission every 5% of it) while **{competitors} CPU-bound processes** (`sh -c 'while :; do :; done'`, same priority) compete with them for the 2 cores. Failover after SIGKILL of the master and handover by `resign` as in sections 1 and 2; then a quiet window with no fault at all, in which every `elected` line is a master change no fault caused. etcd cannot grant a TTL under 1 s.\n"
    );
    if let Some(p) = r.short.iter().find_map(|s| s.realtime) {
        let _ = writeln!(
            w,
            "Each lease runs twice: with the default scheduling policy, and with the nodes under the real-time policy SCHED_FIFO (`chrt -f {p} gen-paxos node ...`; the competitors keep the default policy), which docs/short-leases.md recommends for leases under 100 ms on a busy machine.\n"
        );
    }
    let mut targets = Vec::new();
    for s in &r.short {
        let policy = s
            .realtime
            .map_or(String::new(), |p| format!(", SCHED_FIFO (`chrt -f {p}`)"));
        let _ = writeln!(
            w,
            "### Lease {} ms{policy}\n\nTime from the fault to the next master (ms):\n\n{}",
            s.lease_ms,
            HEAD.trim_end()
        );
        let totals: Vec<f64> = s.failover.iter().map(|t| t.total).collect();
        let overheads: Vec<f64> = s.failover.iter().map(|t| t.total - t.floor).collect();
        w.push_str(&row("failover after SIGKILL", summarize(&totals)));
        w.push_str(&row("... above the floor", summarize(&overheads)));
        w.push_str(&row("handover by resign", summarize(&s.resign)));
        let spurious = s
            .spurious
            .map_or("not measured".to_string(), |n| n.to_string());
        let _ = writeln!(
            w,
            "\nMaster changes no fault caused, in a quiet window of {:.0} s: **{spurious}**.\n",
            s.quiet_secs
        );
        // Failovers the restarted node won back before either survivor (its quarantine
        // over): named, since they end later than the survivors' would.
        let regained: Vec<String> = s
            .failover
            .iter()
            .enumerate()
            .filter(|(_, t)| t.winner == t.killed)
            .map(|(i, t)| format!("trial {i} ({} ms)", ms(t.total)))
            .collect();
        if !regained.is_empty() {
            let _ = writeln!(
                w,
                "Failovers the restarted node itself won, before either survivor: {}.\n",
                regained.join(", ")
            );
        }
        for e in &s.errors {
            let _ = writeln!(w, "- error: {e}");
        }
        if !s.errors.is_empty() {
            let _ = writeln!(w);
        }
        if (s.lease_ms - 50.0).abs() < 0.5 {
            if let Some(f) = summarize(&totals) {
                targets.push(format!(
                    "| lease 50 ms{policy}: failover after SIGKILL | p99 ≤ 60 ms | p99 {} ms (median {}) | {} |",
                    ms(f.p99),
                    ms(f.p50),
                    met(f.p99 <= 60.0)
                ));
            }
            if let Some(h) = summarize(&s.resign) {
                targets.push(format!(
                    "| lease 50 ms{policy}: handover by resign | p99 ≤ 5 ms | p99 {} ms | {} |",
                    ms(h.p99),
                    met(h.p99 <= 5.0)
                ));
            }
            if let Some(n) = s.spurious {
                targets.push(format!(
                    "| lease 50 ms{policy}: master changes no fault caused | 0 in 30 minutes | {n} in {:.0} s | {} |",
                    s.quiet_secs,
                    if s.quiet_secs >= 1800.0 {
                        met(n == 0)
                    } else if n > 0 {
                        met(false)
                    } else {
                        "(window shorter than 30 minutes)"
                    }
                ));
            }
        }
    }
    if !targets.is_empty() {
        let _ = writeln!(
            w,
            "Targets of this section (ratio to etcd's shortest TTL, 1 s: a 50 ms lease is 1/20 of it):\n\n| figure | target | measured | |\n|---|---|---|---|"
        );
        for t in targets {
            let _ = writeln!(w, "{t}");
        }
        let _ = writeln!(w);
    }
}
