//! The fault-test soak: a cluster of real `gen-paxos node` processes under random faults
//! (SIGKILL and restart, SIGSTOP pauses of 0.5x to 5x the lease, network partitions of
//! every shape, clock-rate skew within rho) every few seconds, with a fenced workload; then
//! the checker and a timeline picture. The harness is `tests/harness/src/fault`; the short run
//! is `cargo test --test fault_injection`.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example faults -- --duration 30m [--seed N] [--nodes 5]
//!     [--lease 1s] [--out DIR] [--bin target/release/gen-paxos] [--no-netns]
//! ```
//!
//! A new seed each run unless given; it is printed first. Partitions need root, `ip` and
//! `nft` (else SKIPPED). Writes `summary.txt`, `timeline.svg`, `events.jsonl`, `store.log`
//! to `--out` (default `target/faults-<seed>`); exits 1 on any violation.

use gen_paxos_harness::fault;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut duration = Duration::from_secs(30 * 60);
    let mut seed = None;
    let mut nodes = 5;
    let mut lease = Duration::from_secs(1);
    let mut out = None;
    let mut bin = None;
    let mut netns = true;
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--duration" => {
                duration = gen_paxos_election::parse_duration(&value()).unwrap_or(duration)
            }
            "--seed" => seed = value().parse().ok(),
            "--nodes" => nodes = value().parse().unwrap_or(nodes),
            "--lease" => lease = gen_paxos_election::parse_duration(&value()).unwrap_or(lease),
            "--out" => out = Some(PathBuf::from(value())),
            "--bin" => bin = Some(PathBuf::from(value())),
            "--no-netns" => netns = false,
            other => {
                eprintln!("unknown option {other:?}; see the doc comment of examples/faults.rs");
                return ExitCode::from(2);
            }
        }
    }
    let seed = seed.unwrap_or_else(|| fault::now_ms() as u64 ^ u64::from(std::process::id()));
    println!("faults soak: seed {seed} (replay with --seed {seed})");
    // Default binary: target/<profile>/gen-paxos, next to target/<profile>/examples/.
    let bin = bin.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.parent()?.join("gen-paxos")))
            .unwrap_or_else(|| PathBuf::from("target/release/gen-paxos"))
    });
    if !bin.exists() {
        eprintln!(
            "{} not found: run `cargo build --release` first or pass --bin",
            bin.display()
        );
        return ExitCode::from(2);
    }
    let opts = fault::Options {
        bin,
        nodes,
        lease_ms: lease.as_millis() as u64,
        rates: vec![],
        priorities: vec![],
        out: out.unwrap_or_else(|| PathBuf::from(format!("target/faults-{seed}"))),
        netns,
        run: None,
    };
    match fault::soak(opts, seed, duration) {
        Ok(outcome) => {
            println!("{}", outcome.summary);
            println!("timeline: {}", outcome.svg.display());
            if outcome.report.violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("faults: {e}");
            ExitCode::FAILURE
        }
    }
}
