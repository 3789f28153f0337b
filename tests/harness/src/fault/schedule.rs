//! The schedules: the short CI run (every fault kind, fixed seed) and the soak (random
//! faults for a duration).

use std::thread::{self};
use std::time::{Duration, Instant};

use super::cluster::{Cluster, Options};
use super::netns::{Netns, PARTITION_SHAPES};
use super::summary::Outcome;
use super::{RHO, now_ms};

/// The short run: every fault kind at least once, fixed order, one seed.
pub fn short_run(mut opts: Options, seed: u64) -> Result<Outcome, String> {
    let skip_net = if opts.netns {
        Netns::unavailable()
    } else {
        Some("disabled".into())
    };
    opts.netns = skip_net.is_none();
    // Clock-rate skew within rho on every node, for the whole run.
    let spread = [-0.9, 0.9, -0.5, 0.5, 0.0, -0.7, 0.7];
    opts.rates = (0..opts.nodes)
        .map(|i| Some(1.0 + RHO * spread[i % spread.len()]))
        .collect();
    let rates = opts.rates.clone();
    let lease = opts.lease_ms;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut c = Cluster::start(opts)?;
    c.note(format!(
        "seed {seed}, {} nodes, lease {lease} ms",
        c.opts.nodes
    ));
    c.note_fault(
        "clock-skew",
        format!(
            "clock-rate skew within rho={RHO} on every node for the whole run: {:?}",
            rates.iter().map(|r| r.unwrap_or(1.0)).collect::<Vec<_>>()
        ),
    );
    if let Some(why) = &skip_net {
        c.note(format!(
            "SKIPPED: partition scenarios (network namespaces unavailable: {why})"
        ));
    }
    let first = c
        .wait_master(Duration::from_secs(20))
        .ok_or("no first master within 20 s")?;
    c.note(format!("first master: node {first}"));
    thread::sleep(Duration::from_millis(500));
    let n = c.opts.nodes as u64;
    let master_or = |c: &Cluster, rng: &mut fastrand::Rng| c.master().unwrap_or(1 + rng.u64(..n));

    let m = master_or(&c, &mut rng);
    c.fault_kill(m, lease * 3 / 2)?;
    c.recover(700);
    let m = master_or(&c, &mut rng);
    let follower = (1..=n).find(|&i| i != m).unwrap_or(1);
    c.fault_kill(follower, lease)?;
    c.recover(700);
    let m = master_or(&c, &mut rng);
    c.fault_pause(m, lease / 2);
    c.recover(700);
    let m = master_or(&c, &mut rng);
    c.fault_pause(m, lease * 5);
    c.recover(700);
    if c.net.is_some() {
        for shape in 0..PARTITION_SHAPES {
            let m = master_or(&c, &mut rng);
            c.fault_partition(shape, m, lease * 5 / 2, &mut rng)?;
            c.recover(700);
        }
    }
    // Two faults at once: pause the master while a follower is dead.
    let m = master_or(&c, &mut rng);
    let other = (1..=n).rev().find(|&i| i != m).unwrap_or(1);
    c.kill(other);
    c.note(format!("node {other} killed for a combined fault"));
    let t = now_ms();
    c.fault_pause(m, lease * 2);
    c.restart(other)?;
    if let Some(f) = c.faults.last_mut() {
        f.desc = format!("{} while node {other} is dead", f.desc);
        f.start = f.start.min(t);
    }
    c.recover(700);
    let title = format!(
        "gen-paxos fault test: short run, seed {seed}, {n} nodes, lease {lease} ms{}",
        if skip_net.is_some() {
            " (partitions SKIPPED)"
        } else {
            ""
        }
    );
    Ok(c.finish(&title))
}

/// The soak: random faults every few seconds for `duration`.
pub fn soak(mut opts: Options, seed: u64, duration: Duration) -> Result<Outcome, String> {
    let skip_net = if opts.netns {
        Netns::unavailable()
    } else {
        Some("disabled".into())
    };
    opts.netns = skip_net.is_none();
    let mut rng = fastrand::Rng::with_seed(seed);
    opts.rates = (0..opts.nodes)
        .map(|_| Some(1.0 + (-0.9 + (0.9 - -0.9) * rng.f64()) * RHO))
        .collect();
    let rates = opts.rates.clone();
    let lease = opts.lease_ms;
    let n = opts.nodes as u64;
    let mut c = Cluster::start(opts)?;
    c.note(format!(
        "soak: seed {seed}, {n} nodes, lease {lease} ms, duration {duration:?}"
    ));
    c.note_fault(
        "clock-skew",
        format!(
            "clock-rate skew within rho={RHO} on every node: {:?}",
            rates
                .iter()
                .map(|r| format!("{:.5}", r.unwrap_or(1.0)))
                .collect::<Vec<_>>()
        ),
    );
    if let Some(why) = &skip_net {
        c.note(format!(
            "SKIPPED: partition faults (network namespaces unavailable: {why})"
        ));
    }
    c.wait_master(Duration::from_secs(20))
        .ok_or("no first master within 20 s")?;
    let until = Instant::now() + duration;
    while Instant::now() < until {
        let m = c.master().unwrap_or(1 + rng.u64(..n));
        let target = if rng.u64(..3) == 0 {
            1 + rng.u64(..n)
        } else {
            m
        };
        let kinds = if c.net.is_some() { 3 } else { 2 };
        match rng.u64(..kinds) {
            0 => {
                let down = lease / 2 + rng.u64(..lease * 3);
                c.fault_kill(target, down)?;
            }
            1 => {
                let ms = ((0.5 + (5.0 - 0.5) * rng.f64()) * lease as f64) as u64;
                c.fault_pause(target, ms);
            }
            _ => {
                let shape = rng.u64(..PARTITION_SHAPES as u64) as usize;
                let ms = lease + rng.u64(..lease * 4);
                c.fault_partition(shape, target, ms, &mut rng)?;
            }
        }
        c.recover(500 + rng.u64(..2500));
    }
    let title = format!(
        "gen-paxos fault test: soak, seed {seed}, {n} nodes, lease {lease} ms, {:.0} min{}",
        duration.as_secs_f64() / 60.0,
        if skip_net.is_some() {
            " (partitions SKIPPED)"
        } else {
            ""
        }
    );
    Ok(c.finish(&title))
}
