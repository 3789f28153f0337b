//! The model checker with the replicated log and `ask` on (`CheckConfig::log`): disks that
//! lose unsynced writes in a crash, client steps, and the log's properties. The safe
//! protocol shows no violation at small bounds; the searches that take seconds find their
//! weakened rules, and each counterexample replays to no violation with the rule intact.

use std::time::Duration;

use gen_paxos_core::UnsafeRule;
use gen_paxos_core::sim::check::{
    Action, Action::*, CheckConfig, CheckReport, Counterexample, check, replay,
};

/// Three voters with the log on, nominal clocks, no client step, crash, duplicate, tick
/// or resignation unless a test adds them.
fn log_on(rule: Option<&str>) -> CheckConfig {
    let mut c = CheckConfig::new(3);
    c.log = true;
    c.clock = Some(vec![0.0; 3]);
    c.appends = 0;
    c.crashes = 0;
    c.duplicates = 0;
    c.ticks = 0;
    c.resigns = 0;
    c.unsafe_rule = rule.and_then(UnsafeRule::from_name);
    assert_eq!(
        c.unsafe_rule.is_some(),
        rule.is_some(),
        "{rule:?} is a switch"
    );
    c
}

/// `ask` only, no lease election (no timer fires), every write synced at once: two asks.
fn asks_only(rule: Option<&str>) -> CheckConfig {
    let mut c = log_on(rule);
    c.fires = Some(0);
    c.asks = 2;
    c.instant_sync = true;
    c
}

/// Nodes 1 and 2 candidates, node 3 an acceptor only, one retransmission per lease,
/// writes synced at once, one append, one crash, at most four timer firings: room for
/// an election, an acknowledged append, and a second election.
fn failover(rule: Option<&str>) -> CheckConfig {
    let mut c = log_on(rule);
    c.priorities = vec![Some(0), Some(0), None];
    c.retransmit = Duration::from_secs(1);
    c.instant_sync = true;
    c.appends = 1;
    c.crashes = 1;
    c.fires = Some(4);
    c
}

/// Searches `c` and returns the counterexample, whose violation must contain `what`; it
/// replays with the rule intact to no violation.
fn finds(c: CheckConfig, what: &str) -> Counterexample {
    let r = check(&c);
    let cx = r.counterexample.expect("found");
    assert!(cx.violation.contains(what), "{}", cx.violation);
    replays_only_when_broken(c, &cx.actions, what);
    cx
}

/// Searches `c`, which must show no violation and be explored to its bound.
fn explores_clean(c: &CheckConfig) -> CheckReport {
    let r = check(c);
    assert!(r.counterexample.is_none(), "{:#?}", r.counterexample);
    assert!(r.complete, "the bound is explored to the end");
    r
}

fn replays_only_when_broken(mut c: CheckConfig, steps: &[Action], what: &str) {
    let clock = c.clock.clone().unwrap_or_else(|| vec![0.0; c.voters]);
    let violation = replay(&c, &clock, steps)
        .expect("every step is enabled")
        .expect("the history ends in a violation");
    assert!(violation.contains(what), "{violation}");
    c.unsafe_rule = None;
    match replay(&c, &clock, steps) {
        Ok(None) | Err(_) => {}
        Ok(Some(v)) => panic!("a violation with every rule intact: {v}"),
    }
}

#[test]
fn two_asks_agree_within_fourteen_steps() {
    let mut c = asks_only(None);
    c.depth = 14;
    let r = explores_clean(&c);
    assert!(r.states > 100_000, "{} states", r.states);
}

#[test]
fn search_finds_ask_unchosen() {
    let mut c = asks_only(Some("ask-unchosen"));
    c.depth = 11;
    let cx = finds(c, "ask instance 0");
    assert!(cx.actions.iter().filter(|a| matches!(a, Ask(_))).count() == 2);
}

/// As [`asks_only`] with one ask, one get and one forget: room for an instance to be
/// decided, closed by a majority that leaves one acceptor out, and read again.
fn ask_get_forget(rule: Option<&str>) -> CheckConfig {
    let mut c = asks_only(rule);
    c.asks = 1;
    c.gets = 1;
    c.forgets = 1;
    c
}

/// The bound at which [`search_finds_ask_one_decision`] finds its nine steps, explored
/// to the end (896,191 states; depth 11, 7.1 million, in docs/model-checking.md).
#[test]
fn ask_get_and_forget_are_linearizable_within_nine_steps() {
    let mut c = ask_get_forget(None);
    c.depth = 9;
    let r = explores_clean(&c);
    assert!(r.states > 500_000, "{} states", r.states);
}

/// A forget closes instance 0 on two acceptors; the third, which missed it, reports the
/// old decision to a later `get` on its own node, answered from it alone.
#[test]
fn search_finds_ask_one_decision() {
    let mut c = ask_get_forget(Some("ask-one-decision"));
    c.depth = 9;
    let cx = finds(c, "answer from a closed instance");
    // The get is answered at once, from the asking node's own acceptor, which is not
    // the forget's: no message is delivered after it.
    let host = |a: &Action| match a {
        Get(h) | Forget(h) => Some(*h),
        _ => None,
    };
    let forget = cx.actions.iter().find(|a| matches!(a, Forget(_)));
    let last = cx.actions.last();
    assert!(matches!(last, Some(Get(_))), "{:?}", cx.actions);
    assert_ne!(
        last.and_then(host),
        forget.and_then(host),
        "{:?}",
        cx.actions
    );
}

/// As [`asks_only`] with one ask, one get and one crash (and its restart).
fn ask_crash_get(rule: Option<&str>) -> CheckConfig {
    let mut c = asks_only(rule);
    c.asks = 1;
    c.gets = 1;
    c.crashes = 1;
    c.depth = 10;
    c
}

/// A decision outlives a crash: no `get` that begins after an answer is told nothing
/// was chosen (129,820 states).
#[test]
fn an_ask_decision_survives_a_crash_within_ten_steps() {
    let r = explores_clean(&ask_crash_get(None));
    assert!(r.states > 100_000, "{} states", r.states);
}

/// Node 1's ask is decided with node 2; node 1 crashes, restarts with an empty disk and
/// gets the key with node 3, which never heard of it: nothing chosen.
#[test]
fn search_finds_forgetful_acceptor_losing_an_ask_decision() {
    let cx = finds(ask_crash_get(Some("forgetful-acceptor")), "a decision lost");
    assert!(cx.actions.iter().any(|a| matches!(a, Restart(_))));
    assert!(
        matches!(cx.actions.last(), Some(Deliver(_))),
        "{:?}",
        cx.actions
    );
}

/// With syncs as steps of their own and a crash, the safe log (an election, its recovery,
/// an append, its acknowledgement) shows no violation.
#[test]
fn the_safe_log_has_no_violation_within_eleven_steps() {
    let mut c = log_on(None);
    c.priorities = vec![Some(0), Some(0), None];
    c.appends = 1;
    c.crashes = 1;
    c.fires = Some(2);
    c.depth = 11;
    explores_clean(&c);
}

#[test]
fn search_finds_skip_recovery() {
    let mut c = failover(Some("skip-recovery"));
    c.depth = 16;
    let cx = finds(c, "acknowledged slot 0 before");
    assert!(
        cx.actions.contains(&Append(0)),
        "node 1's append was acknowledged"
    );
}

/// As [`failover`], with the link between nodes 1 and 3 down (node 1 governs with node
/// 2, node 2 then with node 3): a narrower network that reaches deeper.
fn failover_without_link_1_3(rule: &str) -> CheckConfig {
    let mut c = failover(Some(rule));
    c.cut = vec![(1, 3)];
    c
}

/// Node 2 is master before its recovery finished and reads a state without node 1's
/// acknowledged append.
#[test]
fn search_finds_stale_read() {
    let mut c = failover_without_link_1_3("stale-read");
    c.depth = 18;
    finds(c, "acknowledged slot 0 before");
}

/// Node 2's recovery learns slot 0 from its own acceptor but does not re-propose it.
#[test]
fn search_finds_no_repair() {
    let mut c = failover_without_link_1_3("no-repair");
    c.depth = 20;
    finds(c, "acknowledged slot 0 before");
}

/// Node 2 accepted node 1's append, restarts with an empty disk and answers again.
#[test]
fn search_finds_forgetful_acceptor() {
    let mut c = failover_without_link_1_3("forgetful-acceptor");
    c.fires = Some(2);
    c.depth = 19;
    let cx = finds(c, "acknowledged slot 0 before");
    assert!(cx.actions.contains(&Restart(1)), "node 2 restarts");
}

/// With syncs as steps: node 2 answers Accepted before its write is synced, and a crash
/// loses the write.
#[test]
fn search_finds_reply_before_persist() {
    let mut c = failover_without_link_1_3("reply-before-persist");
    c.instant_sync = false;
    c.fires = Some(2);
    c.depth = 19;
    let cx = finds(c, "acknowledged slot 0 before");
    assert!(cx.actions.iter().any(|a| matches!(a, Crash(_))));
}

/// The master compacts over an entry it accepted but nobody chose, and restores a
/// snapshot that claims it.
#[test]
fn search_finds_truncate_unchosen() {
    let mut c = failover_without_link_1_3("truncate-unchosen");
    c.priorities = vec![Some(0), None, None];
    c.appends = 2;
    c.compactions = 1;
    c.fires = Some(1);
    c.depth = 16;
    let cx = finds(c, "snapshot");
    assert!(cx.actions.iter().any(|a| matches!(a, Compact(_))));
}

#[test]
fn the_printed_test_sets_the_log_up() {
    let mut c = asks_only(Some("ask-unchosen"));
    c.depth = 11;
    let cx = check(&c).counterexample.expect("found");
    let text = cx.as_test(&c, "found");
    for line in [
        "config.log = true;",
        "config.asks = 2;",
        "config.appends = 0;",
        "config.instant_sync = true;",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

/// An opening for node 1 the only candidate (with node 2): node 1 wins the lease and
/// recovers its log, ready to append.
const MASTER_WITH_LOG_READY: [&str; 10] = [
    "node 1 timer",
    "deliver node 1 -> node 2",
    "deliver node 2 -> node 1",
    "deliver node 1 -> node 2",
    "deliver node 2 -> node 1",
    "node 1 syncs",
    "deliver node 1 -> node 2: Log",
    "node 2 syncs",
    "deliver node 2 -> node 1: Log",
    "node 1 syncs",
];

/// Node 1 the only candidate, syncs as steps, 1 crash, at most 2 timer firings,
/// retransmission every 1 s: room for a term, a crash and a second term.
fn node_1_alone(rule: Option<&str>) -> CheckConfig {
    let mut c = log_on(rule);
    c.priorities = vec![Some(0), None, None];
    c.retransmit = Duration::from_secs(1);
    c.crashes = 1;
    c.fires = Some(2);
    c
}

/// As [`node_1_alone`] with 1 append, 1 duplicate, each link keeping its newest message
/// in flight, and the opening that makes node 1 master with its log ready (the search in
/// docs/model-checking.md; 846,431 states, 19 s in a release build).
fn count_duplicate_accepts_bound(rule: Option<&str>) -> CheckConfig {
    let mut c = node_1_alone(rule);
    c.appends = 1;
    c.duplicates = 1;
    c.link_capacity = Some(1);
    c.opening = MASTER_WITH_LOG_READY.map(String::from).to_vec();
    c
}

#[test]
fn count_duplicate_accepts_counterexample_needs_the_rule() {
    // Found by `check` with `count_duplicate_accepts_bound` at depth 18 after the opening:
    // node 2's Accepted, delivered twice, counts as a majority while node 1's own write is
    // not synced; node 1 crashes, loses it, and wins again with node 3, which never had it.
    let steps = [
        Fire(0),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Deliver(0),
        Sync(0),
        Deliver(0),
        Sync(1),
        Deliver(0),
        Sync(0),
        Deliver(0),
        Append(0),
        Deliver(1),
        Sync(1),
        Duplicate(0),
        Deliver(0),
        Crash(0),
        Restart(0),
        Fire(0),
        Deliver(1),
        Deliver(0),
        Deliver(2),
        Deliver(0),
        Sync(0),
        Deliver(1),
        Sync(0),
        Sync(2),
        Deliver(0),
    ];
    replays_only_when_broken(
        count_duplicate_accepts_bound(Some("count-duplicate-accepts")),
        &steps,
        "acknowledged slot 0",
    );
}

#[test]
fn an_opening_starts_the_search_where_it_leads() {
    // The opening's ten steps are taken before the bound counts: at depth 0 the search
    // visits the one state they reach, and a violation found later replays from the start.
    let mut c = count_duplicate_accepts_bound(None);
    c.depth = 0;
    assert_eq!(explores_clean(&c).states, 1);
    // A step the opening names that is not enabled is reported with what is.
    c.opening.push("node 3 appends".into());
    let cx = check(&c).counterexample.expect("a bad opening is reported");
    assert!(
        cx.violation.starts_with("bad opening: opening step 11"),
        "{}",
        cx.violation
    );
    assert!(cx.violation.contains("node 1 appends"), "{}", cx.violation);
}

/// As [`node_1_alone`] with 2 appends and node 3 cut off from both others (nodes 1 and
/// 2 are a majority by themselves).
fn node_3_cut_off(rule: Option<&str>) -> CheckConfig {
    let mut c = node_1_alone(rule);
    c.appends = 2;
    c.cut = vec![(1, 3), (2, 3)];
    c
}

/// Node 1 appends v1 and crashes before its own write is synced; it restarts, forgets its
/// log ballot, wins again with the same one, and appends v2 at slot 0. The Accept of v1
/// still in flight reaches node 2, whose Accepted under the same ballot counts for v2, and
/// the commit makes node 2 apply v1 (62,177 states in a release build, about 1 s).
#[test]
fn search_finds_reuse_log_ballot() {
    let mut c = node_3_cut_off(Some("reuse-log-ballot"));
    c.depth = 27;
    let cx = finds(c, "slot 0: node 2 delivered");
    assert!(cx.actions.iter().any(|a| matches!(a, Crash(_))));
}

/// Every history within the same bound, with every rule intact, is explored: no violation.
#[test]
fn the_safe_log_survives_a_crash_mid_append_between_two_nodes() {
    let mut c = node_3_cut_off(None);
    c.depth = 27;
    explores_clean(&c);
}

/// As [`node_3_cut_off`] but only the link between nodes 2 and 3 is down, each link
/// keeps its newest two messages in flight, and every history starts with node 1 master
/// with its log ready, appending v1, which reaches node 3 only, and crashing before its own
/// write is synced (15 steps).
fn crash_mid_append(rule: Option<&str>) -> CheckConfig {
    let mut c = node_3_cut_off(rule);
    c.cut = vec![(2, 3)];
    c.link_capacity = Some(2);
    c.opening = MASTER_WITH_LOG_READY
        .into_iter()
        .chain([
            "node 1 appends",
            "deliver node 1 -> node 3: Log(Accept",
            "node 3 syncs",
            "node 1 crashes",
            "node 1 restarts",
        ])
        .map(String::from)
        .collect();
    c
}

/// The steps of [`crash_mid_append`]'s opening, as actions.
const CRASH_MID_APPEND_STEPS: [Action; 15] = [
    Fire(0),
    Deliver(0),
    Deliver(0),
    Deliver(0),
    Deliver(0),
    Sync(0),
    Deliver(1),
    Sync(1),
    Deliver(0),
    Sync(0),
    Append(0),
    Deliver(3),
    Sync(2),
    Crash(0),
    Restart(0),
];

/// After [`CRASH_MID_APPEND_STEPS`]: node 1's timer fires after its quarantine, it wins
/// the lease again with node 2 and sends node 2 its log's Prepare.
const WINS_AGAIN_WITH_NODE_2: [Action; 7] = [
    Fire(0),
    Deliver(2),
    Deliver(0),
    Deliver(2),
    Deliver(0),
    Sync(0),
    Deliver(1),
];

#[test]
fn apply_unchosen_counterexample_needs_the_rule() {
    // Found by `check` with `crash_mid_append` at depth 16 after the opening (477,754
    // states, 15 s in a release build): node 1 wins again with node 2 and appends v2 at
    // slot 0; the commit reaches node 3, which applies the v1 it accepted under the first
    // ballot.
    let steps = [
        CRASH_MID_APPEND_STEPS.as_slice(),
        WINS_AGAIN_WITH_NODE_2.as_slice(),
        &[
            Sync(0),
            Sync(1),
            Deliver(0),
            Append(0),
            Deliver(1),
            Sync(0),
            Sync(1),
            Deliver(0),
            Deliver(3),
        ],
    ]
    .concat();
    replays_only_when_broken(
        crash_mid_append(Some("apply-unchosen")),
        &steps,
        "slot 0: node 3 delivered",
    );
}

/// As [`crash_mid_append`] with a second crash and a third firing, and a longer opening:
/// node 1 also wins again with node 2 and has v2 chosen and acknowledged at slot 0
/// (30 steps), while node 3 alone still holds v1 under the first ballot.
fn v2_chosen_v1_at_node_3(rule: Option<&str>) -> CheckConfig {
    let mut c = crash_mid_append(rule);
    c.crashes = 2;
    c.fires = Some(3);
    c.opening.extend(
        [
            "node 1 timer",
            "deliver node 1 -> node 2: Prepare",
            "deliver node 2 -> node 1: Promise",
            "deliver node 1 -> node 2: Accept {",
            "deliver node 2 -> node 1: Accepted",
            "node 1 syncs",
            "deliver node 1 -> node 2: Log(Prepare",
            "node 2 syncs",
            "deliver node 2 -> node 1: Log",
            "node 1 syncs",
            "node 1 appends",
            "deliver node 1 -> node 2: Log(Accept",
            "node 2 syncs",
            "deliver node 2 -> node 1: Log",
            "node 1 syncs",
        ]
        .map(String::from),
    );
    c
}

#[test]
fn repair_any_value_counterexample_needs_the_rule() {
    // Found by `check` with `v2_chosen_v1_at_node_3` at depth 16 after the opening
    // (862,360 states, 26 s in a release build): node 1 crashes again, wins with node 3,
    // and its recovery hears v2 (ballot 2) from its own acceptor and v1 (ballot 1) from
    // node 3; keeping the lower ballot's value, it has v1 chosen at slot 0 with node 2.
    let steps = [
        CRASH_MID_APPEND_STEPS.as_slice(),
        WINS_AGAIN_WITH_NODE_2.as_slice(),
        &[
            Sync(1),
            Deliver(0),
            Sync(0),
            Append(0),
            Deliver(1),
            Sync(1),
            Deliver(0),
            Sync(0),
            Crash(0),
            Restart(0),
            Fire(0),
            Deliver(4),
            Deliver(1),
            Deliver(4),
            Deliver(1),
            Sync(0),
            Deliver(3),
            Sync(0),
            Sync(2),
            Deliver(1),
            Deliver(2),
            Sync(0),
            Sync(1),
            Deliver(0),
        ],
    ]
    .concat();
    let c = v2_chosen_v1_at_node_3(Some("repair-any-value"));
    replays_only_when_broken(c.clone(), &steps, "slot 0: node 1 delivered");
    // The opening names real steps: at depth 0 the search visits the one state they reach.
    let mut at_opening = c;
    at_opening.depth = 0;
    assert_eq!(explores_clean(&at_opening).states, 1);
}
