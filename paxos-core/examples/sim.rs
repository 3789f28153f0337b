//! Runs the deterministic PaxosLease simulator over many seeds.
//!
//! ```text
//! cargo run --release -p gen-paxos-core --example sim -- --seeds 10000 --nodes 5
//! cargo run --release -p gen-paxos-core --example sim -- --seeds 1000 --unsafe late-timer
//! cargo run --release -p gen-paxos-core --example sim -- --seed 1234 --nodes 3 --trace
//! cargo run --release -p gen-paxos-core --example sim -- --seeds 1000 --split
//! cargo run --release -p gen-paxos-core --example sim -- --seeds 1000 --split --unsafe no-fingerprint
//! ```
//!
//! `--digest` hashes everything every node said (events, messages, hellos, wake-up times,
//! with time and host) and prints `digest=<hex>`: a refactoring that must not change
//! behaviour gives the same digest for the same seeds.
//!
//! The replicated log (on the first lease) and `ask` run by default, with a client
//! workload, durable storage per host and their checks; `--no-log` runs the leases alone,
//! exactly as versions before the log did (same digests for the same seeds).
//!
//! `--split` simulates a misconfigured cluster (two voter sets sharing one node; see
//! `SimConfig::split`) instead of `--nodes` voters.
//!
//! Defaults: 20,000 seeds, 3 voters, `rho` 0.001.
//!
//! The last line is always `seeds=<N> steps=<S> violations=<V> liveness_failures=<L>`,
//! where V counts seeds with an invariant violation (a seed stops at its first) and L
//! counts seeds that did not recover within the liveness bound after healing.

// The simulated runs never read a clock; only this driver times itself to report the
// delivery rate, which is why the crate's clock ban is lifted here.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gen_paxos_core::UnsafeRule;
use gen_paxos_core::sim::{SimConfig, liveness_bound, run};

struct Args {
    seeds: u64,
    first: u64,
    nodes: usize,
    rho: f64,
    unsafe_rule: Option<UnsafeRule>,
    trace: bool,
    quiet: bool,
    split: bool,
    digest: bool,
    log: bool,
}

fn usage() -> String {
    let rules: Vec<&str> = UnsafeRule::ALL.iter().map(|(n, _)| *n).collect();
    format!(
        "usage: sim [--seeds N] [--seed S | --first S] [--nodes K | --split] [--rho R] [--unsafe RULE] [--trace] [--quiet] [--digest] [--no-log]\n\
         RULE is one of: {}",
        rules.join(", ")
    )
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        seeds: 20_000,
        first: 0,
        nodes: 3,
        rho: 0.001,
        unsafe_rule: None,
        trace: false,
        quiet: false,
        split: false,
        digest: false,
        log: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--seeds" => args.seeds = value()?.parse().map_err(|e| format!("--seeds: {e}"))?,
            "--first" => args.first = value()?.parse().map_err(|e| format!("--first: {e}"))?,
            "--seed" => {
                args.first = value()?.parse().map_err(|e| format!("--seed: {e}"))?;
                args.seeds = 1;
                args.trace = true;
            }
            "--nodes" => args.nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--rho" => args.rho = value()?.parse().map_err(|e| format!("--rho: {e}"))?,
            "--unsafe" => {
                let name = value()?;
                args.unsafe_rule = Some(
                    UnsafeRule::from_name(&name)
                        .ok_or_else(|| format!("unknown rule {name:?}\n{}", usage()))?,
                );
            }
            "--trace" => args.trace = true,
            "--quiet" => args.quiet = true,
            "--split" => args.split = true,
            "--digest" => args.digest = true,
            "--no-log" => args.log = false,
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    if !(1..=gen_paxos_core::MAX_VOTERS).contains(&args.nodes) {
        return Err(format!(
            "--nodes must be between 1 and {}",
            gen_paxos_core::MAX_VOTERS
        ));
    }
    if !(args.rho.is_finite() && (0.0..0.5).contains(&args.rho)) {
        return Err("--rho must be in [0, 0.5)".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = |seed: u64, trace: bool| {
        let mut c = SimConfig::new(seed, args.nodes);
        c.rho = args.rho;
        c.unsafe_rule = args.unsafe_rule;
        c.trace = trace;
        c.split = args.split;
        c.digest = args.digest;
        c.log = args.log && !args.split;
        c
    };
    let replay = |seed: u64| {
        let mut cmd = format!(
            "cargo run --release -p gen-paxos-core --example sim -- --seed {seed} --nodes {} --rho {}",
            args.nodes, args.rho
        );
        if let Some(r) = args.unsafe_rule {
            cmd.push_str(&format!(" --unsafe {}", r.name()));
        }
        if args.split {
            cmd.push_str(" --split");
        }
        if !args.log {
            cmd.push_str(" --no-log");
        }
        cmd
    };
    let started = Instant::now();
    let (mut steps, mut deliveries, mut violations, mut liveness) = (0u64, 0u64, 0u64, 0u64);
    let mut worst_recovery = Duration::ZERO;
    let mut shown = 0;
    // Seeds per kind of violation (see `kind_of`).
    let mut kinds: std::collections::BTreeMap<String, u64> = Default::default();
    let mut digest = 0u64;
    let (mut acks, mut installs) = (0u64, 0u64);
    for seed in args.first..args.first + args.seeds {
        let report = run(&config(seed, args.trace));
        steps += report.steps;
        digest = (digest ^ report.digest)
            .wrapping_mul(0x100_0000_01b3)
            .rotate_left(17);
        deliveries += report.deliveries;
        acks += report.log_acks;
        installs += report.log_installs;
        worst_recovery = worst_recovery.max(report.recovery.unwrap_or_default());
        let failed = !report.violations.is_empty() || report.liveness_failure.is_some();
        if !report.violations.is_empty() {
            violations += 1;
            let mut seen: Vec<String> = report.violations.iter().map(|v| kind_of(v)).collect();
            seen.sort_unstable();
            seen.dedup();
            for k in seen {
                *kinds.entry(k).or_default() += 1;
            }
        }
        if report.liveness_failure.is_some() {
            liveness += 1;
        }
        if failed && shown < 3 && !args.quiet {
            shown += 1;
            // Replay the seed with tracing on: the run is deterministic.
            let traced = if report.trace.is_empty() {
                run(&config(seed, true))
            } else {
                report.clone()
            };
            println!("seed {seed} FAILED");
            for v in &report.violations {
                println!("  violation: {v}");
            }
            if let Some(l) = &report.liveness_failure {
                println!("  liveness: {l}");
            }
            println!("  last steps:");
            for line in traced
                .trace
                .iter()
                .rev()
                .take(if args.seeds == 1 { usize::MAX } else { 25 })
                .rev()
            {
                println!("    {line}");
            }
            println!("  replay: {}", replay(seed));
        } else if args.trace && args.seeds == 1 {
            for line in &report.trace {
                println!("  {line}");
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "nodes={}{} rho={} unsafe={} worst_recovery={:?} liveness_bound={:?} deliveries={} rate={:.0}/s elapsed={:.1}s",
        args.nodes,
        if args.split { " (split)" } else { "" },
        args.rho,
        args.unsafe_rule.map_or("none", UnsafeRule::name),
        worst_recovery,
        liveness_bound(SimConfig::new(0, args.nodes).lease_duration, args.rho),
        deliveries,
        deliveries as f64 / secs.max(1e-9),
        secs
    );
    if args.log && !args.split {
        println!("log: appends acknowledged={acks} snapshots installed={installs}");
    }
    if args.digest {
        println!("digest={digest:016x}");
    }
    if !kinds.is_empty() {
        let list: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}={n}")).collect();
        println!("violating seeds by kind: {}", list.join(", "));
    }
    println!(
        "seeds={} steps={steps} violations={violations} liveness_failures={liveness}",
        args.seeds
    );
    ExitCode::SUCCESS
}

/// A violation's kind: its words before the first ':', without the time and the words
/// that name a node, a lease or a ballot (those with a digit).
fn kind_of(violation: &str) -> String {
    let head = violation.split(':').next().unwrap_or(violation);
    let words: Vec<&str> = head
        .split_whitespace()
        .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
        .collect();
    let end = words
        .iter()
        .rposition(|w| !matches!(*w, "of" | "on"))
        .map_or(0, |i| i + 1);
    words[..end].join(" ")
}
