//! The replicated log and `ask` through `Node` (docs/REPLICATION.md): the lease admits the
//! log's proposer (R1), recovery comes before appends (R2), the runtime makes records
//! durable before replies leave (R3), every replica applies the same entries in order
//! (R5), an acknowledged append survives a failover, a snapshot stands in for the entries
//! it covers (R7), and `ask` answers alike everywhere. The shapes of the known mistakes
//! are in `log_scenarios.rs`.

mod log_common;

use std::sync::Arc;
use std::time::Duration;

use gen_paxos_core::ask::AskEvent;
use gen_paxos_core::log::{AppendError, CompactError, LogEvent, Value};
use gen_paxos_core::{Event, LeaseName, NodeId, Record};
use log_common::{Cluster, LEASE, data, lease, start};

#[test]
fn the_master_recovers_then_appends_reach_every_replica_in_order() {
    let mut c = Cluster::new();
    assert_eq!(c.append(NodeId(1), "early"), Err(AppendError::NotMaster));
    let m = c.ready_master();
    for text in ["a", "b", "c"] {
        assert!(c.append(m, text).is_ok());
    }
    c.run_for(Duration::from_millis(50));
    assert_eq!(c.acked(m), vec![0, 1, 2]);
    let want = vec![(0, data("a")), (1, data("b")), (2, data("c"))];
    for id in (1..=3).map(NodeId) {
        assert_eq!(c.chosen(id), want, "node {id}");
    }
    // R3: what an acceptor answered is on its disk.
    let other = (1..=3)
        .map(NodeId)
        .find(|id| *id != m)
        .expect("another node");
    let accepted = c.hosts[&other]
        .disk
        .iter()
        .filter(|r| matches!(r, Record::Accepted { .. }))
        .count();
    assert!(accepted >= 3, "{accepted} acceptances written");
    // R7: a snapshot lets the entries below it go, never past what is applied.
    let now = c.now;
    let node = &mut c.hosts.get_mut(&other).expect("host").node;
    assert_eq!(node.compact_log(now, &lease(), 2, &b"ab"[..]), Ok(2));
    assert_eq!(
        node.compact_log(now, &lease(), 99, &b"abc?"[..]),
        Err(CompactError::NotApplied { applied: 3 })
    );
    // A snapshot no peer would accept does not cut the log: a replica behind it could
    // never catch up.
    let huge = vec![0u8; (15 << 20) + 1];
    assert_eq!(
        node.compact_log(now, &lease(), 3, huge),
        Err(CompactError::TooLarge {
            len: (15 << 20) + 1,
            max: 15 << 20
        })
    );
    assert_eq!(
        node.log_snapshot(&lease()),
        Some((2, Arc::from(&b"ab"[..])))
    );
}

#[test]
fn acknowledged_appends_survive_a_crash_of_the_master_and_a_restart_from_disk() {
    let mut c = Cluster::new();
    let first = c.ready_master();
    for text in ["a", "b"] {
        assert!(c.append(first, text).is_ok());
    }
    c.run_for(Duration::from_millis(20));
    assert_eq!(c.acked(first), vec![0, 1]);
    // The master crashes; another is elected after the lease and recovers the log.
    c.down.push(first);
    c.run_for(LEASE * 3);
    let second = c.ready_master();
    assert_ne!(second, first);
    assert_eq!(c.chosen(second)[..2], [(0, data("a")), (1, data("b"))]);
    assert!(c.append(second, "c").is_ok());
    c.run_for(Duration::from_millis(20));
    let slots: Vec<u64> = c.acked(second);
    assert_eq!(
        slots.last(),
        Some(&2),
        "after the recovered entries, not over them"
    );
    // The old master restarts from its disk and catches up.
    let disk = c.hosts[&first].disk.clone();
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let now = c.now;
    let host = c.hosts.get_mut(&first).expect("host");
    host.node = start(first, &ids, now, disk);
    host.events.clear();
    c.down.clear();
    assert!(c.append(second, "d").is_ok());
    c.run_for(Duration::from_millis(100));
    let replayed: Vec<Value> = c.chosen(first).into_iter().map(|(_, v)| v).collect();
    assert_eq!(replayed, vec![data("a"), data("b"), data("c"), data("d")]);
}

#[test]
fn no_reply_leaves_before_the_runtime_confirms_the_write() {
    let mut c = Cluster::new();
    let m = c.ready_master();
    c.hold_writes = true;
    assert!(c.append(m, "x").is_ok());
    c.run_for(Duration::from_millis(50));
    assert!(
        c.acked(m).is_empty(),
        "no acceptance was durable, so none was sent"
    );
    c.hold_writes = false;
    c.run_for(Duration::from_millis(50));
    assert_eq!(c.acked(m), vec![0]);
}

#[test]
fn ask_answers_the_same_value_on_every_node() {
    let mut c = Cluster::new();
    c.run_for(LEASE * 2);
    let key = LeaseName::new("config").expect("valid");
    let now = c.now;
    for (id, value) in [(1, "one"), (2, "two"), (3, "three")] {
        let host = c.hosts.get_mut(&NodeId(id)).expect("host");
        host.node.ask(now, &key, value.as_bytes());
    }
    c.run_for(Duration::from_millis(500));
    let answers: Vec<Vec<u8>> = (1..=3)
        .map(NodeId)
        .filter_map(|id| {
            c.hosts[&id].events.iter().find_map(|e| match e {
                Event::Ask(AskEvent::Decided { value, .. }) => Some(value.to_vec()),
                _ => None,
            })
        })
        .collect();
    assert_eq!(answers.len(), 3, "every node got an answer");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    // Every node was told the decision: a local read (maybe stale) has it too.
    for id in (1..=3).map(NodeId) {
        let (instance, value) = c.hosts[&id].node.ask_local(&key);
        assert_eq!(
            (instance, value.map(|v| v.to_vec())),
            (0, Some(answers[0].clone()))
        );
    }
}

#[test]
fn a_replica_that_missed_compacted_entries_installs_the_snapshot_and_keeps_it_across_a_restart() {
    let mut c = Cluster::new();
    let m = c.ready_master();
    let behind = (1..=3).map(NodeId).find(|id| *id != m).expect("a follower");
    c.down.push(behind);
    for text in ["a", "b", "c"] {
        assert!(c.append(m, text).is_ok());
    }
    c.run_for(Duration::from_millis(20));
    // The live nodes snapshot "abc" (their applied state) and drop the entries.
    let now = c.now;
    for id in (1..=3).map(NodeId).filter(|id| *id != behind) {
        let node = &mut c.hosts.get_mut(&id).expect("host").node;
        assert_eq!(node.compact_log(now, &lease(), 3, &b"abc"[..]), Ok(3));
    }
    c.pump();
    c.down.clear();
    assert!(c.append(m, "d").is_ok());
    c.run_for(Duration::from_millis(50));
    let events = c.log_events(behind);
    let installed = events.iter().position(
        |e| matches!(e, LogEvent::InstallSnapshot { upto: 3, data } if &data[..] == b"abc"),
    );
    assert!(installed.is_some(), "{events:?}");
    assert_eq!(c.chosen(behind), vec![(3, data("d"))]);
    // Restarted from its disk, it has the snapshot back and goes on from slot 3 on.
    let disk = c.hosts[&behind].disk.clone();
    c.restart(behind, disk, Some(3));
    let node = &c.hosts[&behind].node;
    assert_eq!(
        node.log_snapshot(&lease()),
        Some((3, Arc::from(&b"abc"[..])))
    );
    assert_eq!(node.log_applied(&lease()), Some(3));
    assert!(c.append(m, "e").is_ok());
    c.run_for(Duration::from_millis(50));
    assert_eq!(c.chosen(behind), vec![(3, data("d")), (4, data("e"))]);
}

#[test]
fn a_replica_restarted_on_its_disk_learns_the_log_without_new_appends() {
    let mut c = Cluster::new();
    let m = c.ready_master();
    for text in ["a", "b", "c"] {
        assert!(c.append(m, text).is_ok());
    }
    c.run_for(Duration::from_millis(20));
    let other = (1..=3).map(NodeId).find(|id| *id != m).expect("a follower");
    let disk = c.hosts[&other].disk.clone();
    c.restart(other, disk, Some(3));
    assert!(c.chosen(other).is_empty());
    // Nothing more is appended: the master's renewals repeat the commit, and the
    // restarted replica fetches what it lacks.
    c.run_for(LEASE);
    let values: Vec<Value> = c.chosen(other).into_iter().map(|(_, v)| v).collect();
    assert_eq!(values, vec![data("a"), data("b"), data("c")]);
}
