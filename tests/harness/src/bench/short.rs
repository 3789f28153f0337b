//! Short leases on a busy machine: failover after SIGKILL of the master and handover by
//! `resign` at leases of tens of milliseconds, while CPU-bound processes compete for the
//! cores; then a quiet window in which every master change is one no fault caused.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use super::gp::{self, FailoverTrial};
use super::util::wall_ms;

/// Processes that keep a core busy until dropped.
#[derive(Debug)]
pub struct Burners(Vec<Child>);

impl Burners {
    /// `n` busy loops (`sh -c 'while :; do :; done'`), at the same priority as the nodes.
    pub fn start(n: usize) -> Result<Burners> {
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            let child = Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start a CPU-bound competitor")?;
            children.push(child);
        }
        Ok(Burners(children))
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether this process may run a program under SCHED_FIFO at `priority` (`chrt -f`
/// needs CAP_SYS_NICE or an RLIMIT_RTPRIO that allows it).
pub fn realtime_permitted(priority: u8) -> bool {
    Command::new("chrt")
        .args(["-f", &priority.to_string(), "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One lease duration's results.
#[derive(Debug, Default)]
pub struct ShortRun {
    pub lease_ms: f64,
    pub competitors: usize,
    /// The nodes ran under SCHED_FIFO at this priority.
    pub realtime: Option<u8>,
    pub failover: Vec<FailoverTrial>,
    pub resign: Vec<f64>,
    /// Length of the quiet window (s) and the master changes seen in it.
    pub quiet_secs: f64,
    pub spurious: Option<usize>,
    pub errors: Vec<String>,
}

/// The section's settings for one lease duration.
#[derive(Debug, Clone)]
pub struct ShortSettings {
    pub lease: Duration,
    /// Failover and resign trials.
    pub trials: usize,
    /// The quiet window.
    pub quiet: Duration,
    /// CPU-bound processes on the machine meanwhile.
    pub competitors: usize,
    /// Run the nodes under SCHED_FIFO at this priority (`chrt -f`).
    pub realtime: Option<u8>,
}

/// Runs the trials with `settings.competitors` busy loops on the machine.
pub fn run(bin: &Path, work: &Path, settings: &ShortSettings, rng: &mut fastrand::Rng) -> ShortRun {
    let mut out = ShortRun {
        lease_ms: settings.lease.as_secs_f64() * 1000.0,
        competitors: settings.competitors,
        realtime: settings.realtime,
        quiet_secs: settings.quiet.as_secs_f64(),
        ..ShortRun::default()
    };
    if let Err(e) = trials_at(bin, work, settings, rng, &mut out) {
        out.errors.push(format!("{e:#}"));
    }
    out
}

fn trials_at(
    bin: &Path,
    work: &Path,
    settings: &ShortSettings,
    rng: &mut fastrand::Rng,
    out: &mut ShortRun,
) -> Result<()> {
    let (lease, trials) = (settings.lease, settings.trials);
    let setup = gp::Setup {
        bin: bin.to_path_buf(),
        lease,
        priority: None,
        config: None,
        kv: false,
        metrics: false,
        worker_threads: None,
        realtime: settings.realtime,
    };
    let dir = work.join(format!(
        "short-{}ms{}",
        lease.as_millis(),
        if settings.realtime.is_some() {
            "-rt"
        } else {
            ""
        }
    ));
    let mut cluster = gp::Cluster::new(setup, &dir, false)?;
    let _burners = Burners::start(settings.competitors)?;
    cluster.start_all()?;
    for i in 0..trials {
        match cluster.failover(rng) {
            Ok(t) => out.failover.push(t),
            Err(e) => out.errors.push(format!("failover trial {i}: {e:#}")),
        }
    }
    for i in 0..trials {
        match cluster.resign(rng) {
            Ok(ms) => out.resign.push(ms),
            Err(e) => out.errors.push(format!("resign trial {i}: {e:#}")),
        }
    }
    // The quiet window: after the last trial settles, no fault at all.
    std::thread::sleep(lease * 4);
    let from = wall_ms();
    std::thread::sleep(settings.quiet);
    out.spurious = Some(cluster.elections_between(from, wall_ms()));
    cluster.stop_all();
    Ok(())
}
