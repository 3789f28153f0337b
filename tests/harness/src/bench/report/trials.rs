//! BENCHMARKS.md: the timed trials (failover, handover, cold start, acquire) and the raw
//! failover trials.

use std::fmt::Write as _;

use super::{HEAD, Report, Views, ms, row};
use crate::bench::util::summarize;

pub(super) fn failover(w: &mut String, r: &Report, v: Views<'_>) {
    let Views {
        etcd, failover_svg, ..
    } = v;
    // 1. Failover.
    let _ = writeln!(w, "## 1. Failover after SIGKILL of the master\n");
    let _ = writeln!(
        w,
        "Three nodes run; the harness waits a random fraction of the renewal interval, sends SIGKILL to the master, and measures the time to the next `elected` event. The killed node is restarted at once (it stays silent for its quarantine, so the two survivors usually decide; when the restarted node wins first, as it did with a 20 ms lease under CPU-bound competitors, its election ends the trial and the trial table shows it as the new master). Each trial's **floor** is the acceptors' remaining exclusion of the dead master at the kill instant: `max(0, last_accept + D_A − kill)`, where `last_accept` is approximated by the `ts_ms` of the master's last `elected`/`renewed` event (the acceptors accepted that ballot a fraction of a millisecond earlier, so the floor is overestimated by at most that, and the overhead underestimated by as much). A renewal in flight at the kill (accepted by the acceptors, not yet reported) would make the true floor up to one renewal interval later; such a trial would show as an outlier of several hundred ms.\n"
    );
    let _ = write!(w, "Time from SIGKILL to the next master (ms):\n\n{HEAD}");
    for run in &r.gp {
        let _ = write!(w, "{}", row(&run.label, summarize(&run.totals())));
    }
    if let Some(e) = etcd {
        let _ = write!(
            w,
            "{}",
            row("etcd 3.4, `etcdctl lock --ttl 1`", summarize(&e.failover))
        );
    }
    let _ = write!(
        w,
        "\nThe same minus each trial's floor (gen-paxos), and the floors:\n\n{HEAD}"
    );
    for run in &r.gp {
        let _ = write!(
            w,
            "{}",
            row(
                &format!("overhead, {}", run.label),
                summarize(&run.overheads())
            )
        );
        let _ = write!(
            w,
            "{}",
            row(&format!("floor, {}", run.label), summarize(&run.floors()))
        );
    }
    let _ = writeln!(w, "\n![failover distributions]({failover_svg})\n");
    let _ = writeln!(
        w,
        "etcd's floor is not observable from the client: the dead holder's lease expires TTL after its last keep-alive (etcdctl sends one every TTL/3), and etcd's lessor looks for expired leases every 500 ms, then revokes through raft and the next waiter's watch fires. So etcd's failover lies between about 0.67 s and 1.5 s by design.\n"
    );
}

pub(super) fn handover(w: &mut String, r: &Report, v: Views<'_>) {
    let Views {
        etcd, handover_svg, ..
    } = v;
    // 2. Handover.
    let _ = writeln!(w, "## 2. Graceful handover\n");
    let _ = writeln!(
        w,
        "`resign`: the line `resign` on the master's stdin (it surrenders, sends Release, and holds off for one lease). SIGTERM: graceful shutdown (surrenders and releases every lease, exits 0); the node is restarted after each trial. etcd: SIGINT to the holding `etcdctl lock`, which makes it unlock (delete its key) before exiting; the next waiter's watch fires. Time from the request to the next master's `elected` (ms):\n"
    );
    let _ = write!(w, "{HEAD}");
    for run in &r.gp {
        let _ = write!(
            w,
            "{}",
            row(&format!("resign, {}", run.label), summarize(&run.resign))
        );
        let _ = write!(
            w,
            "{}",
            row(&format!("SIGTERM, {}", run.label), summarize(&run.sigterm))
        );
    }
    if let Some(e) = etcd {
        let _ = write!(
            w,
            "{}",
            row("etcd 3.4, SIGINT → unlock", summarize(&e.release))
        );
    }
    let _ = writeln!(w, "\n![handover distributions]({handover_svg})\n");
}

pub(super) fn cold_start(w: &mut String, r: &Report, v: Views<'_>) {
    let Views { d_a, .. } = v;
    // 3. Cold start.
    let _ = writeln!(w, "## 3. Cold start\n");
    let _ = writeln!(
        w,
        "All three processes started together (killed and started again for each trial); time from the first spawn to the first `elected` (ms). Every node first stays silent for its quarantine Q = D_A = {} ms.\n",
        ms(d_a)
    );
    let _ = write!(w, "{HEAD}");
    for run in &r.gp {
        let _ = write!(w, "{}", row(&run.label, summarize(&run.cold)));
    }
    let _ = writeln!(w);
}

pub(super) fn acquire(w: &mut String, r: &Report, _v: Views<'_>) {
    // 4. Acquire.
    let _ = writeln!(w, "## 4. Acquire latency of a free lease\n");
    let _ = writeln!(
        w,
        "Three `Election` nodes over QUIC (mutual TLS) on loopback in the harness's process (tokio, 2 worker threads); after the quarantine, node 1 joins fresh lease names one at a time (the other two are acceptors only), lease 1 s. Time from `join` to node 1's `Elected` event. Leases stay held (renewed in the background), so the last acquisitions run beside a few hundred renewals per second. For the last 20 acquisitions a wrapper around node 1's transport time-stamps the protocol messages; the phase table gives their medians.\n"
    );
    match &r.acquire {
        None => {
            let _ = writeln!(w, "Skipped.\n");
        }
        Some(Err(e)) => {
            let _ = writeln!(w, "Failed: {e}\n");
        }
        Some(Ok(a)) => {
            let _ = write!(w, "{HEAD}");
            for v in a {
                let _ = write!(
                    w,
                    "{}",
                    row(
                        &format!(
                            "{} (jitter in force {} ms)",
                            v.variant.label,
                            ms(v.jitter_in_force.as_secs_f64() * 1000.0)
                        ),
                        summarize(&v.samples)
                    )
                );
            }
            let _ = writeln!(
                w,
                "\nWhere the time goes (medians, ms):\n\n| variant | join → Prepare sent (candidate wait) | Prepare → first remote Promise | → Accept sent | Accept → first remote Accepted | → `Elected` seen |\n|---|---:|---:|---:|---:|---:|"
            );
            for v in a {
                if let Some(p) = v.phases {
                    let _ = writeln!(
                        w,
                        "| {} | {} | {} | {} | {} | {} |",
                        v.variant.label,
                        ms(p[0]),
                        ms(p[1]),
                        ms(p[2]),
                        ms(p[3]),
                        ms(p[4])
                    );
                }
            }
            let _ = writeln!(w);
        }
    }
}

pub(super) fn raw_trials(w: &mut String, r: &Report, v: Views<'_>) {
    let Views { etcd, .. } = v;
    // Raw trials.
    let _ = writeln!(w, "## Raw failover trials (ms)\n");
    for run in &r.gp {
        let _ = writeln!(
            w,
            "<details><summary>{}: kill → elected / floor / overhead / master's last renewal before the kill</summary>\n",
            run.label
        );
        let _ = writeln!(
            w,
            "| trial | killed | new master | kill → elected | floor | overhead | last renewal before kill |\n|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (i, t) in run.failover.iter().enumerate() {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} |",
                i + 1,
                t.killed,
                t.winner,
                ms(t.total),
                ms(t.floor),
                ms(t.total - t.floor),
                ms(t.since_accept)
            );
        }
        let _ = writeln!(w, "\n</details>\n");
    }
    if let Some(e) = etcd {
        let _ = writeln!(
            w,
            "<details><summary>etcd: kill → next holder</summary>\n\n{}\n\n</details>\n",
            e.failover
                .iter()
                .map(|x| ms(*x))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
