//! BENCHMARKS.md: where the time goes, the automatic verdicts, and errors of the run.

use std::fmt::Write as _;

use super::{Report, Views, ms};
use crate::bench::util::summarize;

pub(super) fn analysis(w: &mut String, r: &Report, _v: Views<'_>) {
    // Analysis.
    let _ = writeln!(w, "## Where the time goes, and the targets missed\n");
    let wait_p0 = r
        .acquire_ok()
        .and_then(|a| a.iter().find(|v| v.variant.priority == 0))
        .and_then(|v| v.phases)
        .map(|p| p[0]);
    let _ = writeln!(
        w,
        "- **Candidate wait.** When every candidate sees a lease become free at once (the acceptors' exclusion of a dead master runs out, a Release arrives, the start-up quarantine ends), `paxos-core` (`succession.rs`) makes each wait one jitter step per priority level below the maximum (3), then its place in the lease's succession order (a hash of lease name and node id, the same on every node, the previous master left out) times jitter / voters. The step is 0.5% of the lease (5 ms at 1 s): at priority 3 the first in line tries at once and the next 1.7 ms later, so equal candidates do not collide (random waits did, now and then, and a collision cost a retry of 20-60 ms); priority 0 waits three more steps (15 ms). A join at run time waits only its priority steps (0 at priority 3): the acquire trace shows join → Prepare of {} ms at priority 0. Retries after a collision still add a random part.",
        wait_p0.map_or("–".into(), ms)
    );
    let _ = writeln!(
        w,
        "- **Protocol floor.** Failover cannot beat the dead master's exclusion at the acceptors (D_A after they last accepted); the survivors schedule their attempt for the learned expiry plus (D_A − lease) plus the candidate wait, then need two round trips over QUIC (about 0.1–0.3 ms each on loopback when idle).\n- **Machine load.** Two cores are shared by three node processes, the harness, and whatever else runs (see the load averages above); a scheduling delay lands directly in the tail (p99 of 30 trials is the largest or second largest value).\n"
    );
    let fallbacks: Vec<(usize, usize)> =
        r.gp.iter()
            .map(|g| {
                (
                    g.sigterm.iter().filter(|x| **x > r.lease_ms / 2.0).count(),
                    g.sigterm.len(),
                )
            })
            .collect();
    if fallbacks.iter().any(|(k, _)| *k > 0) {
        let _ = writeln!(
            w,
            "- **SIGTERM handovers that fell back to expiry** ({} trials): the peers waited for the acceptors' exclusion to run out (a failover, not a handover). Two causes were found and fixed: Releases queued as datagrams were dropped at close (now sent reliably), and closing the transport dropped connections the peer had dialled before the Release was flushed onto them (fixed in 863c5bf; event traces showed one survivor never hearing the Release). A trial that still falls back here has a cause not yet diagnosed.",
            fallbacks
                .iter()
                .zip(&r.gp)
                .map(|((k, n), g)| format!("{k} of {n}, {}", g.label))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if let Some(p) = r
        .acquire_ok()
        .and_then(|a| a.iter().find(|v| v.jitter_in_force.is_zero()))
        .and_then(|v| v.phases)
        .filter(|p| p[0] > 0.5)
    {
        let _ = writeln!(
            w,
            "- **Timer resolution.** With no candidate wait at all (jitter 0, priority 3) join → Prepare still takes {} ms while each round trip takes about {} ms. The core schedules the attempt for *now*, and the election driver (`election/src/driver.rs`, `run`) always waits for its next wake-up with `tokio::time::sleep_until`; tokio's timer wheel has a resolution of 1 ms and rounds deadlines up, so a wake-up that is already due costs up to a millisecond or so. Handling a due wake-up without sleeping would bring the acquire latency to about two round trips (≈ {} ms here). The same rounding adds up to 1 ms to every failover and handover.",
            ms(p[0]),
            ms(p[1]),
            ms(p[1] + p[2] + p[3] + p[4])
        );
    }
}

pub(super) fn verdicts(w: &mut String, r: &Report, v: Views<'_>) {
    let Views { d_a, def, p3, .. } = v;
    // Automatic verdicts.
    for run in [def, p3].into_iter().flatten() {
        if let Some(o) = summarize(&run.overheads())
            && (o.p50 > 10.0 || o.p99 > 50.0)
        {
            let _ = writeln!(
                w,
                "- Missed, failover overhead ({}): median {} ms ({} over 10 ms), p99 {} ms. {}",
                run.label,
                ms(o.p50),
                ms((o.p50 - 10.0).max(0.0)),
                ms(o.p99),
                if run.priority.unwrap_or(0) < 3 {
                    "The candidate wait of priority 0 (15–20 ms) alone exceeds the 10 ms budget; see the priority 3 row."
                } else {
                    "See the tail notes above (load) and the per-trial data."
                }
            );
        }
        for (what, v) in [("resign", &run.resign), ("SIGTERM", &run.sigterm)] {
            if let Some(s) = summarize(v)
                && s.p99 > 10.0
            {
                let _ = writeln!(
                    w,
                    "- Missed, handover by {what} ({}): p99 {} ms, {} over 10 ms. {}",
                    run.label,
                    ms(s.p99),
                    ms(s.p99 - 10.0),
                    if what == "SIGTERM" && s.max > r.lease_ms / 2.0 {
                        "Some trials fell back to lease expiry (see the SIGTERM note above)."
                    } else if run.priority.unwrap_or(0) < 3 {
                        "After a Release the others wait their priority steps (15 ms at priority 0) before Prepare."
                    } else {
                        "The first in the succession order tries at once here; the rest is the round trips, the process's reaction to the request, and scheduling on the loaded machine."
                    }
                );
            }
        }
        if let Some(s) = summarize(&run.cold)
            && s.max > d_a + 50.0
        {
            let _ = writeln!(
                w,
                "- Missed, cold start ({}): max {} ms, {} over Q + 50 ms: process start-up, TLS set-up and the candidate wait after the quarantine.",
                run.label,
                ms(s.max),
                ms(s.max - d_a - 50.0)
            );
        }
    }
    if let Some(s) = r.first_scale() {
        let max_rss = s.max_rss_mib();
        if max_rss * 1.048576 > 100.0 {
            let _ = writeln!(
                w,
                "- Missed, RSS with {} leases: up to {max_rss:.0} MiB per node ({:.0} MB), {:.0} MB over 100 MB. A heap profile (heaptrack) of a node at 10,000 leases found the simulator's acceptance log growing in real nodes (fixed, 2effdab); what remains per lease is the runtime's callback channel (about 2.6 KB), the callback and supervisor tasks (about 1.9 KB), the shared view and watch channel (0.4 KB) and the core's state.",
                s.leases,
                max_rss * 1.048576,
                max_rss * 1.048576 - 100.0
            );
        }
    }
    if let Some(a) = r.acquire_ok() {
        for v in a {
            if let Some(s) = summarize(&v.samples)
                && s.p50 > 1.0
            {
                let _ = writeln!(
                    w,
                    "- Missed, acquire latency ({}): median {} ms. {}",
                    v.variant.label,
                    ms(s.p50),
                    if v.jitter_in_force.is_zero() {
                        "With no candidate wait, join → Prepare is the timer rounding (see above); the two round trips and the event delivery take a few tenths of a millisecond (phase table)."
                    } else {
                        "Dominated by the candidate wait (phase table: join → Prepare)."
                    }
                );
            }
        }
    }
    let _ = writeln!(w);
}

pub(super) fn errors(w: &mut String, r: &Report, _v: Views<'_>) {
    // Errors.
    let errors: Vec<&String> = r.gp.iter().flat_map(|g| &g.errors).collect();
    if !errors.is_empty() {
        let _ = writeln!(w, "## Errors during the run\n");
        for e in errors {
            let _ = writeln!(w, "- {e}");
        }
        let _ = writeln!(w);
    }
}
