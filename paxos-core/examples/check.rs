//! Exhaustive, bounded model checking of the real `paxos_core::Node` (see
//! `gen_paxos_core::sim::check` for the model).
//!
//! ```text
//! cargo run --release -p gen-paxos-core --example check -- --nodes 3 --depth 12
//! cargo run --release -p gen-paxos-core --example check -- --unsafe no-quarantine
//! cargo run --release -p gen-paxos-core --example check -- --depth 16 --crashes 2 --ticks 2
//! ```
//!
//! The last line is always `states=<N> depth=<D> violations=<V>`: N distinct states, D the
//! longest history explored, V = 1 when a counterexample was found (it ends the run and is
//! printed step by step and as a test to paste). Exit status 1 on a violation, 2 on bad
//! arguments.

// Only this driver times itself, to report states per second; the crate's clock ban is
// lifted here, as in `examples/sim.rs`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gen_paxos_core::UnsafeRule;
use gen_paxos_core::sim::check::{CheckConfig, check};

fn usage() -> String {
    let rules: Vec<&str> = UnsafeRule::ALL.iter().map(|(n, _)| *n).collect();
    format!(
        "usage: check [--nodes N] [--depth D] [--unsafe RULE] [--crashes K] [--duplicates K]\n\
         \x20            [--ticks K] [--resigns K] [--fires K] [--tick-ms MS] [--retransmit-ms MS] [--lease-ms MS]\n\
         \x20            [--rho R] [--clocks U,U,.. | --clock U1,U2,..] [--priorities P,P,..] [--link-capacity K] [--cut A-B,..] [--opening 'STEP;STEP;..'] [--max-states N] [--test-name NAME] [--deepen] [--no-token-order]\n\
         \x20            [--log [--appends K] [--asks K] [--gets K] [--forgets K] [--compactions K] [--instant-sync]]\n\
         RULE is one of: {}\n\
         --clocks: each host's clock runs at 1 + rho*U for every U listed, in every combination (default -1,1)\n\
         --deepen: search depth 1, 2, .. up to --depth, stopping at the first violation (a shortest one)\n\
         --clock: one initial state, host i's clock at 1 + rho*Ui\n\
         --no-token-order: check only exclusivity and quorum backing (look past token regressions)\n\
         --cut: links that are down, such as 1-2,2-3: every message on them is lost (hellos pass)\n\
         --opening: the history starts with these steps, each the first enabled one whose trace line contains the text\n\
         \x20 (such as 'node 1 timer fires;deliver node 1 -> node 2'); --depth counts the steps after them\n\
         --link-capacity: each link keeps its newest K messages in flight, older ones are lost (default: unbounded)\n\
         --log: the replicated log on the lease and ask on key-0, with disks, client steps and the log's properties\n\
         \x20 (budgets: --appends 1, --asks 0, --gets 0, --forgets 0, --compactions 0; --instant-sync: writes are synced in the step that made them)\n\
         --priorities: one per node, 0 to 3, or '-' for a learner only (default 0 each)",
        rules.join(", ")
    )
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e| format!("{flag} {v:?}: {e}"))
}

struct Args {
    config: CheckConfig,
    name: String,
    /// Search depth 1, 2, ... up to `--depth`, stopping at the first violation (its
    /// counterexample is then a shortest one).
    deepen: bool,
}

fn parse() -> Result<Args, String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // --nodes first: the defaults depend on it.
    let nodes = match args.iter().position(|a| a == "--nodes") {
        Some(i) => {
            let v = args.get(i + 1).ok_or("--nodes needs a value")?.clone();
            args.drain(i..i + 2);
            number::<usize>("--nodes", &v)?
        }
        None => 3,
    };
    if !(1..=5).contains(&nodes) {
        return Err("--nodes must be 1 to 5".into());
    }
    let mut c = CheckConfig::new(nodes);
    let mut name = String::from("counterexample");
    let mut deepen = false;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(usage());
        }
        if flag == "--deepen" {
            deepen = true;
            continue;
        }
        if flag == "--no-token-order" {
            c.token_order = false;
            continue;
        }
        if flag == "--log" {
            c.log = true;
            continue;
        }
        if flag == "--instant-sync" {
            c.instant_sync = true;
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        match flag.as_str() {
            "--depth" => c.depth = number("--depth", &v)?,
            "--crashes" => c.crashes = number("--crashes", &v)?,
            "--duplicates" => c.duplicates = number("--duplicates", &v)?,
            "--ticks" => c.ticks = number("--ticks", &v)?,
            "--resigns" => c.resigns = number("--resigns", &v)?,
            "--fires" => c.fires = Some(number("--fires", &v)?),
            "--appends" => c.appends = number("--appends", &v)?,
            "--asks" => c.asks = number("--asks", &v)?,
            "--gets" => c.gets = number("--gets", &v)?,
            "--forgets" => c.forgets = number("--forgets", &v)?,
            "--compactions" => c.compactions = number("--compactions", &v)?,
            "--tick-ms" => c.tick = Duration::from_millis(number("--tick-ms", &v)?),
            "--retransmit-ms" => {
                c.retransmit = Duration::from_millis(number("--retransmit-ms", &v)?)
            }
            "--lease-ms" => c.lease_duration = Duration::from_millis(number("--lease-ms", &v)?),
            "--rho" => c.rho = number("--rho", &v)?,
            "--link-capacity" => c.link_capacity = Some(number("--link-capacity", &v)?),
            "--cut" => {
                for link in v.split(',') {
                    let ends = link
                        .split_once('-')
                        .ok_or("--cut takes links such as 1-2,2-3")?;
                    let a: u64 = number("--cut", ends.0)?;
                    let b: u64 = number("--cut", ends.1)?;
                    if a == b
                        || !(1..=nodes as u64).contains(&a)
                        || !(1..=nodes as u64).contains(&b)
                    {
                        return Err(format!(
                            "--cut {link}: two different nodes from 1 to {nodes}"
                        ));
                    }
                    c.cut.push((a, b));
                }
            }
            "--opening" => c.opening = v.split(';').map(str::to_string).collect(),
            "--max-states" => c.max_states = Some(number("--max-states", &v)?),
            "--test-name" => name = v,
            "--clocks" => {
                c.clock_choices = v
                    .split(',')
                    .map(|u| number::<f64>("--clocks", u))
                    .collect::<Result<_, _>>()?;
                if c.clock_choices.iter().any(|u| !(-1.0..=1.0).contains(u)) {
                    return Err("--clocks: each choice must be within [-1, 1]".into());
                }
            }
            "--clock" => {
                let clock = v
                    .split(',')
                    .map(|u| number::<f64>("--clock", u))
                    .collect::<Result<Vec<f64>, _>>()?;
                if clock.len() != nodes || clock.iter().any(|u| !(-1.0..=1.0).contains(u)) {
                    return Err(format!("--clock needs {nodes} choices within [-1, 1]"));
                }
                c.clock = Some(clock);
            }
            "--priorities" => {
                c.priorities = v
                    .split(',')
                    .map(|p| match p {
                        "-" => Ok(None),
                        p => number::<u8>("--priorities", p).map(Some),
                    })
                    .collect::<Result<_, _>>()?;
                if c.priorities.len() != nodes {
                    return Err(format!("--priorities needs {nodes} entries"));
                }
            }
            "--unsafe" => {
                c.unsafe_rule = Some(
                    UnsafeRule::from_name(&v)
                        .ok_or_else(|| format!("unknown rule {v:?}\n{}", usage()))?,
                )
            }
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    if c.depth > 200 {
        return Err("--depth must be at most 200".into());
    }
    if !(c.rho.is_finite() && (0.0..0.5).contains(&c.rho)) {
        return Err("--rho must be in [0, 0.5)".into());
    }
    if c.clock_choices.is_empty() {
        return Err("--clocks needs at least one choice".into());
    }
    if c.lease_duration < Duration::from_millis(20) || c.retransmit.is_zero() || c.tick.is_zero() {
        return Err("--lease-ms must be at least 20, --retransmit-ms and --tick-ms above 0".into());
    }
    Ok(Args {
        config: c,
        name,
        deepen,
    })
}

fn main() -> ExitCode {
    let Args {
        mut config,
        name,
        deepen,
    } = match parse() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let bound = config.depth;
    let mut report;
    let mut depth = if deepen { 1 } else { bound };
    loop {
        config.depth = depth;
        report = check(&config);
        if deepen {
            println!(
                "depth {depth}: states={} transitions={} seconds={:.1}",
                report.states,
                report.transitions,
                started.elapsed().as_secs_f64()
            );
        }
        if report.counterexample.is_some() || depth >= bound || !report.complete {
            break;
        }
        depth += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "initial={} transitions={} pruned={} complete={} seconds={secs:.1} states_per_second={:.0}",
        report.initial_states,
        report.transitions,
        report.pruned,
        report.complete,
        report.states as f64 / secs.max(1e-9)
    );
    let violations = u32::from(report.counterexample.is_some());
    if let Some(cx) = &report.counterexample {
        if cx.trace.is_empty() {
            // Refused before any step (a bad configuration or opening): nothing to replay.
            println!("{}", cx.violation);
        } else {
            println!("counterexample ({} steps):", cx.actions.len());
            for line in &cx.trace {
                println!("  {line}");
            }
            println!("\nreplay it as a test:\n\n{}", cx.as_test(&config, &name));
        }
    }
    println!(
        "states={} depth={} violations={violations}",
        report.states, report.depth
    );
    if violations > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
