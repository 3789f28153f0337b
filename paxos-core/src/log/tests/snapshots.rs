//! Snapshots (R7) among the log's roles: a replica behind one installs it, a new master
//! behind one installs it before it is ready, the hint to take one; and stray or malformed
//! input that must be dropped without a panic.

use super::*;

impl Cluster {
    /// R7 on replica `id`: its application snapshots the state after every slot it applied.
    fn compact(&mut self, id: u64, state: &str) {
        let rep = self.r(id);
        let upto = rep.log.learner.applied();
        let mut records = Vec::new();
        rep.log
            .acceptor
            .cover(&lease(), upto, state.as_bytes().into(), &mut records);
        rep.log.learner.compact(upto);
        rep.records.append(&mut records);
    }

    fn installed(&self, id: u64) -> Vec<(Slot, Vec<u8>)> {
        self.events(id)
            .iter()
            .filter_map(|e| match e {
                LogEvent::InstallSnapshot { upto, data } => Some((*upto, data.to_vec())),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_replica_behind_a_snapshot_installs_it_then_applies_what_follows() {
    let mut c = Cluster::appended_without_3();
    c.compact(1, "abc");
    c.compact(2, "abc");
    c.cut.clear();
    let _ = c.append(1, "d");
    c.run();
    c.tick();
    c.run();
    // 3 asked for slots 0..3; nobody keeps them: it gets the snapshot instead.
    assert_eq!(c.installed(3), vec![(3, b"abc".to_vec())]);
    assert_eq!(c.delivered(3), vec![(3, data("d"))]);
    let install = c
        .events(3)
        .iter()
        .position(|e| matches!(e, LogEvent::InstallSnapshot { .. }));
    let chosen = c
        .events(3)
        .iter()
        .position(|e| matches!(e, LogEvent::Chosen { .. }));
    assert!(install < chosen, "the state first, then the slots after it");
    // Its acceptor holds the snapshot now (made durable), not the entries below it.
    assert_eq!(c.r(3).log.acceptor.snapshot(), 3);
    assert!(
        c.r(3)
            .records
            .iter()
            .any(|r| matches!(r, Record::Snapshot { upto: 3, .. }))
    );
}

#[test]
fn a_new_master_behind_the_voters_snapshot_installs_it_before_it_is_ready() {
    let mut c = Cluster::appended_without_3();
    c.compact(1, "abc");
    c.compact(2, "abc");
    // 3, which applied nothing, wins the next tenure; the snapshots sent to it are lost.
    c.cut.clear();
    c.lose_snapshots = true;
    c.start(3);
    c.run();
    c.tick();
    c.run();
    assert!(c.installed(3).is_empty());
    assert!(
        !c.r(3).proposer().is_ready(),
        "not ready without the snapshot"
    );
    assert_eq!(c.append(3, "x"), Err(AppendError::NotReady));
    // The Fetch is retransmitted until a voter's snapshot gets through.
    c.lose_snapshots = false;
    c.tick();
    c.run();
    assert_eq!(c.installed(3), vec![(3, b"abc".to_vec())]);
    assert!(c.r(3).proposer().is_ready());
    let ready = c
        .events(3)
        .iter()
        .position(|e| matches!(e, LogEvent::Ready { chosen: 3 }));
    let install = c
        .events(3)
        .iter()
        .position(|e| matches!(e, LogEvent::InstallSnapshot { .. }));
    assert!(ready.is_some() && install < ready, "{:?}", c.events(3));
    assert_eq!(c.append(3, "d"), Ok(3));
    c.run();
    assert_eq!(c.delivered(1).last(), Some(&(3, data("d"))));
}

#[test]
fn stray_replies_and_reversed_ranges_are_dropped_without_a_panic() {
    let mut c = Cluster::new(3);
    c.start(1);
    c.run();
    assert_eq!(c.append(1, "a"), Ok(0));
    c.run();
    let ballot = c.r(1).proposer().ballot().expect("a tenure");
    let before = c.delivered(1);
    // Accepted for slots this tenure never proposed (a reply from an earlier tenure of a
    // reused ballot, or forged), and a fetch whose range runs backwards.
    for message in [
        LogMessage::Accepted {
            ballot,
            first: 50,
            count: 3,
        },
        LogMessage::Accepted {
            ballot,
            first: u64::MAX,
            count: u64::MAX,
        },
        LogMessage::Fetch { from: 9, to: 2 },
        LogMessage::Fetch { from: 1, to: 0 },
    ] {
        c.deliver(NodeId(2), NodeId(1), message);
    }
    c.run();
    assert_eq!(c.delivered(1), before);
    // A snapshot over the size limit is refused, not installed.
    let big = vec![0u8; LogLimits::default().max_snapshot_len + 1];
    let mut fx = Effects::default();
    let rep = c.r(2);
    let result = rep.log.handle(
        Timestamp::ZERO,
        NodeId(1),
        &lease(),
        LogMessage::Snapshot {
            upto: 5,
            data: big.into(),
        },
        &mut fx,
    );
    assert!(result.is_err());
    assert!(fx.events.is_empty() && fx.records.is_empty());
    assert_eq!(c.r(2).log.learner.applied(), 1);
}

#[test]
fn a_hint_to_snapshot_comes_every_half_window_of_applied_slots() {
    let limits = LogLimits {
        window: 8,
        ..LogLimits::default()
    };
    let mut learner = LogLearner::new(limits, RETRANSMIT, 0, Rules::default());
    let mut fx = Effects::default();
    for slot in 0..9 {
        learner.learn(slot, data("x"), &mut fx);
    }
    let hints: Vec<Slot> = fx
        .events
        .iter()
        .filter_map(|e| match e {
            LogEvent::SnapshotNeeded { applied } => Some(*applied),
            _ => None,
        })
        .collect();
    assert_eq!(hints, vec![4, 8]);
    // A snapshot at 11 moves the next hint from 12 to 15.
    let mut fx = Effects::default();
    for slot in 9..11 {
        learner.learn(slot, data("x"), &mut fx);
    }
    learner.compact(11);
    for slot in 11..16 {
        learner.learn(slot, data("x"), &mut fx);
    }
    let hints: Vec<Slot> = fx
        .events
        .iter()
        .filter_map(|e| match e {
            LogEvent::SnapshotNeeded { applied } => Some(*applied),
            _ => None,
        })
        .collect();
    assert_eq!(hints, vec![15]);
}
