//! BENCHMARKS.md: many leases, etcd side by side, and the core's speed.

use std::fmt::Write as _;

use super::{GpRun, Report, Views, ms, ratio};
use crate::bench::util::Summary;
use crate::bench::util::summarize;

pub(super) fn scale(w: &mut String, r: &Report, v: Views<'_>) {
    // 5. Scale.
    let _ = writeln!(w, "## 5. Many leases\n");
    let _ = writeln!(
        w,
        "Three `gen-paxos node` processes standing for N named leases each (`--config` listing them, lease 2 s, so each lease is renewed every 0.67 s). The harness waits until every lease has been elected (or the acquisition limit passed), lets one renewal cycle pass, then measures over the window: renewals (the nodes' `gen_paxos_renewals_total` on `/metrics`: the nodes run with `quiet_renewals`, since a JSON line per renewal would cost more than the renewal), leases held across the cluster about once a second from start to end (the nodes' `gen_paxos_leases_held`, summed: the chart below), leases lost (`surrendered` with reason `expired` or `lost`, plus any new `elected` in the window: a lease that changed hands), CPU (utime + stime from /proc/PID/stat, % of one core) and RSS (VmRSS, highest sample; VmHWM is the peak including start-up). Each renewal is 6 protocol messages between processes (Accept and Accepted to and from two peers, one round trip by P7, and Learn to two peers; 10 with `--two-round-renewals`, which adds Prepare and Promise) plus the owner's messages to itself, batched per peer into QUIC datagrams. Each node runs one tokio worker thread (`TOKIO_WORKER_THREADS=1`): three processes share two cores. UDP datagrams are counted for the whole network namespace (/proc/net/snmp), so they include any other loopback traffic on the machine. The nodes print one JSON line per other event (elected, surrendered, master changes), which the harness parses (its CPU is shown too).\n"
    );
    if let Some(svg) = v.held_svg {
        let _ = writeln!(w, "![leases held over time]({svg})\n");
    }
    for (n, res) in &r.scale {
        let lease_s = res.as_ref().map_or(2.0, |s| s.lease_ms as f64 / 1000.0);
        let _ = writeln!(w, "### {n} leases, lease {lease_s:.0} s\n");
        match res {
            Err(e) => {
                let _ = writeln!(w, "Failed: {e}\n");
            }
            Ok(s) => {
                let _ = writeln!(w, "| | value |\n|---|---|");
                let _ = writeln!(
                    w,
                    "| leases elected at least once | {} of {} ({:.1} s after start) |",
                    s.acquired, s.leases, s.acquire_secs
                );
                let _ = writeln!(w, "| window | {:.1} s |", s.window_secs);
                let _ = writeln!(
                    w,
                    "| leases lost in the window (`surrendered` expired/lost) | {} |",
                    s.lost_in_window
                );
                let _ = writeln!(
                    w,
                    "| new elections in the window | {} |",
                    s.elected_in_window
                );
                let _ = writeln!(
                    w,
                    "| other surrenders in the window (resigned, shut down, or shed under overload: reason `overload`) | {} |",
                    s.other_surrenders
                );
                let _ = writeln!(
                    w,
                    "| renewals per second (cluster) | {:.0} (per-second min {}, max {}); expected N / (lease / 3) = {:.0} |",
                    s.renewed_per_sec,
                    s.renewals_per_sec_min,
                    s.renewals_per_sec_max,
                    s.leases as f64 * 3.0 / lease_s
                );
                let _ = writeln!(
                    w,
                    "| protocol messages between nodes per second ({} per renewal) | {:.0} |",
                    s.messages_per_renewal,
                    s.renewed_per_sec * f64::from(s.messages_per_renewal)
                );
                if let Some(u) = s.udp_datagrams_per_sec {
                    let _ = writeln!(w, "| UDP datagrams per second (namespace-wide) | {u:.0} |");
                }
                for n in &s.nodes {
                    let _ = writeln!(
                        w,
                        "| node {} | CPU {} of one core, RSS {:.1} MiB (peak VmHWM {:.1} MiB) |",
                        n.id,
                        n.cpu_pct.map_or("?".into(), |c| format!("{c:.1}%")),
                        n.rss_kib as f64 / 1024.0,
                        n.hwm_kib as f64 / 1024.0
                    );
                }
                if let Some(us) = s.cpu_us_per_renewal() {
                    let _ = writeln!(
                        w,
                        "| CPU per renewal (the three nodes' CPU / renewals per second) | {us:.1} us |"
                    );
                }
                if let Some(b) = s.rss_bytes_per_lease() {
                    let _ = writeln!(
                        w,
                        "| RSS per lease (the largest node's RSS / N: an upper bound, it includes the ~10 MiB of a node with one lease; docs/lease-memory.md measures the difference) | {:.2} KiB |",
                        b / 1024.0
                    );
                }
                if let Some(h) = s.harness_cpu_pct {
                    let _ = writeln!(
                        w,
                        "| harness (reading and parsing the event lines) | CPU {h:.1}% |"
                    );
                }
                if s.progress.len() > 1 || s.acquired < s.leases {
                    let _ = writeln!(
                        w,
                        "| progress while acquiring (s: leases elected, event lines) | {} |",
                        s.progress
                            .iter()
                            .map(|(t, a, l)| format!("{t:.0} s: {a}, {l}"))
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
                if !s.held.is_empty() {
                    let _ = writeln!(
                        w,
                        "| leases held across the cluster (s: held; from /metrics) | {} |",
                        s.held
                            .iter()
                            .map(|(t, h)| format!("{t:.0}: {h}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                let _ = writeln!(w, "| status at the end | {} |", s.status);
                for note in &s.notes {
                    let _ = writeln!(w, "| note | {note} |");
                }
                let _ = writeln!(w);
                if s.notes
                    .iter()
                    .any(|n| n.contains("event output fell behind"))
                {
                    let _ = writeln!(
                        w,
                        "The `event output fell behind` warnings come from `gen-paxos node`'s event printer (a broadcast channel of 4,096 events): a burst of events (the initial acquisition's `elected` lines, or a run printing a line per renewal) outran the JSON printing and some lines were skipped. The renewal rate comes from `/metrics`, not from the lines, and the held count over time and the status query at the end are the check that no lease was lost.\n"
                    );
                }
                if s.acquired < s.leases {
                    // What the first (10,000-lease, 2 s) run cost per renewal, scaled to
                    // this run's demand: the CPU this machine would need.
                    let need = r
                        .first_scale()
                        .filter(|f| f.renewed_per_sec > 0.0)
                        .map(|f| {
                            let cores: f64 =
                                f.nodes.iter().filter_map(|n| n.cpu_pct).sum::<f64>() / 100.0;
                            cores / f.renewed_per_sec * (s.leases as f64 * 3.0 / lease_s)
                        });
                    let _ = writeln!(
                        w,
                        "**Not all {n} leases were acquired within the limit (lease {lease_s:.0} s).** {} of the {n} leases were elected at least once. Demand: N / (lease / 3) = {:.0} renewals per second{}. The nodes slow their fresh acquisitions down while their attempts are answered late (renewals first, docs/PROTOCOL.md, \"Overload\"), so the leases held should stay held: the held count over time (row above, and the chart) shows whether they did.\n",
                        s.acquired,
                        s.leases as f64 * 3.0 / lease_s,
                        need.map_or(String::new(), |c| format!(
                            ", which at the 10,000-lease run's measured cost per renewal needs about {c:.1} cores"
                        )),
                    );
                }
            }
        }
    }
    if r.scale.is_empty() {
        let _ = writeln!(w, "Skipped.\n");
    }
}

pub(super) fn etcd(w: &mut String, r: &Report, v: Views<'_>) {
    let Views { def, p3, .. } = v;
    // 6. etcd side by side.
    let _ = writeln!(w, "## 6. Side by side with etcd (same run)\n");
    match &r.etcd {
        None => {
            let _ = writeln!(w, "Skipped (`--skip etcd`).\n");
        }
        Some(Err(e)) => {
            let _ = writeln!(
                w,
                "**etcd could not be run here:** {e}. The gen-paxos figures above stand alone.\n"
            );
        }
        Some(Ok(e)) => {
            let _ = writeln!(
                w,
                "| figure | gen-paxos (default) | gen-paxos (priority 3) | etcd 3.4 | ratio gen-paxos/etcd (default; priority 3) |\n|---|---:|---:|---:|---:|"
            );
            let fs =
                |run: Option<&GpRun>, f: &dyn Fn(&GpRun) -> Vec<f64>, pick: fn(&Summary) -> f64| {
                    run.and_then(|r| summarize(&f(r))).map(|s| pick(&s))
                };
            let ef = summarize(&e.failover);
            let er = summarize(&e.release);
            type Pick = fn(&Summary) -> f64;
            let picks: [(&str, Pick); 3] = [
                ("median", |s| s.p50),
                ("p99", |s| s.p99),
                ("max", |s| s.max),
            ];
            for (name, pick) in picks {
                let a = fs(def, &|r| r.totals(), pick);
                let b = fs(p3, &|r| r.totals(), pick);
                let c = ef.map(|s| pick(&s));
                let _ = writeln!(
                    w,
                    "| failover after SIGKILL, {name} (ms) | {} | {} | {} | {}; {} |",
                    a.map_or("–".into(), ms),
                    b.map_or("–".into(), ms),
                    c.map_or("–".into(), ms),
                    ratio(a, c),
                    ratio(b, c)
                );
            }
            for (name, pick) in picks.iter().take(2) {
                let a = fs(def, &|r| r.resign.clone(), *pick);
                let b = fs(p3, &|r| r.resign.clone(), *pick);
                let c = er.map(|s| pick(&s));
                let _ = writeln!(
                    w,
                    "| graceful handover (resign; etcd unlock), {name} (ms) | {} | {} | {} | {}; {} |",
                    a.map_or("–".into(), ms),
                    b.map_or("–".into(), ms),
                    c.map_or("–".into(), ms),
                    ratio(a, c),
                    ratio(b, c)
                );
                let a = fs(def, &|r| r.sigterm.clone(), *pick);
                let b = fs(p3, &|r| r.sigterm.clone(), *pick);
                let _ = writeln!(
                    w,
                    "| graceful handover (SIGTERM; etcd unlock), {name} (ms) | {} | {} | {} | {}; {} |",
                    a.map_or("–".into(), ms),
                    b.map_or("–".into(), ms),
                    c.map_or("–".into(), ms),
                    ratio(a, c),
                    ratio(b, c)
                );
            }
            let gp_scale = r.scale_ok(
                e.scale
                    .as_ref()
                    .and_then(|s| s.as_ref().ok())
                    .map_or(0, |s| s.leases),
            );
            if let (Some(g), Some(s)) = (gp_scale, r.etcd_scale()) {
                let gc: Vec<f64> = g.nodes.iter().filter_map(|n| n.cpu_pct).collect();
                let ec: Vec<f64> = s.members.iter().filter_map(|n| n.cpu_pct).collect();
                let mean =
                    |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
                let gr: Vec<f64> = g.nodes.iter().map(|n| n.rss_kib as f64 / 1024.0).collect();
                let er: Vec<f64> = s
                    .members
                    .iter()
                    .map(|n| n.rss_kib as f64 / 1024.0)
                    .collect();
                let _ = writeln!(
                    w,
                    "| {} leases held with keep-alives: CPU per node/member, mean (% of one core) | {} | – | {} | {} |",
                    s.leases,
                    mean(&gc).map_or("–".into(), |x| format!("{x:.1}")),
                    mean(&ec).map_or("–".into(), |x| format!("{x:.1}")),
                    ratio(mean(&gc), mean(&ec))
                );
                let _ = writeln!(
                    w,
                    "| {} leases: RSS per node/member, mean (MiB) | {} | – | {} | {} |",
                    s.leases,
                    mean(&gr).map_or("–".into(), |x| format!("{x:.0}")),
                    mean(&er).map_or("–".into(), |x| format!("{x:.0}")),
                    ratio(mean(&gr), mean(&er))
                );
            }
            let _ = writeln!(w);
            match &e.scale {
                Some(Ok(s)) => {
                    let _ = writeln!(
                        w,
                        "etcd with {} leases (TTL 2 s, one key attached to each, like a lock): granted and written in {:.1} s by 8 client threads through the JSON gateway; then kept alive from the harness, all leases in one `LeaseKeepAlive` stream every 0.67 s sent to the raft leader (median round {:.0} ms, {} rounds). Window {:.0} s; leases lost (keep-alive answered without TTL) {}; leases alive at the end {}. Per member: {}. etcd's keep-alives are served by the leader from memory (not replicated through raft), so the followers stay nearly idle; the client's CPU is not counted, while gen-paxos's nodes are themselves the contenders. The keep-alives go through etcd's JSON gateway (grpc-gateway inside the member: JSON decoding and encoding and an internal gRPC hop per request), so the leader's CPU here is an upper bound for what a native gRPC client (clientv3, one LeaseKeepAlive stream) would cost it, and the CPU ratio above flatters gen-paxos accordingly.\n",
                        s.leases,
                        s.setup_secs,
                        s.keepalive_round_ms,
                        s.keepalive_rounds,
                        s.window_secs,
                        s.lost,
                        s.alive_at_end.map_or("?".into(), |n| n.to_string()),
                        s.members
                            .iter()
                            .map(|m| format!(
                                "m{} CPU {}, RSS {:.0} MiB (peak {:.0})",
                                m.id,
                                m.cpu_pct.map_or("?".into(), |c| format!("{c:.1}%")),
                                m.rss_kib as f64 / 1024.0,
                                m.hwm_kib as f64 / 1024.0
                            ))
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
                Some(Err(err)) => {
                    let _ = writeln!(w, "etcd lease scale run failed: {err}\n");
                }
                None => {}
            }
            let _ = writeln!(
                w,
                "What differs between the two: gen-paxos's contenders *are* the voters (killing the master kills one of three acceptors), while etcd's contenders are clients of a separate 3-member cluster (killing the holder leaves the cluster intact). gen-paxos's floor is the acceptors' exclusion D_A = lease × (1 + rho)/(1 − rho); etcd's is the TTL after the last keep-alive plus its 500 ms expiry scan.\n"
            );
            for err in &e.errors {
                let _ = writeln!(w, "- error: {err}");
            }
        }
    }
}

pub(super) fn core_speed(w: &mut String, r: &Report, _v: Views<'_>) {
    // 7. Core speed.
    let _ = writeln!(w, "## 7. Core speed (no network)\n");
    match &r.core {
        None => {
            let _ = writeln!(w, "Skipped.\n");
        }
        Some(Err(e)) => {
            let _ = writeln!(w, "Failed: {e}\n");
        }
        Some(Ok(c)) => {
            let _ = writeln!(
                w,
                "Three `gen_paxos_core::Node`s driven by hand in one thread, every batch delivered at once (zero latency), {} leases joined by all three, lease 2 s, {:.0} s of simulated time: {} protocol messages handled (a node's messages to itself included), {} elections, {} renewals, in {:.2} s of CPU: **{:.2} M messages per second per core**, {:.0} renewals per second per core.\n",
                c.leases,
                c.simulated_secs,
                c.messages,
                c.elections,
                c.renewals,
                c.cpu_secs,
                c.messages as f64 / c.cpu_secs / 1e6,
                c.renewals as f64 / c.cpu_secs
            );
            let _ = writeln!(
                w,
                "The fault simulator (`gen_paxos_core::sim`, 3 voters, default settings: 20 s of faults then healing): {} seeds in {:.2} s of CPU, **{:.2} M deliveries per second**, {:.2} M handler steps per second, {} seeds with a violation.\n",
                c.sim_seeds,
                c.sim_cpu_secs,
                c.sim_deliveries as f64 / c.sim_cpu_secs / 1e6,
                c.sim_steps as f64 / c.sim_cpu_secs / 1e6,
                c.sim_violations
            );
            let _ = writeln!(
                w,
                "The same simulator with the replicated log and `ask` on (`SimConfig::log`: storage per host with group commit, a client workload, the log's checks): {} seeds in {:.2} s of CPU, **{:.2} M deliveries per second** ({:.0}% of the lease-only rate above), {:.2} M handler steps per second, {} seeds with a violation.\n",
                c.sim_log_seeds,
                c.sim_log_cpu_secs,
                c.sim_log_deliveries as f64 / c.sim_log_cpu_secs / 1e6,
                100.0 * (c.sim_log_deliveries as f64 / c.sim_log_cpu_secs)
                    / (c.sim_deliveries as f64 / c.sim_cpu_secs).max(1e-9),
                c.sim_log_steps as f64 / c.sim_log_cpu_secs / 1e6,
                c.sim_log_violations
            );
            let _ = writeln!(
                w,
                "The replicated log (`gen_paxos_core::sim::LogBench`, also `cargo run --release -p gen-paxos-core --example log_speed`): three nodes in one thread, every message delivered and every write confirmed at once, 16-byte values, each replica snapshotting every 64 batches: {} appends chosen and acknowledged in batches of {} (`Node::append_batch`) in {:.2} s of CPU, **{:.2} M appends per second per core**; one at a time (`Node::append`), {} in {:.2} s, {:.2} M per second.\n",
                c.log_appends,
                c.log_batch,
                c.log_cpu_secs,
                c.log_appends as f64 / c.log_cpu_secs / 1e6,
                c.log_single_appends,
                c.log_single_cpu_secs,
                c.log_single_appends as f64 / c.log_single_cpu_secs / 1e6
            );
        }
    }
}
