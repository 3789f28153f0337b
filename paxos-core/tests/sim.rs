//! Seeded simulation tests: the protocol keeps exclusivity and liveness under faults, and
//! the checker is live (each weakened rule is caught).
//!
//! A failing seed prints a replay command; for a one-off run with other seeds:
//! `SIM_SEEDS=5000 cargo test -p gen-paxos-core --test sim`.

use gen_paxos_core::UnsafeRule;
use gen_paxos_core::sim::{SimConfig, SimReport, run};

fn seeds(default: u64) -> u64 {
    std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn replay(r: &SimReport, nodes: usize, rule: Option<UnsafeRule>) -> String {
    let mut cmd = format!(
        "cargo run --release -p gen-paxos-core --example sim -- --seed {} --nodes {nodes}",
        r.seed
    );
    if let Some(rule) = rule {
        cmd.push_str(&format!(" --unsafe {}", rule.name()));
    }
    cmd
}

fn assert_safe_and_live(nodes: usize, count: u64) {
    let mut elections = 0;
    for seed in 0..count {
        let r = run(&SimConfig::new(seed, nodes));
        assert!(
            r.violations.is_empty(),
            "seed {seed}: {:?}\nreplay: {}",
            r.violations,
            replay(&r, nodes, None)
        );
        assert!(
            r.liveness_failure.is_none(),
            "seed {seed}: {:?}\nreplay: {}",
            r.liveness_failure,
            replay(&r, nodes, None)
        );
        elections += r.elections;
    }
    // The faults really did move leadership around.
    assert!(
        elections > count * 3,
        "only {elections} elections in {count} seeds"
    );
}

#[test]
fn three_nodes_stay_exclusive_and_recover_over_1000_seeds() {
    assert_safe_and_live(3, seeds(1000));
}

#[test]
fn five_nodes_stay_exclusive_and_recover_over_1000_seeds() {
    assert_safe_and_live(5, seeds(1000));
}

#[test]
fn seven_nodes_stay_exclusive_and_recover_over_200_seeds() {
    assert_safe_and_live(7, seeds(200));
}

#[test]
fn a_wider_clock_rate_bound_stays_safe() {
    for seed in 0..seeds(300) {
        let mut c = SimConfig::new(seed, 3);
        c.rho = 0.05;
        let r = run(&c);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    }
}

#[test]
fn runs_are_deterministic() {
    let a = run(&SimConfig::new(42, 5));
    let b = run(&SimConfig::new(42, 5));
    assert_eq!(
        (a.steps, a.deliveries, a.elections),
        (b.steps, b.deliveries, b.elections)
    );
    assert_eq!(a.recovery, b.recovery);
}

/// Searches seeds until the checker reports a violation containing `kind`.
fn first_violation(
    rule: UnsafeRule,
    nodes: usize,
    max_seeds: u64,
    kind: &str,
) -> Option<(u64, String)> {
    (0..max_seeds).find_map(|seed| {
        let mut c = SimConfig::new(seed, nodes);
        c.unsafe_rule = Some(rule);
        run(&c)
            .violations
            .into_iter()
            .find(|v| v.contains(kind))
            .map(|v| (seed, v))
    })
}

fn assert_caught(rule: UnsafeRule, kind: &str) {
    assert_caught_within(rule, kind, 5000);
}

fn assert_caught_within(rule: UnsafeRule, kind: &str, seeds: u64) {
    let found = first_violation(rule, 3, seeds, kind);
    assert!(
        found.is_some(),
        "the checker found no {kind:?} violation with --unsafe {}",
        rule.name()
    );
}

#[test]
fn checker_catches_no_quarantine() {
    assert_caught(UnsafeRule::NoQuarantine, "two masters");
}

#[test]
fn checker_catches_count_duplicates() {
    assert_caught(UnsafeRule::CountDuplicates, "distinct acceptors");
}

#[test]
fn checker_catches_owner_only_release() {
    assert_caught(UnsafeRule::OwnerOnlyRelease, "two masters");
}

#[test]
fn checker_catches_timer_order() {
    assert_caught(UnsafeRule::TimerOrder, "two masters");
}

#[test]
fn checker_catches_clock_rate_beyond_rho() {
    assert_caught(UnsafeRule::ClockRate, "two masters");
}

#[test]
fn checker_catches_ballot_reuse() {
    assert_caught(UnsafeRule::ReuseBallot, "");
}

/// The random search finds these two only as fencing-token regressions (the baseline
/// protocol has those too, without the wall-clock floor); their two-owner shapes are the
/// deterministic scenarios in `tests/scenarios.rs`.
#[test]
fn checker_catches_late_timer_and_stale_owner_open() {
    assert_caught_within(UnsafeRule::LateTimer, "", 20_000);
    assert_caught_within(UnsafeRule::StaleOwnerOpen, "", 20_000);
}

/// P7 (renewals in one round trip) rests on A2's refusal: with acceptors that overwrite
/// another owner's live lease, a renewal's late Accept takes the lease from its next owner.
/// The baseline protocol overwrites too but renews in two rounds, and stays safe (below).
#[test]
fn checker_catches_one_round_renewals_without_the_refusal() {
    assert_caught(UnsafeRule::OneRoundOverwrite, "two masters");
}

/// The control: the baseline protocol, without gen-paxos's defences in depth, still never
/// has two masters.
#[test]
fn baseline_protocol_never_has_two_masters() {
    assert!(first_violation(UnsafeRule::Baseline, 3, seeds(1000), "two masters").is_none());
}

/// Searches seeds until a run ends without a master for some lease (a liveness failure).
fn first_liveness_failure(rule: UnsafeRule, nodes: usize, max_seeds: u64) -> Option<u64> {
    (0..max_seeds).find(|&seed| {
        let mut c = SimConfig::new(seed, nodes);
        c.unsafe_rule = Some(rule);
        run(&c).liveness_failure.is_some()
    })
}

/// B1: every run injects forged extreme ballots (the safe runs above show they do no
/// harm). Without the bound, counters wrap and elections stop for good.
#[test]
fn checker_catches_unbounded_ballots() {
    assert!(
        first_liveness_failure(UnsafeRule::UnboundedBallots, 3, 2000).is_some(),
        "no run lost its master with --unsafe unbounded-ballots"
    );
}

/// B2: an observer's forged Accept is taken by acceptors without the rule.
#[test]
fn checker_catches_observer_ballots() {
    assert_caught_within(UnsafeRule::ObserverBallots, "which is not a voter", 5000);
}

/// Acceptor entries forgotten before a quarantine has passed lose promises and leases
/// that still count.
#[test]
fn checker_catches_early_prune() {
    assert_caught(UnsafeRule::EarlyPrune, "two masters");
}

fn split(seed: u64, rule: Option<UnsafeRule>) -> SimReport {
    let mut c = SimConfig::new(seed, 5);
    c.split = true;
    c.unsafe_rule = rule;
    run(&c)
}

/// F1–F3: misconfigured clusters (a half-done reconfiguration on even seeds, a lone
/// single-node cluster beside a cluster naming it on odd ones) never have two masters,
/// and the group around the shared node keeps a master.
#[test]
fn split_configurations_never_have_two_masters() {
    for seed in 0..seeds(300) {
        let r = split(seed, None);
        assert!(
            r.violations.is_empty() && r.liveness_failure.is_none(),
            "seed {seed}: {:?} {:?}\nreplay: cargo run --release -p gen-paxos-core --example sim -- --seed {seed} --split",
            r.violations,
            r.liveness_failure
        );
    }
}

#[test]
fn checker_catches_no_fingerprint() {
    for seed in [0, 1] {
        let r = split(seed, Some(UnsafeRule::NoFingerprint));
        assert!(
            r.violations.iter().any(|v| v.contains("two masters")),
            "seed {seed}: {:?}",
            r.violations
        );
    }
}

/// The replicated log and `ask` under every fault: no slot chosen twice differently, every
/// replica in order, every acknowledged append chosen where it was acknowledged, `ask`
/// answers agreeing, and appends acknowledged again after healing.
#[test]
fn the_log_and_ask_stay_consistent_and_recover_over_200_seeds() {
    for nodes in [3, 5] {
        let mut acks = 0;
        for seed in 0..seeds(200) {
            let mut c = SimConfig::new(seed, nodes);
            c.log = true;
            let r = run(&c);
            assert!(
                r.violations.is_empty() && r.liveness_failure.is_none(),
                "seed {seed}, {nodes} nodes: {:?} {:?}\nreplay: {} (the example runs the log by default)",
                r.violations,
                r.liveness_failure,
                replay(&r, nodes, None)
            );
            acks += r.log_acks;
        }
        assert!(acks > seeds(200) * 50, "only {acks} appends acknowledged");
    }
}

/// The first seed (of `seeds`) whose run with the log breaks an invariant.
fn first_log_violation(rule: UnsafeRule, nodes: usize, seeds: std::ops::Range<u64>) -> Option<u64> {
    seeds.into_iter().find(|&seed| {
        let mut c = SimConfig::new(seed, nodes);
        c.log = true;
        c.unsafe_rule = Some(rule);
        !run(&c).violations.is_empty()
    })
}

/// Every one of the log's known mistakes that the simulator reaches is caught: a slot
/// chosen twice differently, an acknowledged append lost, a replica out of order, two
/// `ask` answers for one instance, or an answer from an instance a forget had closed. (How often, per switch, is in docs/REPLICATION.md.)
#[test]
fn checker_catches_every_log_mistake() {
    for rule in [
        UnsafeRule::SkipRecovery,
        UnsafeRule::NoRepair,
        UnsafeRule::RepairAnyValue,
        UnsafeRule::ReplyBeforePersist,
        UnsafeRule::ForgetfulAcceptor,
        UnsafeRule::CountDuplicateAccepts,
        UnsafeRule::ApplyUnchosen,
        UnsafeRule::TruncateUnchosen,
        UnsafeRule::AskUnchosen,
        UnsafeRule::StaleRead,
        UnsafeRule::AskOneDecision,
    ] {
        assert!(
            first_log_violation(rule, 3, 0..300).is_some(),
            "--unsafe {} was not caught in 300 seeds",
            rule.name()
        );
    }
    // Rare (3 seeds in 10,000: 2293, 2365, 3600): the restarted proposer usually hears a
    // higher ballot before it is elected. Its shape is a deterministic scenario in
    // log_scenarios.rs; a change to the workload's draws or the protocol's timing moves
    // these seeds (the renewal grid of 2% moved them from 5972, 7582, 7630 to 3011 and
    // 5151, the jitter step for nodes holding few leases back, and `ask` answers that
    // wait for a majority to these).
    assert!(
        first_log_violation(UnsafeRule::ReuseLogBallot, 3, 2250..2350).is_some(),
        "--unsafe reuse-log-ballot was not caught in seeds 2250..2350"
    );
}

/// A decision is permanent: a `get` that began after an instance was answered a value
/// is not told nothing was chosen there. An acceptor that forgets its disk (about one
/// seed in ten of `forgetful-acceptor` at 3 nodes) breaks it, and the check sees it.
#[test]
fn checker_catches_a_decision_lost_to_a_forgetful_acceptor() {
    let lost = (0..100).find(|&seed| {
        let mut c = SimConfig::new(seed, 3);
        c.log = true;
        c.unsafe_rule = Some(UnsafeRule::ForgetfulAcceptor);
        run(&c)
            .violations
            .iter()
            .any(|v| v.starts_with("a decision lost"))
    });
    assert!(lost.is_some(), "no decision lost in 100 seeds");
}

/// A seed replays exactly with the log and `ask` on too (no iteration order of a hashed
/// map decides what a node sends).
#[test]
fn runs_with_the_log_are_deterministic() {
    let config = |seed| {
        let mut c = SimConfig::new(seed, 3);
        c.log = true;
        c.digest = true;
        c
    };
    for seed in [3, 11, 42] {
        let (a, b) = (run(&config(seed)), run(&config(seed)));
        assert_eq!(a.digest, b.digest, "seed {seed}");
        assert_eq!((a.steps, a.log_acks), (b.steps, b.log_acks), "seed {seed}");
    }
}
