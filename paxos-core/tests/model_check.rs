//! The exhaustive model checker over the real `Node` (`gen_paxos_core::sim::check`), at
//! bounds that run in seconds: the safe protocol shows no violation, the search finds the
//! weakened rules it reaches quickly, and the counterexamples of the longer searches
//! (printed by `examples/check`, see docs/model-checking.md) replay to their violation
//! with the rule broken and to none with it intact.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use gen_paxos_core::sim::check::{Action, Action::*, CheckConfig, Counterexample, check, replay};
use gen_paxos_core::{Config, Incarnation, LeaseName, Node, NodeId, Timestamp, UnsafeRule};

/// Three voters, every clock at the nominal rate, breaking `rule`.
fn breaking(rule: &str) -> CheckConfig {
    let mut c = CheckConfig::new(3);
    c.clock_choices = vec![0.0];
    c.unsafe_rule = UnsafeRule::from_name(rule);
    assert!(c.unsafe_rule.is_some(), "{rule} is a switch");
    c
}

/// Nodes 1 and 2 are candidates, node 3 an acceptor only; no crash, resignation or
/// duplicate; up to four ticks of 500 ms; one retransmission per lease.
fn two_candidates(rule: &str) -> CheckConfig {
    let mut c = breaking(rule);
    c.priorities = vec![Some(0), Some(0), None];
    c.crashes = 0;
    c.resigns = 0;
    c.duplicates = 0;
    c.ticks = 4;
    c.tick = Duration::from_millis(500);
    c.retransmit = Duration::from_secs(1);
    c
}

/// As [`two_candidates`], with one crash, two ticks of a second and at most `fires`
/// timer firings: room for a restart between two elections.
fn with_a_restart(rule: &str, fires: u8) -> CheckConfig {
    let mut c = two_candidates(rule);
    c.tick = Duration::from_secs(1);
    c.ticks = 2;
    c.crashes = 1;
    c.fires = Some(fires);
    c
}

/// Searches `c` and returns the counterexample, whose violation must contain `what`;
/// replays it with the rule intact (no violation).
fn finds(c: CheckConfig, what: &str) -> Counterexample {
    let cx = check(&c).counterexample.expect("found");
    assert!(cx.violation.contains(what), "{}", cx.violation);
    replays_only_when_broken(c, &cx.actions, what);
    cx
}

/// The history ends in a violation containing `what` with the rule broken, and in none
/// with it intact (where the history is possible at all: without the broken rule a node
/// may send other messages, and a later step may then not be enabled).
fn replays_only_when_broken(c: CheckConfig, steps: &[Action], what: &str) {
    replays_only_with_the_rule(c, steps, what, &[None]);
}

/// As [`replays_only_when_broken`], with the rule replaced by each of `instead` (`None`:
/// every rule intact).
fn replays_only_with_the_rule(
    mut c: CheckConfig,
    steps: &[Action],
    what: &str,
    instead: &[Option<&str>],
) {
    let clock = c.clock.clone().unwrap_or_else(|| vec![0.0; c.voters]);
    let violation = replay(&c, &clock, steps)
        .expect("every step is enabled")
        .expect("the history ends in a violation");
    assert!(violation.contains(what), "{violation}");
    for other in instead {
        c.unsafe_rule = other.and_then(UnsafeRule::from_name);
        match replay(&c, &clock, steps) {
            Ok(None) | Err(_) => {}
            Ok(Some(v)) => panic!("a violation with {other:?} instead: {v}"),
        }
    }
}

#[test]
fn the_safe_protocol_has_no_violation_within_six_steps() {
    let mut c = CheckConfig::new(3);
    c.depth = 6;
    let r = check(&c);
    assert!(
        r.counterexample.is_none(),
        "{:#?}",
        r.counterexample.map(|c| c.trace)
    );
    assert!(r.complete);
    assert_eq!(r.initial_states, 8, "every clock assignment");
    assert_eq!(r.depth, 6);
    assert!(r.states > 10_000, "{} states", r.states);
}

#[test]
fn search_finds_count_duplicates() {
    let c = breaking("count-duplicates");
    let r = check(&c);
    let cx = r.counterexample.expect("found");
    assert!(
        cx.violation.contains("distinct acceptors"),
        "{}",
        cx.violation
    );
    assert!(cx.actions.len() <= 12);
    replays_only_when_broken(c, &cx.actions, "distinct acceptors");
}

#[test]
fn search_finds_no_quarantine() {
    let mut c = breaking("no-quarantine");
    c.duplicates = 0;
    c.ticks = 0;
    c.resigns = 0;
    let r = check(&c);
    let cx = r.counterexample.expect("found");
    assert!(cx.violation.contains("two masters"), "{}", cx.violation);
    assert!(
        cx.actions.iter().any(|a| matches!(a, Crash(_))),
        "a restart without quarantine"
    );
    replays_only_when_broken(c, &cx.actions, "two masters");
}

#[test]
fn search_finds_early_prune() {
    let mut c = two_candidates("early-prune");
    c.retransmit = CheckConfig::new(3).retransmit;
    c.depth = 14;
    finds(c, "two masters");
}

/// Node 1 restarts with its incarnation and counter, asks again with the ballot of its
/// previous life, and counts node 3's answers to that life, still in flight.
#[test]
fn search_finds_reuse_ballot() {
    let mut c = with_a_restart("reuse-ballot", 3);
    c.depth = 18;
    // Looking past token regressions (the switch makes those too, found first since
    // renewals take one round: node 2 restarts below node 1's renewal ballot).
    c.token_order = false;
    let cx = finds(c, "two masters");
    assert!(
        cx.actions.iter().any(|a| matches!(a, Restart(_))),
        "a restart"
    );
}

/// Found at depth 14 after 23.8 million states (docs/model-checking.md): node 1's
/// Accepted arrives after its deadline, which only the stored-deadline check refuses.
#[test]
fn timer_order_counterexample_needs_the_rule() {
    let mut c = two_candidates("timer-order");
    c.depth = 14;
    let steps = [
        Fire(0),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Deliver(1),
        Deliver(2),
        Fire(1),
        Fire(1),
        Fire(1),
        Deliver(0),
        Deliver(1),
        Deliver(3),
        Deliver(0),
        Deliver(3),
    ];
    replays_only_when_broken(c, &steps, "two masters");
}

/// Found at depth 16 after 9.0 million states (docs/model-checking.md): node 1's attempt
/// times out after node 2 accepted its ballot, and its Release of that ballot is still in
/// flight when node 1 wins with its next one. The stale Release, matched by owner only,
/// erases node 1's live lease at node 2, which then promises node 3 as if nobody held
/// the lease.
#[test]
fn owner_only_release_counterexample_needs_the_rule() {
    let mut c = breaking("owner-only-release");
    c.priorities = vec![Some(0), None, Some(0)];
    c.retransmit = Duration::from_secs(1);
    c.crashes = 0;
    c.duplicates = 0;
    c.ticks = 0;
    c.resigns = 0;
    c.fires = Some(4);
    c.depth = 16;
    let steps = [
        Fire(0),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Fire(0),
        Fire(0),
        Deliver(1),
        Deliver(0),
        Deliver(1),
        Deliver(0),
        Deliver(2),
        Fire(2),
        Deliver(3),
        Deliver(9),
        Deliver(4),
        Deliver(10),
    ];
    replays_only_when_broken(c, &steps, "two masters");
}

/// Found at depth 18 after 3.7 million states with the link between nodes 1 and 2 down
/// (docs/model-checking.md), on the baseline protocol as the switch runs: node 2's Accept
/// to node 3 is delayed and its attempt times out; node 3 restarts; node 1 wins with a
/// lower ballot; the stale Accept then overwrites node 1's lease at node 3, and node 2's
/// fresh attempt takes its own stale lease there for an open one. The 2026 two-owner
/// trace, found by search.
#[test]
fn stale_owner_open_counterexample_needs_the_rule() {
    let mut c = with_a_restart("stale-owner-open", 4);
    c.ticks = 1;
    c.cut = vec![(1, 2)];
    c.token_order = false;
    c.depth = 18;
    let steps = [
        Fire(1),
        Deliver(0),
        Deliver(0),
        Crash(2),
        Restart(2),
        Fire(1),
        Fire(0),
        Fire(1),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Deliver(1),
        Deliver(0),
        Deliver(1),
        Deliver(1),
    ];
    replays_only_with_the_rule(c, &steps, "two masters", &[None, Some("baseline")]);
}

#[test]
fn search_finds_clock_rate_beyond_rho() {
    let mut c = two_candidates("clock-rate");
    c.clock = Some(vec![-1.0, 0.0, 1.0]);
    c.depth = 12;
    let cx = finds(c, "two masters");
    assert_eq!(cx.clock, vec![-1.0, 0.0, 1.0]);
}

/// Found at depth 15 after 12.5 million states (docs/model-checking.md), on the baseline
/// protocol as the switch runs: nodes 1 and 2 prepare, node 3 promises both and restarts,
/// and the promises are handled two seconds later. With the deadline fixed when Prepare
/// was sent both attempts are over by then; with the late timer both go on to win.
#[test]
fn late_timer_counterexample_needs_the_late_timer() {
    let mut c = with_a_restart("late-timer", 2);
    c.token_order = false;
    c.depth = 15;
    let steps = [
        Fire(0),
        Deliver(0),
        Deliver(1),
        Fire(1),
        Deliver(3),
        Crash(2),
        Restart(2),
        Tick,
        Tick,
        Deliver(0),
        Deliver(3),
        Deliver(1),
        Deliver(2),
        Deliver(4),
        Deliver(2),
    ];
    replays_only_with_the_rule(c, &steps, "two masters", &[None, Some("baseline")]);
}

#[test]
fn the_printed_test_replays_the_counterexample() {
    let c = breaking("count-duplicates");
    let cx = check(&c).counterexample.expect("found");
    let text = cx.as_test(&c, "found");
    assert!(text.contains("fn found()"), "{text}");
    assert!(text.contains("\"count-duplicates\""), "{text}");
    for action in &cx.actions {
        assert!(text.contains(&format!("{action:?},")), "{text}");
    }
    assert!(cx.trace.last().is_some_and(|l| l.starts_with("VIOLATION")));
}

#[test]
fn replay_refuses_a_step_that_is_not_enabled() {
    let c = CheckConfig::new(3);
    let err = replay(&c, &[0.0, 0.0, 0.0], &[Deliver(0)]).expect_err("nothing in flight yet");
    assert!(err.contains("not enabled"), "{err}");
    let err = replay(&c, &[0.0], &[]).expect_err("one clock for three hosts");
    assert!(err.contains("clock"), "{err}");
}

fn fingerprint(node: &Node) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    node.hash(&mut h);
    h.finish()
}

/// The checker merges states by the nodes' hashes: counters must not keep equal states
/// apart, and any change of state must show.
#[test]
fn a_nodes_hash_ignores_its_counters_but_not_its_state() {
    let mut config = Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
    config.set_lease_duration(Duration::from_secs(1));
    let now = Timestamp::from_nanos(5);
    let mut node = Node::new(config, now, Incarnation(1), 0, 9).expect("valid");
    let before = fingerprint(&node);
    // A batch from a stranger is dropped and counted: the state is the same.
    node.handle_message(now, NodeId(9), node.fingerprint_digest(), Vec::new());
    assert_eq!(node.stats().dropped_unknown_sender, 1);
    assert_eq!(fingerprint(&node), before);
    let copy = node.clone();
    assert_eq!(fingerprint(&copy), before);
    node.join(now, LeaseName::new("x").expect("valid"), Some(0))
        .expect("joins");
    assert_ne!(fingerprint(&node), before);
    assert_eq!(fingerprint(&copy), before, "a clone is independent");
}

/// P7 rests on A2's refusal. Found at step 21 (16 after a five-step opening, 36.7 million
/// states, docs/model-checking.md): node 1 holds and renews in one round; its Accept for a
/// later renewal reaches node 2 only after node 1's lease ran out and node 2, having
/// prepared at node 3, accepted its own ballot. An acceptor that overwrites another owner's
/// live lease takes the stale Accept (its ballot is higher) and both activate. With A2's
/// refusal node 2 would reject it (with all of gen-paxos's rules the history ends at step
/// 16 already: ballots follow the wall clock, so node 2's is the higher one); the baseline
/// protocol, which overwrites too, renews in two rounds and never sends it. The search:
/// `check --unsafe one-round-overwrite --no-token-order --clocks 0 --priorities 0,0,-
/// --crashes 0 --resigns 0 --duplicates 0 --ticks 3 --tick-ms 400 --fires 4
/// --retransmit-ms 1000 --depth 16 --opening "node 1 timer;deliver node 1 -> node 2;deliver
/// node 2 -> node 1;deliver node 1 -> node 2;deliver node 2 -> node 1"`.
#[test]
fn one_round_overwrite_counterexample_needs_the_rule() {
    let mut c = two_candidates("one-round-overwrite");
    c.ticks = 3;
    c.tick = Duration::from_millis(400);
    c.fires = Some(4);
    c.token_order = false;
    c.depth = 21;
    let steps = [
        Fire(0),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Deliver(1),
        Fire(0),
        Deliver(3),
        Deliver(1),
        Fire(0),
        Tick,
        Fire(1),
        Tick,
        Deliver(9),
        Deliver(6),
        Deliver(5),
        Deliver(2),
        Deliver(11),
        Deliver(7),
    ];
    replays_only_with_the_rule(c, &steps, "two masters", &[None, Some("baseline")]);
}
