//! `gen-paxos simulate`: runs the seeded fault simulator of `paxos-core` and prints what it
//! checked.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use gen_paxos_core::sim::{SimConfig, liveness_bound, run as simulate};

/// Arguments of `gen-paxos simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Seeds to simulate.
    #[arg(long, default_value_t = 500)]
    pub seeds: u64,
    /// Voters in the simulated cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
}

/// Runs the simulator; fails if any seed broke an invariant or did not recover.
pub fn run(args: &SimulateArgs) -> Result<()> {
    if !(1..=gen_paxos_core::MAX_VOTERS).contains(&args.nodes) {
        bail!(
            "--nodes must be between 1 and {}",
            gen_paxos_core::MAX_VOTERS
        );
    }
    let example = SimConfig::new(0, args.nodes);
    outln!(
        "simulating {} seeds of a {}-voter cluster, lease {:?}, clock-rate bound {}, {:?} of faults each",
        args.seeds,
        args.nodes,
        example.lease_duration,
        example.rho,
        example.fault_phase
    );
    let (mut elections, mut deliveries, mut violations, mut liveness) = (0u64, 0u64, 0u64, 0u64);
    let mut worst = Duration::ZERO;
    for seed in 0..args.seeds {
        let report = simulate(&SimConfig::new(seed, args.nodes));
        elections += report.elections;
        deliveries += report.deliveries;
        worst = worst.max(report.recovery.unwrap_or_default());
        for v in &report.violations {
            outln!("seed {seed}: VIOLATION {v}");
        }
        if let Some(l) = &report.liveness_failure {
            outln!("seed {seed}: liveness failure: {l}");
        }
        violations += u64::from(!report.violations.is_empty());
        liveness += u64::from(report.liveness_failure.is_some());
    }
    outln!("elections (changes of master): {elections}");
    outln!("protocol messages delivered:   {deliveries}");
    outln!(
        "worst recovery after healing:  {worst:?} (bound {:?})",
        liveness_bound(example.lease_duration, example.rho)
    );
    outln!(
        "seeds={} violations={violations} liveness_failures={liveness}",
        args.seeds
    );
    if violations + liveness > 0 {
        bail!("the simulator found {violations} violating and {liveness} non-recovering seeds");
    }
    Ok(())
}
