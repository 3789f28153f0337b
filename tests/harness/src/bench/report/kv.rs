//! Section 8: the replicated key-value store beside etcd's key-value API.

use std::fmt::Write as _;

use super::{Report, met, ms};
use crate::bench::kv::{KvResult, Load, Row};
use crate::bench::util::summarize;

fn cell(load: Option<&Result<Load, String>>) -> String {
    match load {
        None => "–".into(),
        Some(Err(e)) => format!("failed: {}", e.replace('|', "/")),
        Some(Ok(l)) => {
            let errors = if l.errors > 0 {
                format!(
                    "; **{} errors** ({})",
                    l.errors,
                    l.first_error.as_deref().unwrap_or("").replace('|', "/")
                )
            } else {
                String::new()
            };
            format!(
                "{} / {} / {} | {:.0}{errors}",
                ms(l.p50_us / 1000.0),
                ms(l.p99_us / 1000.0),
                ms(l.max_us / 1000.0),
                l.per_sec
            )
        }
    }
}

fn ok(load: Option<&Result<Load, String>>) -> Option<&Load> {
    load.and_then(|l| l.as_ref().ok())
        .filter(|l| l.done > 0 && l.errors == 0)
}

fn find<'a>(kv: &'a KvResult, label: &str) -> Option<&'a Row> {
    kv.rows.iter().find(|r| r.label == label)
}

/// `a / b`, as text.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

pub(super) fn section(w: &mut String, r: &Report) {
    let _ = writeln!(
        w,
        "## 8. Replicated state: the key-value store beside etcd (same run)\n"
    );
    let Some(kv) = &r.kv else {
        let _ = writeln!(w, "Skipped.\n");
        return;
    };
    let _ = writeln!(
        w,
        "Both sides: 3 members on 127.0.0.1, durable (a write is acknowledged once it is on the disk of a majority, after `fdatasync`), 16-byte values over 1,000 keys, every client with one request in flight and its own persistent connection, {} s per load after a 1 s warm-up. **gen-paxos**: 3 × `gen-paxos node --kv --data-dir DIR --lease-duration 1s`, loaded by `gen-paxos kv --peer MASTER bench` (one QUIC connection with mutual TLS per client; a put is a log entry answered once chosen, a get is a lease read on the master, R6). **etcd** {}: the members of section 6's settings, loaded by this harness through etcd's JSON gateway (HTTP/1.1 keep-alive per client, hyper; a put is `/v3/kv/put`, a get is `/v3/kv/range`, linearizable, etcd's default). Each side's **empty round trip** is the client path alone: a ping the node answers at once (gen-paxos), `GET /version` (etcd). Requests go to the master / raft leader unless the row says otherwise. Not alike: etcd's JSON gateway costs it JSON and an internal gRPC hop per request that its native gRPC clients do not pay (`GET /version` skips the gateway), and etcd's client path is plain HTTP where gen-paxos's is QUIC with mutual TLS. An open-loop load times each request from when it was due.\n",
        kv.rows.first().map_or(0, |row| row.spec.duration.as_secs()),
        kv.etcd_version.as_deref().unwrap_or("(not run)")
    );
    let _ = writeln!(
        w,
        "| load | gen-paxos p50 / p99 / max (ms) | gen-paxos per s | etcd p50 / p99 / max (ms) | etcd per s |\n|---|---:|---:|---:|---:|"
    );
    for row in &kv.rows {
        let _ = writeln!(
            w,
            "| {} | {} | {} |",
            row.label,
            cell(row.gp.as_ref()),
            cell(row.etcd.as_ref())
        );
    }
    let _ = writeln!(w);
    usage(w, kv);
    failover(w, kv);
    match &kv.catch_up {
        None => {}
        Some(Err(e)) => {
            let _ = writeln!(w, "Follower catch-up: failed: {e}\n");
        }
        Some(Ok(c)) => {
            let _ = writeln!(
                w,
                "**Follower catch-up.** A follower was stopped (SIGSTOP) for {:.1} s while the master took writes; when it resumed (SIGCONT) it had **{} entries** to learn (the others had taken snapshots every 10,000 entries and cut their logs, so it learns a snapshot and the entries after it). Its status showed all of them applied **{} ms** after it resumed (each poll is one `gen-paxos status` run of a few ms, so the figure is late by up to one poll; it includes re-establishing its QUIC connections, dropped while it was stopped).\n",
                c.stopped_ms / 1000.0,
                c.missed,
                ms(c.ms)
            );
        }
    }
    targets(w, kv);
    if !kv.errors.is_empty() {
        let _ = writeln!(w, "Errors in this section:\n");
        for e in &kv.errors {
            let _ = writeln!(w, "- {e}");
        }
        let _ = writeln!(w);
    }
}

fn usage(w: &mut String, kv: &KvResult) {
    let Some(row) = kv.rows.iter().find(|r| r.spec.rate.is_some()) else {
        return;
    };
    let mut lines = Vec::new();
    for (side, load) in [("gen-paxos", row.gp.as_ref()), ("etcd", row.etcd.as_ref())] {
        if let Some(Ok(l)) = load {
            for (label, cpu, rss) in &l.usage {
                lines.push(format!(
                    "| {side} | {label} | {} | {} |",
                    cpu.map_or("–".into(), |c| format!("{c:.1}%")),
                    rss.map_or("–".into(), |m| format!("{m:.0} MiB"))
                ));
            }
        }
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "CPU (percent of one core, over the load with its warm-up and connection set-up) and RSS (at its end) per member, at {} puts per second:\n\n| | member | CPU | RSS |\n|---|---|---:|---:|",
        row.spec.rate.unwrap_or(0.0)
    );
    for l in lines {
        let _ = writeln!(w, "{l}");
    }
    let _ = writeln!(w);
}

/// One figure of a failover trial.
type Pick = fn(&crate::bench::gp::KvFailover) -> f64;

fn failover(w: &mut String, kv: &KvResult) {
    if kv.failover.is_empty() {
        return;
    }
    let pick = |f: Pick| summarize(&kv.failover.iter().map(f).collect::<Vec<_>>());
    let _ = writeln!(
        w,
        "**Failover to a ready master.** Before each trial 8 clients write for 1 s; then SIGKILL of the store's master at a random point of its renewal cycle (it restarts at once on its data directory). Times from the kill to the new master's `elected` line, and to its `ready` line (its log recovered, every entry applied, serving reads and writes); the **floor** as in section 1 (ms):\n\n{}",
        super::HEAD.trim_end()
    );
    let rows: [(&str, Pick); 5] = [
        ("kill to ready", |t| t.total),
        ("floor", |t| t.floor),
        ("ready minus floor", |t| t.total - t.floor),
        ("elected minus floor", |t| t.elected - t.floor),
        ("recovery: ready minus elected", |t| t.total - t.elected),
    ];
    for (label, f) in rows {
        w.push_str(&super::row(label, pick(f)));
    }
    let entries: Vec<u64> = kv.failover.iter().map(|t| t.entries).collect();
    let _ = writeln!(
        w,
        "\nEntries the new master held when ready (all applied): from {} to {} over the trials (the log grows by each trial's writes; snapshots every 10,000 entries).\n",
        entries.iter().min().unwrap_or(&0),
        entries.iter().max().unwrap_or(&0)
    );
}

/// One line for the page's headline numbers.
pub(super) fn headline(w: &mut String, r: &Report) {
    let Some(kv) = &r.kv else {
        return;
    };
    let both = |label: &str| {
        let row = find(kv, label)?;
        Some((ok(row.gp.as_ref())?, ok(row.etcd.as_ref())?))
    };
    let mut parts = Vec::new();
    if let Some((g, e)) = both("put, 1 client") {
        parts.push(format!(
            "put median **{} ms** (etcd {} ms)",
            ms(g.p50_us / 1000.0),
            ms(e.p50_us / 1000.0)
        ));
    }
    if let Some((g, e)) = both("put, 64 clients") {
        parts.push(format!(
            "**{:.0} puts/s** with 64 clients (etcd {:.0}/s)",
            g.per_sec, e.per_sec
        ));
    }
    if let Some((g, e)) = both("get, 1 client") {
        parts.push(format!(
            "lease read median **{} ms** (etcd linearizable get {} ms)",
            ms(g.p50_us / 1000.0),
            ms(e.p50_us / 1000.0)
        ));
    }
    if let Some(s) = summarize(
        &kv.failover
            .iter()
            .map(|t| t.total - t.floor)
            .collect::<Vec<_>>(),
    ) {
        parts.push(format!(
            "failover to a ready master {} ms above the floor (median)",
            ms(s.p50)
        ));
    }
    if !parts.is_empty() {
        let _ = writeln!(
            w,
            "- **Replicated key-value store** (section 8, fsync on both sides): {}.",
            parts.join(", ")
        );
    }
}

fn targets(w: &mut String, kv: &KvResult) {
    let mut t = Vec::new();
    let gp = |label: &str| find(kv, label).and_then(|r| ok(r.gp.as_ref()));
    let etcd = |label: &str| find(kv, label).and_then(|r| ok(r.etcd.as_ref()));
    // Each side's empty round trip: the client path alone, left out of the "net" ratios.
    let rtt = |l: Option<&Load>| l.map_or(0.0, |l| l.p50_us);
    let (g_rtt, e_rtt) = (
        rtt(gp("empty round trip, 1 client")),
        rtt(etcd("empty round trip, 1 client")),
    );
    let net = |g: &Load, e: &Load| {
        let ours = g.p50_us - g_rtt;
        let what = if ours <= 0.0 {
            "gen-paxos adds nothing measurable to its round trip".to_string()
        } else {
            format!("median {}", ratio(ours, e.p50_us - e_rtt))
        };
        format!(
            "net of each side's empty round trip ({} / {} ms): {what}",
            ms(g_rtt / 1000.0),
            ms(e_rtt / 1000.0),
        )
    };
    if let (Some(g), Some(e)) = (gp("put, 1 client"), etcd("put, 1 client")) {
        let (a, b) = (g.p50_us / e.p50_us, g.p99_us / e.p99_us);
        t.push(format!(
            "| put latency, 1 client, gen-paxos / etcd | median and p99 ≤ 1/3 | median {} / {} ms = {}, p99 {} / {} ms = {}; {} | {} / {} |",
            ms(g.p50_us / 1000.0),
            ms(e.p50_us / 1000.0),
            ratio(g.p50_us, e.p50_us),
            ms(g.p99_us / 1000.0),
            ms(e.p99_us / 1000.0),
            ratio(g.p99_us, e.p99_us),
            net(g, e),
            met(a <= 1.0 / 3.0),
            met(b <= 1.0 / 3.0)
        ));
    }
    if let (Some(g), Some(e)) = (gp("put, 64 clients"), etcd("put, 64 clients")) {
        t.push(format!(
            "| puts per second, 64 clients, gen-paxos / etcd | ≥ 3 | {:.0} / {:.0} = {} | {} |",
            g.per_sec,
            e.per_sec,
            ratio(g.per_sec, e.per_sec),
            met(g.per_sec >= 3.0 * e.per_sec)
        ));
    }
    if let (Some(g), Some(e)) = (gp("get, 1 client"), etcd("get, 1 client")) {
        t.push(format!(
            "| lease read on the master / etcd linearizable get, 1 client | ≤ 1/10 | median {} / {} ms = {}, p99 {}; {} | {} |",
            ms(g.p50_us / 1000.0),
            ms(e.p50_us / 1000.0),
            ratio(g.p50_us, e.p50_us),
            ratio(g.p99_us, e.p99_us),
            net(g, e),
            met(g.p50_us * 10.0 <= e.p50_us)
        ));
    }
    if let Some(s) = summarize(
        &kv.failover
            .iter()
            .map(|t| t.total - t.floor)
            .collect::<Vec<_>>(),
    ) {
        t.push(format!(
            "| failover to a ready master after SIGKILL, above the floor | ≤ 10 ms | median {} ms, p99 {} ms, max {} ms | {} |",
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            met(s.p99 <= 10.0)
        ));
    }
    if let Some(Ok(c)) = &kv.catch_up {
        t.push(format!(
            "| a follower that missed {} entries catches up | ≤ 2 s | {} ms | {} |",
            c.missed,
            ms(c.ms),
            met(c.missed >= 100_000 && c.ms <= 2000.0)
        ));
    }
    if t.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "Targets of this section:\n\n| figure | target | measured | |\n|---|---|---|---|"
    );
    for line in t {
        let _ = writeln!(w, "{line}");
    }
    let _ = writeln!(w);
}
