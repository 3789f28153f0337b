//! Fault tests with real `gen-paxos node` processes (see `tests/harness/src/fault`): the short run
//! CI takes (every fault kind, fixed seed), a run with a clock beyond `rho` that the checker
//! must catch, and the checker's own tests on made-up histories.
//!
//! Partitions need root, `ip` and `nft`; without them those scenarios print `SKIPPED` and
//! the rest still runs. The soak is `examples/faults.rs`.

use gen_paxos_harness::fault;

use std::path::PathBuf;
use std::time::Duration;

use fault::{Ev, Fault, History, Options, Token, WriteRec};

const BIN: &str = env!("CARGO_BIN_EXE_gen-paxos");

/// A directory of this test process's own (several test runs may share the target dir).
fn out_dir(name: &str) -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Held by each test that runs a cluster: one at a time, so their timing does not depend
/// on how many clusters share the 2 cores.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn options(name: &str, nodes: usize) -> Options {
    Options {
        bin: PathBuf::from(BIN),
        nodes,
        lease_ms: 1000,
        rates: vec![],
        priorities: vec![],
        out: out_dir(name),
        netns: true,
        run: None,
    }
}

/// Every fault kind at least once on 5 nodes, fixed seed; nothing may overlap, no stale or
/// lost write, a master again within the bound after every fault.
#[test]
fn short_run_survives_every_fault_kind() {
    let _serial = serial();
    let outcome = fault::short_run(options("fault-short", 5), 7).expect("the run");
    println!("{}", outcome.summary);
    println!("timeline: {}", outcome.svg.display());
    let r = &outcome.report;
    assert!(
        r.violations.is_empty(),
        "violations:\n{}",
        r.violations
            .iter()
            .map(|v| v.what.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let kinds: Vec<&str> = outcome.faults.iter().map(|f| f.kind).collect();
    for kind in ["kill", "pause", "clock-skew"] {
        assert!(kinds.contains(&kind), "no {kind} fault in {kinds:?}");
    }
    if fault::Netns::unavailable().is_none() {
        assert!(kinds.contains(&"partition"), "partitions were not run");
    } else {
        println!(
            "SKIPPED: partition scenarios: {:?}",
            fault::Netns::unavailable()
        );
    }
    assert!(
        r.accepted_writes > 100,
        "the workload barely ran: {}",
        r.accepted_writes
    );
    assert!(r.zombie_attempts >= 1, "no zombie write was tried");
    assert!(
        r.zombie_rejected >= 1,
        "the long pause's zombie write was not fenced off"
    );
    assert!(
        r.intervals.len() >= 3,
        "too few masters: {}",
        r.intervals.len()
    );
}

/// The checker is live: node 1's clock runs at half speed (rho is 0.1%), so its deadline is
/// twice as far in real time as the acceptors allow. Killed while master, its authority
/// (which lasts to its printed deadline) overlaps its successor's; the checker must say so.
#[test]
fn checker_catches_a_clock_rate_beyond_rho() {
    let _serial = serial();
    let mut opts = options("fault-beyond-rho", 3);
    opts.netns = false;
    opts.rates = vec![Some(0.5), None, None];
    opts.priorities = vec![3, 0, 0];
    let mut c = fault::Cluster::start(opts).expect("cluster");
    let mut master = c.wait_master(Duration::from_secs(20)).expect("a master");
    // Hand the lease to node 1 (priority 3) if another node won the cold start.
    for _ in 0..8 {
        if master == 1 {
            break;
        }
        c.say(master, "resign");
        std::thread::sleep(Duration::from_millis(1500));
        master = c.wait_master(Duration::from_secs(10)).expect("a master");
    }
    assert_eq!(master, 1, "node 1 never became master");
    std::thread::sleep(Duration::from_millis(1500)); // a few renewals
    c.kill(1);
    let start = fault::now_ms();
    c.faults.push(Fault {
        kind: "kill",
        desc: "SIGKILL node 1 (master, clock rate 0.5)".into(),
        nodes: vec![1],
        start,
        end: start + 3000.0,
        recover_from: Some(start),
    });
    let next = c
        .wait_master(Duration::from_secs(10))
        .expect("a new master");
    assert_ne!(next, 1);
    let outcome = c.finish("gen-paxos fault test: clock rate 0.5 on node 1 (rho 0.001)");
    println!("{}", outcome.summary);
    println!("timeline: {}", outcome.svg.display());
    assert!(
        outcome.report.overlaps >= 1,
        "the checker missed the overlap:\n{}",
        outcome.summary
    );
}

// ---- the checker on made-up histories -------------------------------------------------------

fn ev(node: u64, run: u32, ts: f64, kind: &str, token: Option<Token>, deadline: Option<f64>) -> Ev {
    Ev {
        node,
        run,
        ts,
        kind: kind.into(),
        lease: "default".into(),
        token,
        deadline,
        master: None,
        reason: None,
    }
}

fn history<'a>(
    events: &'a [Ev],
    writes: &'a [WriteRec],
    log: &'a [(u64, Token, u64)],
) -> History<'a> {
    History {
        events,
        faults: &[],
        writes,
        store_log: log,
        end: 5000.0,
        alive_at_end: &[],
        recovery_bound_ms: 3000.0,
    }
}

#[test]
fn checker_accepts_a_clean_handover_and_finds_overlaps_and_token_regressions() {
    let clean = vec![
        ev(1, 0, 0.0, "elected", Some([10, 1, 1]), Some(1000.0)),
        ev(1, 0, 300.0, "renewed", Some([11, 1, 1]), Some(1300.0)),
        // killed: authority to its last deadline, 1300
        ev(2, 0, 1400.0, "elected", Some([20, 2, 2]), Some(6000.0)),
    ];
    let r = fault::check(&history(&clean, &[], &[]));
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.intervals.len(), 2);

    // Node 2 elected before node 1's last deadline: overlap.
    let mut overlap = clean.clone();
    overlap[2].ts = 1200.0;
    let r = fault::check(&history(&overlap, &[], &[]));
    assert_eq!(r.overlaps, 1, "{:?}", r.violations);

    // A surrender ends authority early: no overlap.
    let mut surrendered = overlap.clone();
    surrendered.insert(2, ev(1, 0, 1100.0, "surrendered", Some([11, 1, 1]), None));
    let r = fault::check(&history(&surrendered, &[], &[]));
    assert_eq!(r.overlaps, 0, "{:?}", r.violations);

    // The next master's token is lower than the last one held.
    let mut back = clean.clone();
    back[2].token = Some([5, 2, 2]);
    let r = fault::check(&history(&back, &[], &[]));
    assert!(
        r.violations
            .iter()
            .any(|v| v.what.contains("token went back")),
        "{:?}",
        r.violations
    );

    // No master at the end.
    let mut gone = clean.clone();
    gone[2].deadline = Some(4000.0);
    let r = fault::check(&history(&gone, &[], &[]));
    assert!(
        r.violations.iter().any(|v| v.what.contains("no master")),
        "{:?}",
        r.violations
    );
}

#[test]
fn checker_finds_stale_and_lost_writes() {
    let events = vec![ev(1, 0, 0.0, "elected", Some([10, 1, 1]), Some(9000.0))];
    let w = |node, token, seq, accepted| WriteRec {
        node,
        token,
        seq,
        ts: 100.0,
        accepted,
        zombie: false,
    };
    let writes = vec![
        w(1, [10, 1, 1], 1, true),
        w(2, [20, 2, 2], 1, true),
        w(1, [10, 1, 1], 2, true),
    ];
    // The store took node 1's old token after node 2's newer one: stale.
    let log = vec![(1, [10, 1, 1], 1), (2, [20, 2, 2], 1), (1, [10, 1, 1], 2)];
    let r = fault::check(&history(&events, &writes, &log));
    assert_eq!(
        (r.stale_writes, r.lost_writes),
        (1, 0),
        "{:?}",
        r.violations
    );
    // The store lost an acknowledged write.
    let log = vec![(1, [10, 1, 1], 1), (2, [20, 2, 2], 1)];
    let r = fault::check(&history(&events, &writes, &log));
    assert_eq!(
        (r.stale_writes, r.lost_writes),
        (0, 1),
        "{:?}",
        r.violations
    );
}

#[test]
fn partition_shapes_cut_what_they_say() {
    let mut rng = fastrand::Rng::with_seed(1);
    for shape in 0..fault::PARTITION_SHAPES {
        let (cuts, desc) = fault::partition_shape(shape, 3, 5, &mut rng);
        assert!(!cuts.is_empty(), "{desc}");
        assert!(
            cuts.iter()
                .all(|&(a, b)| a != b && (1..=5).contains(&a) && (1..=5).contains(&b))
        );
        // Isolated, split, muted: node 3 receives nothing from / sends nothing to the others.
        if shape == 0 {
            assert_eq!(cuts.len(), 8, "{desc}");
        }
        if shape == 6 {
            assert_eq!(cuts.len(), 20, "{desc}");
        }
    }
}

/// What each `gen-paxos run` command does: a line `beat NODE TOKEN NS` every 10 ms (its
/// lifetime, as the command itself saw it), `stop ...` on SIGTERM; it exits 3 by itself
/// once the file `$GEN_PAXOS_BEATS.exit` appears (and removes it).
const BEATER: &str = r#"f=$GEN_PAXOS_BEATS; n=$GEN_PAXOS_NODE; t=$GEN_PAXOS_TOKEN
trap 'echo "stop $n $t $(date +%s%N)" >> "$f"; exit 0' TERM
while :; do
  echo "beat $n $t $(date +%s%N)" >> "$f"
  if [ -e "$f.exit" ]; then rm -f "$f.exit"; echo "exit $n $t $(date +%s%N)" >> "$f"; exit 3; fi
  sleep 0.01
done"#;

/// Each tenure's command lifetime `(token, node, first ns, last ns)`, from the lines.
fn command_lifetimes(log: &str) -> Vec<(String, u64, u128, u128)> {
    let mut by_token: std::collections::BTreeMap<String, (u64, u128, u128)> =
        std::collections::BTreeMap::new();
    for line in log.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [_, node, token, ns] = parts[..] else {
            continue;
        };
        let (Ok(node), Ok(ns)) = (node.parse::<u64>(), ns.parse::<u128>()) else {
            continue;
        };
        let e = by_token.entry(token.to_string()).or_insert((node, ns, ns));
        e.1 = e.1.min(ns);
        e.2 = e.2.max(ns);
    }
    let mut v: Vec<_> = by_token
        .into_iter()
        .map(|(t, (n, a, b))| (t, n, a, b))
        .collect();
    v.sort_by_key(|l| l.2);
    v
}

/// `gen-paxos run` under SIGKILL, resign, SIGTERM, partitions and a command that exits by
/// itself: the commands' lifetimes, as the commands themselves log them, never overlap.
/// (A paused node is the documented exception the fencing token covers: no pauses here.)
#[test]
fn commands_run_while_master_never_overlap() {
    let _serial = serial();
    let mut opts = options("fault-run", 3);
    opts.run = Some(BEATER.to_string());
    opts.netns = fault::Netns::unavailable().is_none();
    let log = opts.out.join("commands.log");
    let mut c = fault::Cluster::start(opts).expect("cluster");
    let mut rng = fastrand::Rng::with_seed(11);
    let mut master = c.wait_master(Duration::from_secs(20)).expect("a master");
    std::thread::sleep(Duration::from_millis(800));
    c.say(master, "resign");
    c.recover(800);
    master = c.wait_master(Duration::from_secs(10)).expect("a master");
    c.fault_kill(master, 700).expect("kill");
    c.recover(800);
    master = c.wait_master(Duration::from_secs(10)).expect("a master");
    c.fault_term(master, 700).expect("term");
    c.recover(800);
    // The command exits by itself: its node resigns, another takes over.
    std::fs::write(log.with_extension("log.exit"), b"").expect("exit file");
    c.recover(1500);
    if fault::Netns::unavailable().is_none() {
        for shape in [0, 1] {
            master = c.wait_master(Duration::from_secs(10)).expect("a master");
            c.fault_partition(shape, master, 2500, &mut rng)
                .expect("partition");
            c.recover(800);
        }
    } else {
        println!(
            "SKIPPED: partition scenarios: {:?}",
            fault::Netns::unavailable()
        );
    }
    let outcome = c.finish("gen-paxos run: commands while master");
    println!("{}", outcome.summary);
    assert!(
        outcome.report.violations.is_empty(),
        "{:?}",
        outcome
            .report
            .violations
            .iter()
            .map(|v| &v.what)
            .collect::<Vec<_>>()
    );
    let text = std::fs::read_to_string(&log).expect("commands.log");
    let lives = command_lifetimes(&text);
    for l in &lives {
        println!(
            "command of node {} token {}: {:.3} s",
            l.1,
            l.0,
            (l.3 - l.2) as f64 / 1e9
        );
    }
    assert!(lives.len() >= 5, "too few tenures ran a command: {lives:?}");
    assert!(
        text.contains("\nexit ") || text.starts_with("exit "),
        "the command never exited by itself"
    );
    for pair in lives.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            b.2 > a.3,
            "command of node {} (token {}) started {:.1} ms before the one of node {} (token {}) ended",
            b.1,
            b.0,
            (a.3 - b.2) as f64 / 1e6,
            a.1,
            a.0
        );
    }
}
