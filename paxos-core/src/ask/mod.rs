//! Per-key consensus, the original gen_paxos's `ask(Key, Value)` (R8): for each key, one
//! value is chosen per numbered instance, the first proposal to win, and every caller gets
//! that same value; `forget` opens the next instance and never revives the old one. Any
//! voter proposes (no master); acceptors are durable (R3), through the same records and
//! gate as the log; contention resolves with higher ballots and random backoff.
//!
//! Built and tested on its own (`tests.rs`); wired into [`crate::Node`] with the log.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::durable::Record;
use crate::id::LeaseName;
use crate::log::{LogBallot, To};

pub(crate) mod acceptor;
pub(crate) mod proposer;
#[cfg(test)]
mod tests;

/// Instances of a key are numbered from 0; `forget` of instance `i` opens `i + 1`.
pub type Instance = u64;

/// A value of `ask`: bytes.
pub type AskValue = Arc<[u8]>;

/// The messages of per-key consensus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum AskMessage {
    /// Phase 1 for `key`'s `instance`.
    Prepare {
        /// The key.
        key: LeaseName,
        /// Its instance.
        instance: Instance,
        /// The proposer's ballot.
        ballot: LogBallot,
    },
    /// The answer to a Prepare: what this acceptor accepted, and the decision if it
    /// learned one.
    Promise {
        /// The key.
        key: LeaseName,
        /// Its instance.
        instance: Instance,
        /// The ballot promised.
        ballot: LogBallot,
        /// The value accepted in this instance, with its ballot.
        accepted: Option<(LogBallot, AskValue)>,
        /// The value chosen in this instance, if the acceptor was told.
        decided: Option<AskValue>,
    },
    /// Phase 2.
    Accept {
        /// The key.
        key: LeaseName,
        /// Its instance.
        instance: Instance,
        /// The proposer's ballot.
        ballot: LogBallot,
        /// The value.
        value: AskValue,
    },
    /// The acceptor accepted (and made durable) the value of `ballot`.
    Accepted {
        /// The key.
        key: LeaseName,
        /// Its instance.
        instance: Instance,
        /// The ballot accepted.
        ballot: LogBallot,
    },
    /// The acceptor promised a higher ballot in this instance.
    Reject {
        /// The key.
        key: LeaseName,
        /// Its instance.
        instance: Instance,
        /// The ballot refused.
        ballot: LogBallot,
        /// The ballot it promised.
        promised: LogBallot,
    },
    /// The acceptor is past `instance` (the key was forgotten): `current` is open.
    Moved {
        /// The key.
        key: LeaseName,
        /// The instance asked about.
        instance: Instance,
        /// The instance open at the acceptor.
        current: Instance,
    },
    /// `value` is chosen for `key`'s `instance` (sent once a majority accepted it).
    Decided {
        /// The key.
        key: LeaseName,
        /// Its instance.
        instance: Instance,
        /// The value chosen.
        value: AskValue,
    },
    /// Close `instance` of `key` and open the next.
    Forget {
        /// The key.
        key: LeaseName,
        /// The instance to close.
        instance: Instance,
    },
    /// The acceptor closed `instance` (made durable).
    Forgot {
        /// The key.
        key: LeaseName,
        /// The instance closed.
        instance: Instance,
    },
}

impl AskMessage {
    /// The key the message is about.
    pub fn key(&self) -> &LeaseName {
        match self {
            AskMessage::Prepare { key, .. }
            | AskMessage::Promise { key, .. }
            | AskMessage::Accept { key, .. }
            | AskMessage::Accepted { key, .. }
            | AskMessage::Reject { key, .. }
            | AskMessage::Moved { key, .. }
            | AskMessage::Decided { key, .. }
            | AskMessage::Forget { key, .. }
            | AskMessage::Forgot { key, .. } => key,
        }
    }

    /// Whether it is for the key's acceptor (rather than an answer to a proposer).
    pub(crate) fn for_acceptor(&self) -> bool {
        matches!(
            self,
            AskMessage::Prepare { .. }
                | AskMessage::Accept { .. }
                | AskMessage::Decided { .. }
                | AskMessage::Forget { .. }
        )
    }

    /// The proposer's ballot of a Prepare or Accept.
    pub(crate) fn proposal(&self) -> Option<LogBallot> {
        match self {
            AskMessage::Prepare { ballot, .. } | AskMessage::Accept { ballot, .. } => Some(*ballot),
            _ => None,
        }
    }
}

/// What per-key consensus tells the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AskEvent {
    /// `value` is chosen for `key`'s `instance`: the answer to every `ask` and `get` of it.
    Decided {
        /// The key.
        key: LeaseName,
        /// Its instance.
        instance: Instance,
        /// The value chosen.
        value: AskValue,
    },
    /// A `get`: nothing is chosen for `key`'s `instance` (and nothing was accepted that
    /// could still be).
    Undecided {
        /// The key.
        key: LeaseName,
        /// Its instance.
        instance: Instance,
    },
    /// `forget` closed `instance` on a majority: `instance + 1` is open.
    Forgotten {
        /// The key.
        key: LeaseName,
        /// The instance closed.
        instance: Instance,
    },
}

/// What one input to per-key consensus led to.
#[derive(Debug, Clone, Default, Hash)]
pub(crate) struct AskEffects {
    pub(crate) sends: Vec<(To, AskMessage)>,
    pub(crate) events: Vec<AskEvent>,
    pub(crate) records: Vec<Record>,
}
