//! Durability as output (R3): the records a node needs made durable, and the gate that
//! holds back every message depending on them until the runtime confirms the write.
//!
//! The core never touches a disk. During an input, the log's roles add [`Record`]s; when
//! the input is handled they leave the node as one [`PersistRequest`] with a token, and
//! every message produced meanwhile or later waits until the runtime says the request (and
//! so every earlier one) is durable. Holding back everything produced after an unconfirmed
//! record is conservative: a reply never overtakes a record it might depend on.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::id::LeaseName;
use crate::log::{LogBallot, Slot, Value};

/// One durable fact. The runtime writes records in the order given, makes them durable
/// (written and synced, or the storage's equivalent) and gives every record back, in
/// order, when the node starts again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum Record {
    /// The log acceptor of `lease` promised `ballot` (and no lower one may be accepted).
    Promised {
        /// The lease.
        lease: LeaseName,
        /// The ballot promised.
        ballot: LogBallot,
    },
    /// The log acceptor of `lease` accepted `value` for `slot` under `ballot`.
    Accepted {
        /// The lease.
        lease: LeaseName,
        /// The slot.
        slot: Slot,
        /// The ballot it was accepted under.
        ballot: LogBallot,
        /// The value.
        value: Value,
    },
    /// Every slot of `lease` below `upto` is chosen and covered by the application's
    /// snapshot `data`; the entries below it are no longer needed (R7). Only the latest
    /// snapshot record of a lease matters at restore.
    Snapshot {
        /// The lease.
        lease: LeaseName,
        /// The first slot not covered.
        upto: Slot,
        /// The application's state after every slot below `upto`.
        data: std::sync::Arc<[u8]>,
    },
    /// The log proposer of `lease` on this node has used counters up to `counter`: it never
    /// uses them again, not even after a restart (the mistake the `reuse-log-ballot` switch will make).
    Counter {
        /// The lease.
        lease: LeaseName,
        /// The highest counter used.
        counter: u64,
    },
    /// The `ask` acceptor of `key` promised `ballot` in `instance`.
    AskPromised {
        /// The key.
        key: LeaseName,
        /// Its instance.
        instance: u64,
        /// The ballot promised.
        ballot: LogBallot,
    },
    /// The `ask` acceptor of `key` accepted `value` under `ballot` in `instance`.
    AskAccepted {
        /// The key.
        key: LeaseName,
        /// Its instance.
        instance: u64,
        /// The ballot.
        ballot: LogBallot,
        /// The value.
        value: std::sync::Arc<[u8]>,
    },
    /// The `ask` acceptor of `key` moved on to `instance` (a `forget`): earlier instances
    /// are over for it.
    AskInstance {
        /// The key.
        key: LeaseName,
        /// The instance now open.
        instance: u64,
    },
    /// The `ask` proposer of `key` on this node has used counters up to `counter`.
    AskCounter {
        /// The key.
        key: LeaseName,
        /// The highest counter used.
        counter: u64,
    },
}

impl Record {
    /// The lease (or, for `ask`, the key) the record belongs to.
    pub fn name(&self) -> &LeaseName {
        match self {
            Record::Promised { lease, .. }
            | Record::Accepted { lease, .. }
            | Record::Snapshot { lease, .. }
            | Record::Counter { lease, .. } => lease,
            Record::AskPromised { key, .. }
            | Record::AskAccepted { key, .. }
            | Record::AskInstance { key, .. }
            | Record::AskCounter { key, .. } => key,
        }
    }
}

/// Records to make durable, in order; confirm with the token once they are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersistRequest {
    /// Confirms this request and every earlier one.
    pub token: u64,
    /// What to write, in order.
    pub records: Vec<Record>,
}

/// Why a confirmation was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ConfirmError {
    /// No request with this token was handed out.
    Unknown,
    /// A write failed earlier: nothing held is released any more.
    Failed,
}

/// Holds items (messages) back until the records before them are durable.
#[derive(Debug, Clone, Hash)]
pub(crate) struct Gate<T> {
    /// Records of the input being handled, not yet requested.
    open: Vec<Record>,
    /// The token the open records will get.
    next_token: u64,
    /// Requests not yet polled by the runtime.
    requested: VecDeque<PersistRequest>,
    /// The highest token confirmed durable.
    confirmed: u64,
    /// Items waiting for a token, in the order produced.
    held: VecDeque<(u64, T)>,
    /// A write failed: this node's durable state is in doubt.
    failed: bool,
    /// Unsafe `reply-before-persist`: nothing is held back.
    leaky: bool,
}

impl<T> Default for Gate<T> {
    fn default() -> Self {
        Gate {
            open: Vec::new(),
            next_token: 1,
            requested: VecDeque::new(),
            confirmed: 0,
            held: VecDeque::new(),
            failed: false,
            leaky: false,
        }
    }
}

impl<T> Gate<T> {
    /// A gate; a `leaky` one (the unsafe `reply-before-persist`) holds nothing back.
    pub(crate) fn leaky(leaky: bool) -> Self {
        Gate {
            leaky,
            ..Gate::default()
        }
    }

    /// Adds a record to make durable before anything produced from now on leaves.
    pub(crate) fn record(&mut self, record: Record) {
        self.open.push(record);
    }

    /// The item, if nothing it may depend on is waiting to be durable; otherwise it is
    /// held until that is confirmed.
    pub(crate) fn pass(&mut self, item: T) -> Option<T> {
        let wait_for = if self.open.is_empty() {
            self.next_token - 1
        } else {
            self.next_token
        };
        if self.failed {
            return None;
        }
        if wait_for <= self.confirmed || self.leaky {
            Some(item)
        } else {
            self.held.push_back((wait_for, item));
            None
        }
    }

    /// Ends an input: the records added during it become one request.
    pub(crate) fn seal(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.open);
        self.requested.push_back(PersistRequest {
            token: self.next_token,
            records,
        });
        self.next_token += 1;
    }

    /// The next request for the runtime.
    pub(crate) fn poll_persist(&mut self) -> Option<PersistRequest> {
        self.requested.pop_front()
    }

    /// The runtime made request `token` (and every earlier one) durable: the items that
    /// waited for it, in the order they were produced.
    pub(crate) fn confirm(&mut self, token: u64) -> Result<Vec<T>, ConfirmError> {
        if self.failed {
            return Err(ConfirmError::Failed);
        }
        if token == 0 || token >= self.next_token {
            return Err(ConfirmError::Unknown);
        }
        self.confirmed = self.confirmed.max(token);
        let mut out = Vec::new();
        while self.held.front().is_some_and(|(t, _)| *t <= self.confirmed) {
            if let Some((_, item)) = self.held.pop_front() {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// A write failed: nothing held leaves, ever; what was held is dropped.
    pub(crate) fn fail(&mut self) {
        self.failed = true;
        self.held.clear();
        self.open.clear();
    }

    /// Whether a write failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Items held.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    fn lease() -> LeaseName {
        LeaseName::new("log").expect("valid")
    }

    fn promised(counter: u64) -> Record {
        Record::Promised {
            lease: lease(),
            ballot: LogBallot {
                counter,
                node: NodeId(1),
            },
        }
    }

    #[test]
    fn nothing_outstanding_passes_at_once() {
        let mut gate: Gate<&str> = Gate::default();
        assert_eq!(gate.pass("a"), Some("a"));
        gate.seal();
        assert_eq!(gate.poll_persist(), None, "no records, no request");
    }

    #[test]
    fn a_reply_waits_for_the_record_before_it_and_every_earlier_one() {
        let mut gate: Gate<&str> = Gate::default();
        gate.record(promised(1));
        assert_eq!(gate.pass("promise 1"), None);
        gate.seal();
        gate.record(promised(2));
        assert_eq!(gate.pass("promise 2"), None);
        gate.seal();
        // Produced after both records were requested, with no new record: still waits.
        assert_eq!(gate.pass("later"), None);
        let first = gate.poll_persist().expect("request 1");
        let second = gate.poll_persist().expect("request 2");
        assert_eq!((first.token, second.token), (1, 2));
        assert_eq!(first.records, vec![promised(1)]);
        assert_eq!(gate.confirm(1), Ok(vec!["promise 1"]));
        assert_eq!(gate.held(), 2);
        // Confirmations are cumulative: 2 releases everything up to it.
        assert_eq!(gate.confirm(2), Ok(vec!["promise 2", "later"]));
        assert_eq!(gate.pass("now"), Some("now"));
    }

    #[test]
    fn unknown_tokens_and_failures_release_nothing() {
        let mut gate: Gate<&str> = Gate::default();
        gate.record(promised(1));
        assert_eq!(gate.pass("promise"), None);
        assert_eq!(
            gate.confirm(1),
            Err(ConfirmError::Unknown),
            "not sealed yet"
        );
        gate.seal();
        assert_eq!(gate.confirm(0), Err(ConfirmError::Unknown));
        assert_eq!(gate.confirm(7), Err(ConfirmError::Unknown));
        gate.fail();
        assert!(gate.failed());
        assert_eq!(gate.confirm(1), Err(ConfirmError::Failed));
        assert_eq!(
            gate.pass("after"),
            None,
            "a failed node sends nothing that may depend on it"
        );
        assert_eq!(gate.held(), 0);
    }
}
