//! Core speed: three `gen_paxos_core::Node`s in one thread, no network (every batch delivered
//! at once), many leases over simulated time; the replicated log's appends per second
//! (`gen_paxos_core::sim::LogBench`); and the fault simulator's delivery rate, lease-only
//! and with the log and `ask` on.

use std::time::{Duration, Instant};

use anyhow::Result;
use gen_paxos_core::{Config, Incarnation, LeaseName, Node, NodeId, Timestamp};

use super::util::{cpu_ticks, ticks_per_second};

#[derive(Debug, Clone, Default)]
pub struct CoreResult {
    pub leases: usize,
    pub simulated_secs: f64,
    pub cpu_secs: f64,
    pub messages: u64,
    pub renewals: u64,
    pub elections: u64,
    pub sim_seeds: u64,
    pub sim_cpu_secs: f64,
    pub sim_deliveries: u64,
    pub sim_steps: u64,
    pub sim_violations: u64,
    /// Appends acknowledged and the CPU they took, in batches of `log_batch`, then one at
    /// a time.
    pub log_batch: u64,
    pub log_appends: u64,
    pub log_cpu_secs: f64,
    pub log_single_appends: u64,
    pub log_single_cpu_secs: f64,
    /// The simulator with the log and `ask` on.
    pub sim_log_seeds: u64,
    pub sim_log_cpu_secs: f64,
    pub sim_log_deliveries: u64,
    pub sim_log_steps: u64,
    pub sim_log_violations: u64,
}

fn thread_cpu() -> f64 {
    cpu_ticks("/proc/thread-self/stat").unwrap_or(0) as f64 / ticks_per_second()
}

pub fn run(leases: usize, simulated: Duration, sim_budget: Duration) -> Result<CoreResult> {
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let lease = Duration::from_secs(2);
    let mut nodes = ids
        .iter()
        .map(|&id| {
            let mut config = Config::new(id, ids.clone());
            config.set_lease_duration(lease);
            Node::new(config, Timestamp::ZERO, Incarnation(id.0 * 7919), 1, id.0)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<LeaseName> = (0..leases)
        .map(|i| LeaseName::new(format!("lease-{i:06}")))
        .collect::<Result<_, _>>()?;
    for node in &mut nodes {
        for name in &names {
            node.join(Timestamp::ZERO, name.clone(), Some(0))?;
        }
    }
    let end = Timestamp::ZERO + simulated;
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let mut now = Timestamp::ZERO;
    let mut queue = Vec::new();
    loop {
        // Deliver everything until the cluster is quiet at this instant.
        loop {
            for (i, node) in nodes.iter_mut().enumerate() {
                while node.poll_event().is_some() {}
                while let Some(t) = node.poll_transmit() {
                    queue.push((t.to, ids[i], t.messages));
                }
                // Hellos only settle the peers' fingerprints (all equal here).
                while node.poll_hello().is_some() {}
            }
            if queue.is_empty() {
                break;
            }
            for (to, from, batch) in queue.drain(..) {
                if let Some(node) = nodes.iter_mut().find(|n| n.id() == to) {
                    let digest = node.fingerprint_digest();
                    node.handle_message(now, from, digest, batch);
                }
            }
        }
        let Some(next) = nodes.iter().filter_map(Node::poll_timeout).min() else {
            break;
        };
        if next > end {
            break;
        }
        now = now.max(next);
        for node in &mut nodes {
            if node.poll_timeout().is_some_and(|t| t <= now) {
                node.handle_timeout(now);
            }
        }
    }
    let cpu = (thread_cpu() - cpu0).max(1e-3);
    let _ = wall0;
    let stats: Vec<_> = nodes.iter().map(Node::stats).collect();
    let mut r = CoreResult {
        leases,
        simulated_secs: simulated.as_secs_f64(),
        cpu_secs: cpu,
        messages: stats.iter().map(|s| s.messages_received).sum(),
        renewals: stats.iter().map(|s| s.renewals).sum(),
        elections: stats.iter().map(|s| s.elections).sum(),
        ..CoreResult::default()
    };

    // The simulator: seeds until the budget is spent.
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let mut seed = 1u64;
    while wall0.elapsed() < sim_budget {
        let report = gen_paxos_core::sim::run(&gen_paxos_core::sim::SimConfig::new(seed, 3));
        r.sim_seeds += 1;
        r.sim_deliveries += report.deliveries;
        r.sim_steps += report.steps;
        r.sim_violations += u64::from(!report.violations.is_empty());
        seed += 1;
    }
    r.sim_cpu_secs = (thread_cpu() - cpu0).max(1e-3);

    // The simulator with the log and `ask` on, for the same budget.
    let (cpu0, wall0) = (thread_cpu(), Instant::now());
    let mut seed = 1u64;
    while wall0.elapsed() < sim_budget {
        let mut config = gen_paxos_core::sim::SimConfig::new(seed, 3);
        config.log = true;
        let report = gen_paxos_core::sim::run(&config);
        r.sim_log_seeds += 1;
        r.sim_log_deliveries += report.deliveries;
        r.sim_log_steps += report.steps;
        r.sim_log_violations += u64::from(!report.violations.is_empty());
        seed += 1;
    }
    r.sim_log_cpu_secs = (thread_cpu() - cpu0).max(1e-3);

    // The log's appends: batched, then one at a time.
    r.log_batch = 256;
    let mut bench = gen_paxos_core::sim::LogBench::new().map_err(anyhow::Error::msg)?;
    let cpu0 = thread_cpu();
    r.log_appends = bench.run(2_000_000, r.log_batch, 16);
    r.log_cpu_secs = (thread_cpu() - cpu0).max(1e-3);
    let mut bench = gen_paxos_core::sim::LogBench::new().map_err(anyhow::Error::msg)?;
    let cpu0 = thread_cpu();
    r.log_single_appends = bench.run(300_000, 1, 16);
    r.log_single_cpu_secs = (thread_cpu() - cpu0).max(1e-3);
    Ok(r)
}
