//! Protocol messages and the batches that carry them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ballot::Ballot;
use crate::id::{LeaseName, NodeId};

/// A lease an acceptor holds, as reported in a promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub struct LiveLease {
    /// The accepted ballot (which names the owner).
    pub ballot: Ballot,
    /// How much longer the acceptor excludes other owners, on its own clock.
    pub remaining: Duration,
}

/// One PaxosLease message for one lease name.
///
/// The owner a ballot proposes is the ballot's own `(node, incarnation)`, so messages carry
/// no separate owner field. Receivers check that `ballot.node` is the authenticated sender
/// wherever a message speaks for its ballot's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum Message {
    /// P1: proposer to acceptors.
    Prepare {
        /// The attempt's ballot.
        ballot: Ballot,
    },
    /// A1: acceptor to proposer, with the acceptor's live lease if any.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The live accepted lease (an expired one is reported as none).
        lease: Option<LiveLease>,
    },
    /// P3: proposer to acceptors.
    Accept {
        /// The attempt's ballot.
        ballot: Ballot,
        /// The proposer's lease duration `D_P`, so an acceptor never excludes for too short.
        lease_duration: Duration,
    },
    /// A2: acceptor to proposer.
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
    },
    /// A1/A2 refusal, carrying what the acceptor has promised (T4: raise above it).
    Reject {
        /// The refused ballot.
        ballot: Ballot,
        /// The acceptor's promised ballot (or the live lease's, if higher).
        promised: Ballot,
    },
    /// P4: the new owner tells learners; `remaining` is on the owner's clock.
    Learn {
        /// The active lease's ballot (its fencing token).
        ballot: Ballot,
        /// Time left until the owner's deadline `d`, when it was sent.
        remaining: Duration,
    },
    /// P6: the owner gives the lease up.
    Release {
        /// The exact lease released.
        ballot: Ballot,
    },
    /// The replicated log of this lease (docs/REPLICATION.md).
    Log(crate::log::LogMessage),
    /// Per-key consensus; the envelope's name is the key.
    Ask(crate::ask::AskMessage),
}

impl Message {
    /// Every ballot the message carries (checked against the node's ballot bound).
    pub(crate) fn ballots(&self) -> [Option<Ballot>; 2] {
        match self {
            Message::Prepare { ballot }
            | Message::Accept { ballot, .. }
            | Message::Accepted { ballot }
            | Message::Learn { ballot, .. }
            | Message::Release { ballot } => [Some(*ballot), None],
            Message::Promise { ballot, lease } => [Some(*ballot), lease.map(|l| l.ballot)],
            Message::Reject { ballot, promised } => [Some(*ballot), Some(*promised)],
            Message::Log(_) | Message::Ask(_) => [None, None],
        }
    }

    /// Whether only a voter may send this message: Prepare, Accept and Release speak for a
    /// proposer, Learn for an owner, and observers are neither.
    pub(crate) fn voters_only(&self) -> bool {
        // The log and `ask` speak among voters only: an observer is neither their
        // acceptor nor their proposer.
        matches!(
            self,
            Message::Prepare { .. }
                | Message::Accept { .. }
                | Message::Release { .. }
                | Message::Learn { .. }
                | Message::Log(_)
                | Message::Ask(_)
        )
    }

    /// A ballot of another proposer this message shows (not the replies to one's own).
    pub(crate) fn ballot_heard(&self) -> Option<Ballot> {
        match self {
            Message::Prepare { ballot }
            | Message::Accept { ballot, .. }
            | Message::Learn { ballot, .. }
            | Message::Release { ballot } => Some(*ballot),
            Message::Promise { lease, .. } => lease.map(|l| l.ballot),
            Message::Accepted { .. }
            | Message::Reject { .. }
            | Message::Log(_)
            | Message::Ask(_) => None,
        }
    }
}

/// A message addressed to one lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub struct Envelope {
    /// The lease the message is about.
    pub lease: LeaseName,
    /// The message.
    pub message: Message,
}

impl Envelope {
    /// For batching: an upper bound of the envelope's size in a compact encoding (a
    /// length-prefixed name, a variant tag, up to 9 bytes per integer of a ballot, 14 per
    /// duration); `None` for log and `ask` messages, whose size depends on their values.
    pub fn size_bound(&self) -> Option<usize> {
        const BALLOT: usize = 27;
        const DURATION: usize = 14;
        let body = match &self.message {
            Message::Prepare { .. } | Message::Accepted { .. } | Message::Release { .. } => BALLOT,
            Message::Accept { .. } | Message::Learn { .. } => BALLOT + DURATION,
            Message::Promise { .. } => BALLOT + 1 + BALLOT + DURATION,
            Message::Reject { .. } => 2 * BALLOT,
            Message::Log(_) | Message::Ask(_) => return None,
        };
        Some(3 + self.lease.as_str().len() + 1 + body)
    }
}

/// A hello to send: this node's full [`crate::Fingerprint`] for `to`, which also carries its
/// digest like every batch. The receiver hands it to [`crate::Node::handle_hello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hello {
    /// The addressee: a member, or a node outside this configuration that sent this node
    /// something.
    pub to: NodeId,
    /// A probe: the addressee should answer with its own hello.
    pub wants_reply: bool,
}

/// Messages for one peer, batched over any number of leases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transmit {
    /// The addressee.
    pub to: NodeId,
    /// The batch, in the order the node produced it.
    pub messages: Vec<Envelope>,
}
