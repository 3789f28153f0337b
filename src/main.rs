//! The `gen-paxos` command-line tool.
//!
//! Until the CLI issue lands (certificates, real nodes over QUIC, status), `demo` is a
//! placeholder: it runs the deterministic PaxosLease simulator of `paxos-core` and prints
//! what it checked.

use std::process::ExitCode;

use paxos_core::sim::{SimConfig, liveness_bound, run};

const USAGE: &str = "usage: gen-paxos demo [--seeds N] [--nodes K]

demo   (placeholder until the CLI issue) run the seeded fault simulator: N seeds of a
       K-voter cluster under crashes, pauses, partitions, loss and clock drift, checking
       that no two nodes ever hold a lease at the same instant";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => match parse_demo(&args[1..]) {
            Ok((seeds, nodes)) => demo(seeds, nodes),
            Err(e) => {
                eprintln!("gen-paxos: {e}\n{USAGE}");
                ExitCode::from(2)
            }
        },
        Some("-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("gen-paxos: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse_demo(args: &[String]) -> Result<(u64, usize), String> {
    let (mut seeds, mut nodes) = (500u64, 3usize);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seeds" => {
                seeds = value
                    .parse()
                    .map_err(|_| format!("--seeds: not a number: {value:?}"))?
            }
            "--nodes" => {
                nodes = value
                    .parse()
                    .map_err(|_| format!("--nodes: not a number: {value:?}"))?
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if !(1..=paxos_core::MAX_VOTERS).contains(&nodes) {
        return Err(format!(
            "--nodes must be between 1 and {}",
            paxos_core::MAX_VOTERS
        ));
    }
    Ok((seeds, nodes))
}

fn demo(seeds: u64, nodes: usize) -> ExitCode {
    let example = SimConfig::new(0, nodes);
    println!("gen-paxos demo (placeholder: the QUIC cluster demo arrives with the CLI issue)");
    println!(
        "simulating {seeds} seeds of a {nodes}-voter cluster, lease {:?}, clock-rate bound {}, {:?} of faults each",
        example.lease_duration, example.rho, example.fault_phase
    );
    let (mut elections, mut deliveries, mut violations, mut liveness) = (0u64, 0u64, 0u64, 0u64);
    let mut worst = std::time::Duration::ZERO;
    for seed in 0..seeds {
        let report = run(&SimConfig::new(seed, nodes));
        elections += report.elections;
        deliveries += report.deliveries;
        worst = worst.max(report.recovery.unwrap_or_default());
        for v in &report.violations {
            println!("seed {seed}: VIOLATION {v}");
        }
        if let Some(l) = &report.liveness_failure {
            println!("seed {seed}: liveness failure: {l}");
        }
        violations += u64::from(!report.violations.is_empty());
        liveness += u64::from(report.liveness_failure.is_some());
    }
    println!("elections (changes of master): {elections}");
    println!("protocol messages delivered:   {deliveries}");
    println!(
        "worst recovery after healing:  {worst:?} (bound {:?})",
        liveness_bound(example.lease_duration, example.rho)
    );
    println!("seeds={seeds} violations={violations} liveness_failures={liveness}");
    if violations + liveness == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
