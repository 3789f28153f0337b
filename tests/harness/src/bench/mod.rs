//! The benchmark harness: gen-paxos side by side with etcd on this machine.
//!
//! ```sh
//! cargo run --release --example bench              # everything, about 15 minutes; writes BENCHMARKS.md
//! cargo run --release --example bench -- --quick   # about 6 minutes; writes target/bench/BENCHMARKS-quick.md
//! cargo run --release --example bench -- --help
//! ```
//!
//! Sections: failover after SIGKILL of the master, graceful handover, cold start (real
//! `gen-paxos node` processes over QUIC on loopback), acquire latency (in-process library
//! client over QUIC), 10,000 and 100,000 leases, the same scenarios on etcd 3.4, the
//! protocol core's speed, and the replicated key-value store beside etcd's. Every child process is killed when the harness exits, also on
//! error. Never part of `cargo test`.

mod acquire;
mod core_speed;
mod etcd;
mod etcd_kv;
mod gp;
mod kv;
mod report;
mod short;
mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use rustix::process::Signal;

use self::report::{EtcdRun, GpRun, Report};
use self::util::{command_output, loadavg, wall_ms};

/// Benchmarks gen-paxos (and etcd, for comparison) on this machine and writes a Markdown
/// report with SVG charts.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Failover trials (SIGKILL of the master) per gen-paxos configuration and for etcd.
    #[arg(long, default_value_t = 30)]
    trials: usize,
    /// Handover trials (resign, SIGTERM; etcd: SIGINT) per configuration.
    #[arg(long, default_value_t = 30)]
    handover_trials: usize,
    /// Cold starts per configuration.
    #[arg(long, default_value_t = 5)]
    cold_starts: usize,
    /// Acquisitions per acquire-latency variant.
    #[arg(long, default_value_t = 300)]
    acquires: usize,
    /// Leases of the scale run (lease 2 s).
    #[arg(long, default_value_t = 10_000)]
    scale_leases: usize,
    /// Length of the scale run's measurement window, in seconds.
    #[arg(long, default_value_t = 60)]
    scale_secs: u64,
    /// Leases of the second, larger scale run ("what happens"); 0 skips it.
    #[arg(long, default_value_t = 100_000)]
    big_leases: usize,
    /// Length of the larger runs' windows, in seconds.
    #[arg(long, default_value_t = 30)]
    big_secs: u64,
    /// Leases of the largest run, at lease 10 s (issue 17: 300,000 held); 0 skips it.
    #[arg(long, default_value_t = 300_000)]
    huge_leases: usize,
    /// Length of etcd's 10,000-lease window, in seconds.
    #[arg(long, default_value_t = 30)]
    etcd_scale_secs: u64,
    /// Length of each load of the key-value section, in seconds.
    #[arg(long, default_value_t = 5)]
    kv_secs: u64,
    /// Failovers of the key-value store (SIGKILL of its master).
    #[arg(long, default_value_t = 20)]
    kv_trials: usize,
    /// Entries a stopped follower of the key-value store misses before it resumes; 0
    /// skips the catch-up.
    #[arg(long, default_value_t = 100_000)]
    catch_up_entries: u64,
    /// Short lease durations (ms) for the busy-machine section; empty skips it.
    #[arg(long, value_delimiter = ',', default_value = "50,20")]
    short_leases: Vec<u64>,
    /// Failover and resign trials per short lease.
    #[arg(long, default_value_t = 30)]
    short_trials: usize,
    /// The quiet window per short lease (no fault: every master change is spurious), in
    /// seconds (the 30-minute run: --quiet-secs 1800 --short-leases 50).
    #[arg(long, default_value_t = 60)]
    quiet_secs: u64,
    /// CPU-bound processes competing with the nodes during the short-lease section.
    #[arg(long, default_value_t = 2)]
    competitors: usize,
    /// Each short lease runs a second time with the nodes under the real-time policy
    /// SCHED_FIFO at this priority (`chrt -f`, what docs/short-leases.md recommends for
    /// leases under 100 ms on a busy machine); 0 runs the default policy only.
    #[arg(long, default_value_t = 10)]
    short_realtime: u8,
    /// Shorter everything: 10 trials, 3 cold starts, 100 acquires, 15 s windows, no
    /// 100,000-lease run; writes target/bench/BENCHMARKS-quick.md unless --out is given.
    #[arg(long)]
    quick: bool,
    /// Sections to skip (comma separated): gen-paxos, priority, acquire, scale, big
    /// (or one of its runs: big-2s, big-10s), huge (the 300,000-lease run), etcd, etcd-scale, core, kv, etcd-kv (etcd's side of the kv section), short.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// The scale runs renew in two round trips (`two_round_renewals = true`), to compare
    /// with one-round renewals (P7, the default).
    #[arg(long)]
    two_round_renewals: bool,
    /// The scale runs never shed load (`no_load_shedding = true`), to compare with
    /// shedding (the default).
    #[arg(long)]
    no_load_shedding: bool,
    /// The scale runs' nodes print a `renewed` line per renewal (their `--config` lists the
    /// leases and nothing else), as every node did before `quiet_renewals`: for side-by-side
    /// runs with older builds (`--gen-paxos`), which know no other setting; it overrides
    /// `--two-round-renewals` and `--no-load-shedding`.
    #[arg(long)]
    renewal_lines: bool,
    /// Do not apt-get install etcd if it is missing (its sections are then skipped).
    #[arg(long)]
    no_etcd_install: bool,
    /// The gen-paxos binary (default: build it with cargo, release profile).
    #[arg(long)]
    gen_paxos: Option<PathBuf>,
    /// Where to write the report (default BENCHMARKS.md at the repository root).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The repository's root (this crate lives in `tests/harness`).
pub(crate) fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map_or_else(|| here.to_path_buf(), Path::to_path_buf)
}

/// Builds `gen-paxos` (release) and returns its path.
fn gen_paxos_binary(args: &Args) -> Result<PathBuf> {
    if let Some(bin) = &args.gen_paxos {
        return Ok(bin.clone());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("bench: building gen-paxos (cargo build --release --bin gen-paxos)");
    let status = Command::new(cargo)
        .current_dir(repo_root())
        .args(["build", "--release", "--quiet", "--bin", "gen-paxos"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --release --bin gen-paxos failed");
    }
    let exe = std::env::current_exe()?;
    // target/release/examples/bench -> target/release/gen-paxos
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("gen-paxos"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| repo_root().join("target/release/gen-paxos"));
    if !bin.exists() {
        bail!("gen-paxos binary not found at {}", bin.display());
    }
    Ok(bin)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or("?".into(), |kib| {
            format!("{:.1} GiB", kib / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("PRETTY_NAME=")).map(|l| {
                l.trim_start_matches("PRETTY_NAME=")
                    .trim_matches('"')
                    .to_string()
            })
        })
        .unwrap_or_default();
    let rustc = command_output("rustc", &["--version"]).unwrap_or_default();
    format!("{cpu}, {cores} cores available, {mem} RAM; Linux {kernel} ({os}); {rustc}")
}

/// The benchmark's `main`: parses the arguments, runs, exits 1 on error.
pub fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(mut args: Args) -> Result<()> {
    if args.quick {
        args.trials = args.trials.min(10);
        args.handover_trials = args.handover_trials.min(10);
        args.cold_starts = args.cold_starts.min(3);
        args.acquires = args.acquires.min(100);
        args.scale_secs = args.scale_secs.min(15);
        args.etcd_scale_secs = args.etcd_scale_secs.min(15);
        args.big_leases = 0;
        args.huge_leases = 0;
        args.kv_secs = args.kv_secs.min(3);
        args.kv_trials = args.kv_trials.min(5);
        args.catch_up_entries = args.catch_up_entries.min(20_000);
        args.short_trials = args.short_trials.min(10);
        args.quiet_secs = args.quiet_secs.min(15);
    }
    let skip = |name: &str| args.skip.iter().any(|s| s == name);
    let out = args.out.clone().unwrap_or_else(|| {
        if args.quick {
            repo_root().join("target/bench/BENCHMARKS-quick.md")
        } else {
            repo_root().join("BENCHMARKS.md")
        }
    });
    let work = std::env::temp_dir().join(format!("gen-paxos-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let started = Instant::now();
    let mut report = Report {
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        machine: machine(),
        load_before: loadavg(),
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        commit: command_output(
            "git",
            &[
                "-C",
                &repo_root().to_string_lossy(),
                "rev-parse",
                "--short",
                "HEAD",
            ],
        )
        .unwrap_or_default(),
        ..Report::default()
    };
    let lease = Duration::from_secs(1);
    report.lease_ms = 1000.0;
    report.d_a_ms = gen_paxos_core::acceptor_duration(lease, 0.001).as_secs_f64() * 1000.0;
    let mut rng = fastrand::Rng::new();

    let bin = gen_paxos_binary(&args)?;
    eprintln!("bench: using {}", bin.display());
    report.load_after_build = loadavg();

    // 1-3: failover, handover and cold start, with real processes.
    if !skip("gen-paxos") {
        let mut configs: Vec<(String, Option<u8>)> =
            vec![("gen-paxos, default (priority 3)".into(), None)];
        if !skip("priority") {
            configs.push(("gen-paxos, --priority 0 on every node".into(), Some(0)));
        }
        for (label, priority) in configs {
            eprintln!("bench: {label}");
            let setup = gp::Setup {
                bin: bin.clone(),
                lease,
                priority,
                config: None,
                kv: false,
                metrics: false,
                worker_threads: None,
                realtime: None,
            };
            let dir = work.join(format!("gp-{}", priority.unwrap_or(3)));
            let mut run = GpRun {
                label,
                priority,
                ..GpRun::default()
            };
            match gp::Cluster::new(setup, &dir, false) {
                Ok(mut cluster) => {
                    gp_trials(&mut cluster, &args, &mut rng, &mut run);
                    cluster.stop_all();
                }
                Err(e) => run.errors.push(format!("{e:#}")),
            }
            report.gp.push(run);
        }
    }

    // 4: acquire latency.
    if !skip("acquire") {
        eprintln!("bench: acquire latency");
        let variants = vec![
            acquire::Variant {
                label: "priority 3 (default), default jitter".into(),
                priority: 3,
                jitter: None,
            },
            acquire::Variant {
                label: "priority 0, default jitter".into(),
                priority: 0,
                jitter: None,
            },
            acquire::Variant {
                label: "priority 3, jitter 0".into(),
                priority: 3,
                jitter: Some(Duration::ZERO),
            },
        ];
        report.acquire = Some(
            acquire::run(&work.join("acquire-certs"), lease, args.acquires, &variants)
                .map_err(|e| format!("{e:#}")),
        );
    }

    // 5: scale.
    if !skip("scale") {
        let mut runs = vec![(args.scale_leases, args.scale_secs, 30u64, 2u64)];
        if args.big_leases > 0 && !skip("big") {
            // At lease 2 s, "what happens"; at 10 s, the same leases with a fifth of the
            // renewal load.
            if !skip("big-2s") {
                runs.push((args.big_leases, args.big_secs, 60, 2));
            }
            if !skip("big-10s") {
                runs.push((args.big_leases, args.big_secs, 60, 10));
            }
        }
        if args.huge_leases > 0 && !skip("huge") {
            // Acquiring 300,000 names at the paced rate takes a minute or more.
            runs.push((args.huge_leases, args.big_secs, 240, 10));
        }
        for (n, secs, acquire_limit, lease_secs) in runs {
            eprintln!("bench: {n} leases, lease {lease_secs} s, window {secs} s");
            let lease = Duration::from_secs(lease_secs);
            let result = scale_run(
                &bin,
                &work,
                n,
                lease,
                secs,
                acquire_limit,
                gp::NodeOptions {
                    two_round_renewals: args.two_round_renewals,
                    no_load_shedding: args.no_load_shedding,
                    renewal_lines: args.renewal_lines,
                },
            );
            report.scale.push((n, result.map_err(|e| format!("{e:#}"))));
        }
    }

    // 6: etcd.
    if !skip("etcd") {
        eprintln!("bench: etcd");
        report.etcd = Some(etcd_run(&args, &work, &mut rng).map_err(|e| format!("{e:#}")));
    }

    // 7: core speed.
    if !skip("core") {
        eprintln!("bench: core speed");
        let secs = if args.quick { 20 } else { 60 };
        let budget = Duration::from_secs(if args.quick { 3 } else { 8 });
        report.core = Some(
            core_speed::run(args.scale_leases, Duration::from_secs(secs), budget)
                .map_err(|e| format!("{e:#}")),
        );
    }

    // 8: replicated state, side by side with etcd.
    if !skip("kv") {
        eprintln!("bench: replicated key-value store");
        let settings = kv::KvSettings {
            lease,
            secs: args.kv_secs,
            trials: args.kv_trials,
            catch_up_entries: args.catch_up_entries,
            etcd_install: (!skip("etcd-kv")).then_some(!args.no_etcd_install),
        };
        report.kv = Some(kv::run(&bin, &work, &settings, &mut rng));
    }

    // 9: short leases on a busy machine.
    if !skip("short") {
        let realtime = args.short_realtime;
        let permitted = realtime > 0 && short::realtime_permitted(realtime);
        if realtime > 0 && !permitted {
            eprintln!(
                "bench: `chrt -f {realtime}` is not permitted here (CAP_SYS_NICE): \
                 short leases run under the default policy only"
            );
        }
        let policies = std::iter::once(None).chain(permitted.then_some(Some(realtime)));
        for &ms in &args.short_leases {
            for realtime in policies.clone() {
                eprintln!(
                    "bench: lease {ms} ms with {} CPU-bound competitors{}",
                    args.competitors,
                    realtime.map_or(String::new(), |p| format!(", nodes under SCHED_FIFO {p}"))
                );
                let settings = short::ShortSettings {
                    lease: Duration::from_millis(ms),
                    trials: args.short_trials,
                    quiet: Duration::from_secs(args.quiet_secs),
                    competitors: args.competitors,
                    realtime,
                };
                report
                    .short
                    .push(short::run(&bin, &work, &settings, &mut rng));
            }
        }
    }

    report.load_after = loadavg();
    report.elapsed_secs = started.elapsed().as_secs_f64();
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("bench: kept {}", work.display());
    }
    let written = report::write(&report, &out)?;
    for path in written {
        eprintln!("bench: wrote {}", path.display());
    }
    eprintln!("{}", report::headline(&report));
    Ok(())
}

fn gp_trials(cluster: &mut gp::Cluster, args: &Args, rng: &mut fastrand::Rng, run: &mut GpRun) {
    for i in 0..args.cold_starts {
        match cluster.cold_start() {
            Ok(ms) => run.cold.push(ms),
            Err(e) => run.errors.push(format!("cold start {i}: {e:#}")),
        }
    }
    if cluster_empty(cluster) {
        let _ = cluster.start_all();
    }
    for i in 0..args.trials {
        match cluster.failover(rng) {
            Ok(t) => run.failover.push(t),
            Err(e) => {
                run.errors.push(format!("failover trial {i}: {e:#}"));
                restart(cluster);
            }
        }
        eprint!(".");
    }
    for i in 0..args.handover_trials {
        match cluster.resign(rng) {
            Ok(ms) => run.resign.push(ms),
            Err(e) => {
                run.errors.push(format!("resign trial {i}: {e:#}"));
                restart(cluster);
            }
        }
    }
    for i in 0..args.handover_trials {
        match cluster.sigterm(rng) {
            Ok(ms) => run.sigterm.push(ms),
            Err(e) => {
                run.errors.push(format!("SIGTERM trial {i}: {e:#}"));
                restart(cluster);
            }
        }
        eprint!(".");
    }
    eprintln!();
}

fn cluster_empty(cluster: &gp::Cluster) -> bool {
    cluster.pids().is_empty()
}

fn restart(cluster: &mut gp::Cluster) {
    cluster.kill_all();
    let _ = cluster.start_all();
}

fn scale_run(
    bin: &Path,
    work: &Path,
    n: usize,
    lease: Duration,
    secs: u64,
    acquire_limit: u64,
    options: gp::NodeOptions,
) -> Result<gp::ScaleResult> {
    let dir = work.join(format!("scale-{n}-{}s", lease.as_secs()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("leases.toml");
    gp::lease_config(&config, n, options)?;
    let setup = gp::Setup {
        bin: bin.to_path_buf(),
        lease,
        priority: None,
        config: Some(config),
        kv: false,
        metrics: true,
        // Three nodes share the machine's two cores: one worker thread each saves the
        // cross-thread wake-ups (about a sixth of a node's CPU at 10,000 leases).
        worker_threads: Some(1),
        realtime: None,
    };
    let mut cluster = gp::Cluster::new(setup, &dir, true)?;
    let mut result = cluster.scale(
        n,
        Duration::from_secs(secs),
        Duration::from_secs(acquire_limit),
    )?;
    // Accept and Accepted to and from two peers, Learn to two (P7); Prepare and Promise
    // to and from two more in two rounds.
    result.messages_per_renewal = if options.two_round_renewals { 10 } else { 6 };
    Ok(result)
}

fn etcd_run(args: &Args, work: &Path, rng: &mut fastrand::Rng) -> Result<EtcdRun> {
    let version = etcd::ensure_installed(!args.no_etcd_install)?;
    let mut run = EtcdRun {
        version,
        ..EtcdRun::default()
    };
    let dir = work.join("etcd");
    let mut cluster = etcd::EtcdCluster::start(&dir)?;
    run.started_ms = wall_ms();
    {
        let mut contenders = etcd::Contenders::new(&cluster, 1);
        for i in 0..args.trials {
            match contenders.trial(Signal::KILL, rng) {
                Ok(ms) => run.failover.push(ms),
                Err(e) => run.errors.push(format!("etcd failover trial {i}: {e:#}")),
            }
            eprint!(".");
        }
        for i in 0..args.handover_trials {
            match contenders.trial(Signal::INT, rng) {
                Ok(ms) => run.release.push(ms),
                Err(e) => run.errors.push(format!("etcd release trial {i}: {e:#}")),
            }
        }
        eprintln!();
    }
    if !args.skip.iter().any(|s| s == "etcd-scale") {
        eprintln!("bench: etcd, {} leases", args.scale_leases);
        run.scale = Some(
            etcd::scale(
                &cluster,
                args.scale_leases,
                2,
                Duration::from_secs(args.etcd_scale_secs),
            )
            .map_err(|e| format!("{e:#}")),
        );
    }
    cluster.stop();
    Ok(run)
}
