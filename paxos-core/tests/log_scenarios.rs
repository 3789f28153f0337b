//! The replicated log's known ways to get it wrong (docs/REPLICATION.md, R1-R8), each as
//! a deterministic shape through `Node`, run with the rule intact (safe) and with its
//! test-only switch (unsafe), like `scenarios.rs` does for the lease.

mod log_common;

use std::time::Duration;

use gen_paxos_core::ask::{AskEvent, AskMessage};
use gen_paxos_core::log::{LogEvent, LogMessage, Value};
use gen_paxos_core::{Event, LeaseName, Message, NodeId, UnsafeRule};
use log_common::{Cluster, LEASE, STEP, data, lease};

const MS20: Duration = Duration::from_millis(20);

/// Node 1 (priority 3) is master of a cluster breaking `rule` whose node 2 (priority 0)
/// hears nothing while node 1 appends `texts` (acknowledged by acceptors 1 and 3); node 3
/// stands for nothing. Returns the cluster, links restored.
fn acknowledged_without_node_2(rule: Option<UnsafeRule>, texts: &[&str]) -> Cluster {
    let mut c = Cluster::with(rule, [Some(3), Some(0), None]);
    let first = c.ready_master();
    assert_eq!(first, NodeId(1));
    c.cut = vec![(NodeId(1), NodeId(2)), (NodeId(3), NodeId(2))];
    for text in texts {
        assert!(c.append(first, text).is_ok());
    }
    c.run_for(Duration::from_millis(20));
    assert_eq!(c.acked(first), (0..texts.len() as u64).collect::<Vec<_>>());
    c.cut.clear();
    c
}

/// Node 1 is master and appends "a" and "b" while node 2 hears nothing (acked by 1 and 3);
/// node 1 crashes, node 2 (the only other candidate) takes over knowing none of it, and
/// appends "c". Returns what each live node delivered.
fn failover_to_an_uninformed_master(rule: Option<UnsafeRule>) -> (Vec<Value>, Vec<Value>) {
    let mut c = acknowledged_without_node_2(rule, &["a", "b"]);
    c.down.push(NodeId(1));
    c.run_for(LEASE * 3);
    let second = c.ready_master();
    assert_eq!(second, NodeId(2));
    assert!(c.append(second, "c").is_ok());
    c.run_for(Duration::from_millis(50));
    let values = |id| c.chosen(id).into_iter().map(|(_, v)| v).collect::<Vec<_>>();
    (values(NodeId(2)), values(NodeId(3)))
}

#[test]
fn scenario_recovery_keeps_what_an_earlier_master_acknowledged() {
    let (two, three) = failover_to_an_uninformed_master(None);
    let want = vec![data("a"), data("b"), data("c")];
    assert_eq!((two, three), (want.clone(), want));
}

#[test]
fn scenario_skip_recovery_overwrites_an_acknowledged_append() {
    let (two, three) = failover_to_an_uninformed_master(Some(UnsafeRule::SkipRecovery));
    assert_eq!(
        two.first(),
        Some(&data("c")),
        "slot 0 chosen again, with another value"
    );
    assert_eq!(
        three.first(),
        Some(&data("a")),
        "where node 3 delivered \"a\""
    );
}

#[test]
fn scenario_no_repair_overwrites_an_acknowledged_append() {
    let (two, three) = failover_to_an_uninformed_master(Some(UnsafeRule::NoRepair));
    assert_eq!(two.first(), Some(&data("c")));
    assert_eq!(three.first(), Some(&data("a")));
}

/// "a" is chosen by acceptors 1 and 3 (node 2 hears nothing); node 3 crashes and comes
/// back with `disk` (its own, or none); node 1 crashes; node 2 takes over and appends "c".
fn failover_after_a_restart(keep_disk: bool) -> Vec<Value> {
    let mut c = acknowledged_without_node_2(None, &["a"]);
    let disk = if keep_disk {
        c.hosts[&NodeId(3)].disk.clone()
    } else {
        Vec::new() // what the forgetful-acceptor switch does to a crashed host
    };
    c.restart(NodeId(3), disk, None);
    c.down.push(NodeId(1));
    c.run_for(LEASE * 3);
    let second = c.ready_master();
    assert_eq!(second, NodeId(2));
    assert!(c.append(second, "c").is_ok());
    c.run_for(Duration::from_millis(50));
    c.chosen(second).into_iter().map(|(_, v)| v).collect()
}

#[test]
fn scenario_an_acceptor_that_keeps_its_disk_keeps_what_it_accepted() {
    assert_eq!(failover_after_a_restart(true), vec![data("a"), data("c")]);
}

#[test]
fn scenario_a_forgetful_acceptor_loses_an_acknowledged_append() {
    assert_eq!(
        failover_after_a_restart(false),
        vec![data("c")],
        "the acknowledged \"a\" is gone"
    );
}

/// Node 2 wins the lease knowing nothing of the two appends node 1 had acknowledged, and
/// its recovery cannot finish yet (its first write is not confirmed). Returns whether it
/// would answer a read, and the state such a read would see.
fn read_on_a_master_still_recovering(rule: Option<UnsafeRule>) -> (bool, Option<u64>) {
    let mut c = acknowledged_without_node_2(rule, &["a", "b"]);
    c.down.push(NodeId(1));
    c.hold_writes = true;
    for _ in 0..2000 {
        if c.master() == Some(NodeId(2)) {
            break;
        }
        c.run_for(STEP);
    }
    assert_eq!(c.master(), Some(NodeId(2)));
    let node = &c.hosts[&NodeId(2)].node;
    (node.is_ready(c.now, &lease()), node.log_applied(&lease()))
}

#[test]
fn scenario_a_master_answers_reads_only_once_recovered() {
    assert_eq!(read_on_a_master_still_recovering(None), (false, Some(0)));
}

#[test]
fn scenario_stale_read_answers_before_recovery_and_misses_acknowledged_appends() {
    // It would answer from a state of 0 slots, though slots 0 and 1 were acknowledged.
    assert_eq!(
        read_on_a_master_still_recovering(Some(UnsafeRule::StaleRead)),
        (true, Some(0))
    );
}

// ---- 2: repair must take the highest-ballot value ------------------------------------

/// Slot 0 holds "a" from node 1's first tenure on acceptor 1 only, and "x" from node 2's
/// tenure on acceptors 2 and 3 (chosen and acknowledged). Node 2 crashes; node 1 restarts
/// from its disk and recovers from acceptors 1 and 3, then appends "y". Returns what node 1
/// and node 3 delivered.
fn repair_between_two_ballots(rule: Option<UnsafeRule>) -> (Vec<Value>, Vec<Value>) {
    let mut c = Cluster::with(rule, [Some(3), Some(2), None]);
    assert_eq!(c.ready_master(), NodeId(1));
    c.cut = vec![(NodeId(1), NodeId(2)), (NodeId(1), NodeId(3))];
    assert_eq!(c.append(NodeId(1), "a"), Ok(0));
    c.run_for(MS20);
    assert!(
        c.acked(NodeId(1)).is_empty(),
        "one acceptor is not a majority"
    );
    c.down.push(NodeId(1));
    c.cut.clear();
    c.run_for(LEASE * 3);
    assert_eq!(c.ready_master(), NodeId(2));
    assert_eq!(c.append(NodeId(2), "x"), Ok(0));
    c.run_for(MS20);
    assert_eq!(c.acked(NodeId(2)), vec![0]);
    c.down.push(NodeId(2));
    let disk = c.hosts[&NodeId(1)].disk.clone();
    c.restart(NodeId(1), disk, Some(3));
    c.run_for(LEASE * 3);
    assert_eq!(c.ready_master(), NodeId(1));
    assert!(c.append(NodeId(1), "y").is_ok());
    c.run_for(MS20);
    (c.values(NodeId(1)), c.values(NodeId(3)))
}

#[test]
fn scenario_repair_keeps_the_highest_ballot_value() {
    let want = vec![data("x"), data("y")];
    assert_eq!(repair_between_two_ballots(None), (want.clone(), want));
}

#[test]
fn scenario_repair_any_value_changes_a_chosen_slot() {
    let (one, three) = repair_between_two_ballots(Some(UnsafeRule::RepairAnyValue));
    assert_eq!(
        one.first(),
        Some(&data("a")),
        "the older ballot's value won"
    );
    assert_eq!(three.first(), Some(&data("x")), "where \"x\" was chosen");
}

// ---- 3: persist before reply ---------------------------------------------------------

/// Node 2 hears nothing while node 1 appends "a"; neither node 1's nor node 3's writes
/// reach their disks. Node 3 restarts from its disk, node 1 stays down, node 2 takes over
/// and appends "c". Returns what node 1 acknowledged and what node 2 delivered.
fn acknowledged_before_durable(rule: Option<UnsafeRule>) -> (Vec<u64>, Vec<Value>) {
    let mut c = Cluster::with(rule, [Some(3), Some(2), None]);
    assert_eq!(c.ready_master(), NodeId(1));
    c.cut = vec![(NodeId(1), NodeId(2)), (NodeId(3), NodeId(2))];
    c.held = vec![NodeId(1), NodeId(3)];
    assert_eq!(c.append(NodeId(1), "a"), Ok(0));
    c.run_for(MS20);
    let acked = c.acked(NodeId(1));
    c.down.push(NodeId(1));
    let disk = c.hosts[&NodeId(3)].disk.clone();
    c.restart(NodeId(3), disk, None);
    c.held.clear();
    c.cut.clear();
    (acked, c.node_2_takes_over_and_appends("c"))
}

#[test]
fn scenario_no_acknowledgement_before_the_acceptances_are_durable() {
    assert_eq!(acknowledged_before_durable(None), (vec![], vec![data("c")]));
}

#[test]
fn scenario_reply_before_persist_loses_an_acknowledged_append() {
    assert_eq!(
        acknowledged_before_durable(Some(UnsafeRule::ReplyBeforePersist)),
        (vec![0], vec![data("c")]),
        "\"a\" was acknowledged at slot 0, and slot 0 is \"c\""
    );
}

// ---- 6 and 8: a stray acceptance under an old ballot ---------------------------------

/// Node 1's first tenure leaves "a" accepted at slot 0 on acceptor 3 only (its own
/// acceptance never reached its disk). Node 1 restarts from its disk and, cut off from
/// node 3, chooses "b" at slot 0 with acceptor 2; then "c" reaches everyone. Returns what
/// node 3 delivered.
fn stray_acceptance_on_node_3(rule: Option<UnsafeRule>) -> Vec<Value> {
    let mut c = Cluster::with(rule, [Some(3), None, None]);
    assert_eq!(c.ready_master(), NodeId(1));
    c.cut = vec![(NodeId(1), NodeId(2))];
    c.held = vec![NodeId(1)];
    assert_eq!(c.append(NodeId(1), "a"), Ok(0));
    c.run_for(MS20);
    assert!(c.acked(NodeId(1)).is_empty());
    c.down.push(NodeId(1));
    c.held.clear();
    let disk = c.hosts[&NodeId(1)].disk.clone();
    c.restart(NodeId(1), disk, Some(3));
    c.cut = vec![(NodeId(1), NodeId(3)), (NodeId(3), NodeId(1))];
    c.run_for(LEASE * 3);
    assert_eq!(c.ready_master(), NodeId(1));
    assert_eq!(c.append(NodeId(1), "b"), Ok(0));
    c.run_for(MS20);
    assert_eq!(c.acked(NodeId(1)), vec![0]);
    c.cut.clear();
    assert_eq!(c.append(NodeId(1), "c"), Ok(1));
    c.run_for(Duration::from_millis(50));
    c.values(NodeId(3))
}

#[test]
fn scenario_a_replica_applies_only_what_the_committing_ballot_accepted() {
    assert_eq!(stray_acceptance_on_node_3(None), vec![data("b"), data("c")]);
}

#[test]
fn scenario_reuse_log_ballot_makes_a_stray_acceptance_look_chosen() {
    assert_eq!(
        stray_acceptance_on_node_3(Some(UnsafeRule::ReuseLogBallot)),
        vec![data("a"), data("c")],
        "the restarted master reused its first tenure's ballot"
    );
}

#[test]
fn scenario_apply_unchosen_applies_a_stray_acceptance() {
    assert_eq!(
        stray_acceptance_on_node_3(Some(UnsafeRule::ApplyUnchosen)),
        vec![data("a"), data("c")]
    );
}

// ---- 7: distinct acceptors, not replies ----------------------------------------------

/// Node 1 appends "a" while node 2 hears nothing and node 1's own acceptance waits for its
/// disk; node 3's Accepted arrives twice. Node 1 crashes (its acceptance lost); node 2 takes
/// over with acceptor 1, cut off from node 3, and appends "c". Returns what node 1
/// acknowledged and what node 2 delivered.
fn duplicated_acceptance(rule: Option<UnsafeRule>) -> (Vec<u64>, Vec<Value>) {
    let mut c = Cluster::with(rule, [Some(3), Some(2), None]);
    assert_eq!(c.ready_master(), NodeId(1));
    c.cut = vec![(NodeId(1), NodeId(2))];
    c.held = vec![NodeId(1)];
    c.duplicate = Some(|m| matches!(m, Message::Log(LogMessage::Accepted { .. })));
    assert_eq!(c.append(NodeId(1), "a"), Ok(0));
    c.run_for(MS20);
    let acked = c.acked(NodeId(1));
    c.down.push(NodeId(1));
    c.held.clear();
    c.duplicate = None;
    let disk = c.hosts[&NodeId(1)].disk.clone();
    c.restart(NodeId(1), disk, None);
    c.cut = vec![
        (NodeId(3), NodeId(1)),
        (NodeId(1), NodeId(3)),
        (NodeId(3), NodeId(2)),
        (NodeId(2), NodeId(3)),
    ];
    (acked, c.node_2_takes_over_and_appends("c"))
}

#[test]
fn scenario_one_acceptor_twice_is_not_a_majority() {
    assert_eq!(duplicated_acceptance(None), (vec![], vec![data("c")]));
}

#[test]
fn scenario_count_duplicate_accepts_acknowledges_what_one_acceptor_holds() {
    assert_eq!(
        duplicated_acceptance(Some(UnsafeRule::CountDuplicateAccepts)),
        (vec![0], vec![data("c")]),
        "\"a\" was acknowledged at slot 0, and slot 0 is \"c\""
    );
}

// ---- 9: truncate only what is known chosen -------------------------------------------

/// Node 1 appends "a", chosen by acceptors 1 and 3, but node 3 never hears that it is
/// chosen (commits are lost) and snapshots its empty state. Node 1 crashes; node 2
/// recovers from acceptors 2 and 3. Returns node 2's log events.
fn snapshot_over_an_unknown_slot(rule: Option<UnsafeRule>) -> Vec<LogEvent> {
    let mut c = Cluster::with(rule, [Some(3), Some(2), None]);
    assert_eq!(c.ready_master(), NodeId(1));
    c.cut = vec![(NodeId(1), NodeId(2))];
    c.lose = Some(|_, m| matches!(m, Message::Log(LogMessage::Commit { .. })));
    assert_eq!(c.append(NodeId(1), "a"), Ok(0));
    c.run_for(MS20);
    assert_eq!(c.acked(NodeId(1)), vec![0]);
    let now = c.now;
    let node = &mut c.hosts.get_mut(&NodeId(3)).expect("host").node;
    assert_eq!(node.log_applied(&lease()), Some(0));
    let _ = node.compact_log(now, &lease(), 0, &b""[..]);
    c.pump();
    c.down.push(NodeId(1));
    c.cut.clear();
    c.lose = None;
    c.run_for(LEASE * 3);
    assert_eq!(c.ready_master(), NodeId(2));
    c.log_events(NodeId(2))
}

#[test]
fn scenario_a_snapshot_of_what_was_applied_keeps_an_acknowledged_append() {
    let events = snapshot_over_an_unknown_slot(None);
    assert!(
        events.contains(&LogEvent::Chosen {
            slot: 0,
            value: data("a")
        }),
        "{events:?}"
    );
}

#[test]
fn scenario_truncate_unchosen_loses_an_acknowledged_append() {
    let events = snapshot_over_an_unknown_slot(Some(UnsafeRule::TruncateUnchosen));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LogEvent::InstallSnapshot { upto: 1, data } if data.is_empty())),
        "node 2 took an empty state for slot 0: {events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, LogEvent::Chosen { .. })));
}

// ---- 10: ask answers only what is chosen ---------------------------------------------

/// Node 1's ask("one") is accepted by its own acceptor only (its Accepts are lost); node 2
/// reads the key; node 3, cut off from node 1, asks "three". Returns the answers of nodes
/// 2 and 3.
fn ask_after_a_lone_acceptance(rule: Option<UnsafeRule>) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut c = Cluster::with(rule, [None, None, None]);
    c.run_for(STEP);
    let key = LeaseName::new("config").expect("valid");
    c.lose =
        Some(|from, m| from == NodeId(1) && matches!(m, Message::Ask(AskMessage::Accept { .. })));
    let now = c.now;
    let host = c.hosts.get_mut(&NodeId(1)).expect("host");
    host.node.ask(now, &key, &b"one"[..]);
    c.run_for(MS20);
    let now = c.now;
    let host = c.hosts.get_mut(&NodeId(2)).expect("host");
    host.node.get(now, &key);
    c.run_for(Duration::from_millis(200));
    c.cut = vec![(NodeId(1), NodeId(3)), (NodeId(3), NodeId(1))];
    let now = c.now;
    let host = c.hosts.get_mut(&NodeId(3)).expect("host");
    host.node.ask(now, &key, &b"three"[..]);
    c.run_for(Duration::from_millis(200));
    let answers = |id| {
        c.hosts[&NodeId(id)]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Ask(AskEvent::Decided { value, .. }) => Some(value.to_vec()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    (answers(2), answers(3))
}

#[test]
fn scenario_ask_answers_what_a_majority_chose() {
    let one = b"one".to_vec();
    assert_eq!(
        ask_after_a_lone_acceptance(None),
        (vec![one.clone()], vec![one])
    );
}

#[test]
fn scenario_ask_unchosen_answers_two_values_for_one_instance() {
    assert_eq!(
        ask_after_a_lone_acceptance(Some(UnsafeRule::AskUnchosen)),
        (vec![b"one".to_vec()], vec![b"three".to_vec()])
    );
}
