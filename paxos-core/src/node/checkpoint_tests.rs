//! `Node::checkpoint`: restoring from it gives the durable state restoring from every record
//! before it gives (each acceptor's promise, entries and snapshot, every proposer counter,
//! every `ask` instance, promise and acceptance), in fewer records.

use std::sync::Arc;

use crate::durable::Record;
use crate::id::{Incarnation, LeaseName, NodeId};
use crate::log::{LogBallot, Value};
use crate::time::Timestamp;
use crate::{Config, Node};

fn b(counter: u64, node: u64) -> LogBallot {
    LogBallot {
        counter,
        node: NodeId(node),
    }
}

fn name(s: &str) -> LeaseName {
    LeaseName::new(s).expect("valid")
}

fn node(records: Vec<Record>) -> Node {
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let mut n = Node::new(
        Config::new(NodeId(1), ids),
        Timestamp::ZERO,
        Incarnation(1),
        1,
        1,
    )
    .expect("valid");
    n.restore(records);
    n
}

/// A history as a node writes it: promises and acceptances superseded by later ones, a
/// snapshot that cuts entries, counters, `ask` instances moved on by a forget.
fn history() -> Vec<Record> {
    let (db, other, key) = (name("db"), name("other"), name("config"));
    let data = |t: &str| Value::Data(t.as_bytes().into());
    let value = |t: &str| -> Arc<[u8]> { t.as_bytes().into() };
    let mut h = vec![
        Record::Counter {
            lease: db.clone(),
            counter: 1,
        },
        Record::Promised {
            lease: db.clone(),
            ballot: b(1, 2),
        },
        Record::Accepted {
            lease: db.clone(),
            slot: 0,
            ballot: b(1, 2),
            value: data("a"),
        },
        Record::Accepted {
            lease: db.clone(),
            slot: 1,
            ballot: b(1, 2),
            value: data("b"),
        },
        Record::Promised {
            lease: db.clone(),
            ballot: b(3, 1),
        },
        Record::Accepted {
            lease: db.clone(),
            slot: 1,
            ballot: b(3, 1),
            value: data("B"),
        },
        Record::Accepted {
            lease: db.clone(),
            slot: 2,
            ballot: b(3, 1),
            value: data("c"),
        },
        Record::Counter {
            lease: db.clone(),
            counter: 3,
        },
        Record::Snapshot {
            lease: db.clone(),
            upto: 1,
            data: value("a"),
        },
        Record::Accepted {
            lease: db.clone(),
            slot: 5,
            ballot: b(3, 1),
            value: Value::Noop,
        },
        Record::Counter {
            lease: other.clone(),
            counter: 7,
        },
        Record::Promised {
            lease: other.clone(),
            ballot: b(9, 3),
        },
        Record::AskInstance {
            key: key.clone(),
            instance: 0,
        },
        Record::AskPromised {
            key: key.clone(),
            instance: 0,
            ballot: b(1, 2),
        },
        Record::AskAccepted {
            key: key.clone(),
            instance: 0,
            ballot: b(1, 2),
            value: value("x"),
        },
        Record::AskCounter {
            key: key.clone(),
            counter: 2,
        },
        Record::AskInstance {
            key: key.clone(),
            instance: 1,
        },
        Record::AskPromised {
            key: key.clone(),
            instance: 1,
            ballot: b(4, 3),
        },
        Record::AskCounter {
            key: name("mine"),
            counter: 5,
        },
    ];
    // Many more acceptances, all cut by a later snapshot.
    for slot in 6..200 {
        h.push(Record::Accepted {
            lease: db.clone(),
            slot,
            ballot: b(3, 1),
            value: data("v"),
        });
    }
    h.push(Record::Snapshot {
        lease: db.clone(),
        upto: 190,
        data: value("state"),
    });
    h
}

fn assert_same_durable_state(a: &Node, b: &Node) {
    let (ra, rb) = (&a.replication, &b.replication);
    assert_eq!(
        ra.logs.keys().collect::<Vec<_>>(),
        rb.logs.keys().collect::<Vec<_>>()
    );
    for (name, log) in &ra.logs {
        let other = &rb.logs[name];
        assert_eq!(log.acceptor, other.acceptor, "{name}");
        assert_eq!(log.learner.applied(), other.learner.applied(), "{name}");
    }
    assert_eq!(ra.ask_acceptors, rb.ask_acceptors);
    assert_eq!(ra.ask_proposers.durable(), rb.ask_proposers.durable());
}

#[test]
fn a_checkpoint_restores_the_same_durable_state_in_fewer_records() {
    let full = history();
    let a = node(full.clone());
    let checkpoint = a.checkpoint();
    assert!(
        checkpoint.len() * 5 < full.len(),
        "{} records",
        checkpoint.len()
    );
    let b = node(checkpoint.clone());
    assert_same_durable_state(&a, &b);
    // The counters survive into proposers made after the restore.
    let (mut a, mut b) = (a, b);
    for n in [&mut a, &mut b] {
        n.enable_log(&name("db")).expect("a voter");
        n.enable_log(&name("other")).expect("a voter");
    }
    for lease in ["db", "other"] {
        let counter = |n: &Node| {
            n.replication.logs[&name(lease)]
                .proposer
                .as_ref()
                .map(|p| p.counter())
        };
        assert_eq!(counter(&a), counter(&b), "{lease}");
    }
    assert_eq!(
        a.replication.logs[&name("db")]
            .proposer
            .as_ref()
            .map(|p| p.counter()),
        Some(3)
    );
    // A checkpoint of the restored checkpoint is the same records: nothing drifts.
    assert_eq!(b.checkpoint(), checkpoint);
}

#[test]
fn a_checkpoint_after_appending_to_it_restores_like_the_whole_history() {
    // Storage rewrites to a checkpoint, then appends what comes after: restore reads both.
    let full = history();
    let (head, tail) = full.split_at(60);
    let mut rewritten = node(head.to_vec()).checkpoint();
    rewritten.extend_from_slice(tail);
    assert_same_durable_state(&node(full.clone()), &node(rewritten));
}
