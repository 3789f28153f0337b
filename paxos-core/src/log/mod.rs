//! The replicated log under a lease (docs/REPLICATION.md, rules R1–R8): the types every
//! role of the log shares, its wire messages, and its bounds against bad input.
//!
//! **The lease decides who may try; durable acceptors decide what is chosen.** Every voter
//! of a lease that asks for a log is a log acceptor with durable state
//! (`acceptor.rs`); only the lease holder proposes. The core never touches a
//! disk: what must be durable leaves the node as [`crate::PersistRequest`]s, and every message that
//! depends on one is held back until the runtime confirms it (`crate::durable`).
//!
//! Roles: `acceptor.rs` (durable promises and entries, truncation under a snapshot),
//! `proposer.rs` (the lease holder's recovery per tenure, snapshot install when peers
//! compacted past it, then single-round appends), `learner.rs` (in-order delivery,
//! catch-up by entries or snapshot). `crate::replication` routes their messages and
//! `crate::ask` is per-key consensus.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::id::NodeId;

pub(crate) mod acceptor;
mod effects;
pub(crate) mod learner;
pub(crate) mod proposer;
pub(crate) mod quorum;
#[cfg(test)]
mod tests;

pub(crate) use effects::{Effects, To};

/// A position in a lease's log, from 0.
pub type Slot = u64;

/// A log ballot: `(counter, node)`, compared in that order. Unique because the node is
/// part of it and a node never reuses a counter, not even across restarts: its counter is
/// durable and raised above every log ballot it hears of (see `Record::Counter`). It is
/// not the lease ballot, which can regress after a majority of the lease layer restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogBallot {
    /// Raised on every tenure's recovery.
    pub counter: u64,
    /// The proposer.
    pub node: NodeId,
}

impl fmt::Display for LogBallot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.counter, self.node.0)
    }
}

/// What one slot of the log holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Value {
    /// A hole a recovering master filled (R2): applied as nothing.
    Noop,
    /// An application's command.
    Data(Arc<[u8]>),
}

impl Value {
    /// The application bytes (empty for a no-op).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Value::Noop => &[],
            Value::Data(b) => b,
        }
    }
}

/// How much of the log's input a node takes from a peer; beyond it a message is dropped
/// and counted, never a panic and never unbounded memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogLimits {
    /// Largest value, in bytes.
    pub max_value_len: usize,
    /// Most values in one Accept, and most entries in one Promise.
    pub max_entries: usize,
    /// Most value bytes in one message (an Accept, a Promise, an answer to a fetch): a
    /// longer run is split, so every message fits the transport's frame. A single value
    /// always goes ([`LogLimits::max_value_len`] must fit a frame on its own).
    pub max_message_len: usize,
    /// How far beyond the first slot an acceptor has not seen chosen an Accept may reach.
    pub window: u64,
    /// Largest snapshot taken from a peer, in bytes.
    pub max_snapshot_len: usize,
}

impl Default for LogLimits {
    /// 512 KiB values, 1,024 entries and 768 KiB of values per message (the runtime's
    /// frames are 1 MiB), a window of 65,536 slots, 15 MiB snapshots (a snapshot travels
    /// in one message: the runtime's largest frame is 16 MiB).
    fn default() -> Self {
        LogLimits {
            max_value_len: 512 << 10,
            max_entries: 1024,
            max_message_len: 768 << 10,
            window: 1 << 16,
            max_snapshot_len: 15 << 20,
        }
    }
}

impl LogLimits {
    /// How many of `lens` (value lengths, in order) go in one message: at most
    /// `max_entries`, and no more bytes than `max_message_len` unless it is the first.
    pub(crate) fn take<I: IntoIterator<Item = usize>>(&self, lens: I) -> usize {
        let mut bytes = 0usize;
        let mut count = 0;
        for len in lens.into_iter().take(self.max_entries.max(1)) {
            bytes = bytes.saturating_add(len);
            if count > 0 && bytes > self.max_message_len {
                break;
            }
            count += 1;
        }
        count
    }
}

/// Why an append was not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum AppendError {
    /// This node does not hold the lease (R1).
    NotMaster,
    /// This node holds the lease but has not finished recovery (R2).
    NotReady,
    /// The value is over [`LogLimits::max_value_len`].
    TooLarge,
    /// The window of unchosen appends is full: wait for acknowledgements.
    Busy,
    /// The lease ended, or a higher log ballot took over, while the append was in flight:
    /// it may still be chosen (the next master finds it), or not. Outcome unknown.
    Lost,
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppendError::NotMaster => "not master",
            AppendError::NotReady => "not ready (recovering)",
            AppendError::TooLarge => "value too large",
            AppendError::Busy => "too many appends in flight",
            AppendError::Lost => "lost the lease while in flight: outcome unknown",
        })
    }
}

/// Why [`crate::Node::compact_log`] refused a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompactError {
    /// This node keeps no log for the lease.
    NoLog,
    /// The snapshot would cover slots not applied here (so not known chosen, R7).
    NotApplied {
        /// Every slot below this is applied.
        applied: Slot,
    },
    /// The snapshot is longer than a peer accepts ([`LogLimits::max_snapshot_len`]): a
    /// replica behind it could never catch up, so the log is not cut.
    TooLarge {
        /// The snapshot's length.
        len: usize,
        /// The longest a peer accepts.
        max: usize,
    },
}

impl fmt::Display for CompactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompactError::NoLog => f.write_str("no log for this lease on this node"),
            CompactError::NotApplied { applied } => write!(
                f,
                "a snapshot may cover only applied slots (below {applied})"
            ),
            CompactError::TooLarge { len, max } => write!(
                f,
                "the state's snapshot is {len} bytes, over the {max} a peer accepts: the log is not cut (it grows until the state is smaller)"
            ),
        }
    }
}

impl std::error::Error for CompactError {}

/// What the log tells the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogEvent {
    /// The master recovered (R2): every slot below `chosen` is chosen and was delivered
    /// in [`LogEvent::Chosen`] events before this one. Appends are taken from now on.
    Ready {
        /// The first slot not chosen.
        chosen: Slot,
    },
    /// Slot `slot` is chosen with `value`: apply it. Delivered in slot order, once (R5).
    Chosen {
        /// The slot.
        slot: Slot,
        /// Its value.
        value: Value,
    },
    /// An append was chosen at `slot` (on the master, after its `Chosen`).
    Appended {
        /// Its slot.
        slot: Slot,
    },
    /// An append in flight at `slot` will not be acknowledged.
    AppendFailed {
        /// Its slot.
        slot: Slot,
        /// Why.
        reason: AppendError,
    },
    /// R7: replace the application's state with `data`, a snapshot of every slot below
    /// `upto` taken by a peer (this node missed entries its peers no longer keep, or a new
    /// master recovers past them). The next [`LogEvent::Chosen`] is slot `upto`.
    InstallSnapshot {
        /// The first slot the snapshot does not cover.
        upto: Slot,
        /// The application's state after every slot below `upto`, as its snapshot made it.
        data: Arc<[u8]>,
    },
    /// The log holds many entries since the last snapshot: take one (of the state after
    /// every slot below `applied`) and hand it to `Node::compact_log`. Acceptors refuse
    /// appends once they hold two windows of entries.
    SnapshotNeeded {
        /// The first slot not applied.
        applied: Slot,
    },
}

/// The log's protocol messages, per lease name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum LogMessage {
    /// Phase 1 for every slot from `from` on (R2): one message covers the open range.
    Prepare {
        /// The recovering master's log ballot.
        ballot: LogBallot,
        /// Its first slot not known chosen.
        from: Slot,
    },
    /// The answer to a Prepare: every entry accepted at or after `from` (at most
    /// [`LogLimits::max_entries`]; `more` says there are others), and the slot below which
    /// the acceptor holds a snapshot instead of entries (R7).
    Promise {
        /// The ballot promised.
        ballot: LogBallot,
        /// Accepted entries: slot, the ballot it was accepted under, the value.
        accepted: Vec<(Slot, LogBallot, Value)>,
        /// Entries beyond the last one listed were left out (the master asks again).
        more: bool,
        /// Slots below this are chosen and covered by the acceptor's snapshot.
        snapshot: Slot,
    },
    /// Phase 2 for consecutive slots from `first` (R2 repair, R4 appends); every slot below
    /// `commit` is chosen, with the value accepted under `ballot` if this acceptor has it.
    Accept {
        /// The master's log ballot.
        ballot: LogBallot,
        /// The first slot.
        first: Slot,
        /// One value per slot from `first`.
        values: Vec<Value>,
        /// Slots below this are chosen.
        commit: Slot,
    },
    /// The acceptor accepted (and made durable) `count` slots from `first` under `ballot`.
    Accepted {
        /// The ballot accepted.
        ballot: LogBallot,
        /// The first slot.
        first: Slot,
        /// How many slots.
        count: u64,
    },
    /// The acceptor promised a higher ballot.
    Reject {
        /// The ballot refused.
        ballot: LogBallot,
        /// The ballot it promised.
        promised: LogBallot,
    },
    /// From the master when it has nothing new to send: every slot below `commit` is
    /// chosen, with the value accepted under `ballot` where a replica has it (R5).
    Commit {
        /// The master's log ballot.
        ballot: LogBallot,
        /// Slots below this are chosen.
        commit: Slot,
    },
    /// Catch-up (R5): a replica asks for the chosen values of the slots `from..to`.
    Fetch {
        /// The first slot wanted.
        from: Slot,
        /// The end of the range (exclusive).
        to: Slot,
    },
    /// Chosen values of consecutive slots from `first` (the answer to a Fetch).
    Chosen {
        /// The first slot.
        first: Slot,
        /// One value per slot.
        values: Vec<Value>,
    },
    /// The answer to a Fetch of slots this node no longer keeps (R7): its snapshot of
    /// every slot below `upto`.
    Snapshot {
        /// The first slot the snapshot does not cover.
        upto: Slot,
        /// The application's snapshot.
        data: Arc<[u8]>,
    },
}

impl LogMessage {
    /// The highest slot this message names (a range's end, a commit, a snapshot's end):
    /// beyond a bound it is forged or corrupt.
    pub fn highest_slot(&self) -> Slot {
        match self {
            LogMessage::Prepare { from, .. } => *from,
            LogMessage::Promise {
                accepted, snapshot, ..
            } => accepted
                .last()
                .map_or(*snapshot, |(slot, _, _)| (*slot).max(*snapshot)),
            LogMessage::Accept {
                first,
                values,
                commit,
                ..
            } => first.saturating_add(values.len() as u64).max(*commit),
            LogMessage::Accepted { first, count, .. } => first.saturating_add(*count),
            LogMessage::Commit { commit, .. } => *commit,
            LogMessage::Reject { .. } => 0,
            LogMessage::Fetch { to, .. } => *to,
            LogMessage::Chosen { first, values } => first.saturating_add(values.len() as u64),
            LogMessage::Snapshot { upto, .. } => *upto,
        }
    }

    /// The log ballots this message carries (to raise a proposer's counter above them).
    pub fn ballots(&self) -> [Option<LogBallot>; 2] {
        match self {
            LogMessage::Prepare { ballot, .. }
            | LogMessage::Promise { ballot, .. }
            | LogMessage::Accept { ballot, .. }
            | LogMessage::Accepted { ballot, .. } => [Some(*ballot), None],
            LogMessage::Commit { ballot, .. } => [Some(*ballot), None],
            LogMessage::Reject { ballot, promised } => [Some(*ballot), Some(*promised)],
            LogMessage::Fetch { .. } | LogMessage::Chosen { .. } | LogMessage::Snapshot { .. } => {
                [None, None]
            }
        }
    }
}
