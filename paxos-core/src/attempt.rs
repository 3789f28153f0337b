//! One attempt of a proposer to acquire or renew a lease (P1–P5): its ballot, its fixed
//! deadline `d`, the distinct acceptors that answered, why it ended without a lease, and
//! the lease it won (P4).

use std::time::Duration;

use crate::ballot::Ballot;
use crate::event::Master;
use crate::id::NodeId;
use crate::message::Message;
use crate::time::Timestamp;

/// One attempt to acquire or renew (P1–P5).
#[derive(Debug, Clone, Hash)]
pub(crate) struct Attempt {
    pub(crate) ballot: Ballot,
    /// `d`, fixed when Prepare was sent (T1) and checked in P3/P4 against `now`.
    pub(crate) deadline: Timestamp,
    /// The active lease being renewed, or none for a fresh acquisition (P2).
    pub(crate) renewal_base: Option<Ballot>,
    /// Sent Accept (P3) and now counting Accepted.
    pub(crate) accepting: bool,
    /// Distinct acceptors (voter indices) that promised / accepted (rule 3: a set, not a count).
    pub(crate) promised: u64,
    pub(crate) accepted: u64,
    /// Acceptors that refused (a blocking live lease or a rejection); they do not count, as
    /// if their replies were lost.
    pub(crate) refused: u64,
    /// Longest exclusion a blocking acceptor reported: when to try again.
    pub(crate) blocked_for: Duration,
    /// Raw response count, used only by the `count-duplicates` unsafe rule.
    pub(crate) responses: usize,
    pub(crate) started: Timestamp,
    /// When Accept was first sent (the start, for a one-round renewal).
    pub(crate) accept_sent: Timestamp,
    pub(crate) next_retransmit: Timestamp,
    /// Retransmissions in the current phase: each waits twice as long as the one before,
    /// up to [`MAX_BACKOFF`] intervals.
    pub(crate) retransmits: u32,
}

/// The longest wait between two retransmissions of a phase, in retransmission intervals.
pub(crate) const MAX_BACKOFF: u32 = 8;

impl Attempt {
    /// The wait before the next retransmission, after `self.retransmits` of them: 1, 2, 4
    /// ... intervals, at most [`MAX_BACKOFF`].
    pub(crate) fn backoff(&self, interval: Duration) -> Duration {
        interval * 2u32.saturating_pow(self.retransmits).min(MAX_BACKOFF)
    }

    /// Records a promise (preparing) or an acceptance (accepting) from voter index `voter`
    /// and returns the votes so far: distinct acceptors (rule 3), or raw responses under the
    /// `count-duplicates` unsafe rule.
    pub(crate) fn vote(&mut self, voter: usize, count_duplicates: bool) -> usize {
        if count_duplicates {
            self.responses += 1;
            return self.responses;
        }
        // A voter that refused earlier (e.g. over a lease since released) and now answers
        // is no longer a refusal.
        self.refused &= !(1 << voter);
        let set = if self.accepting {
            &mut self.accepted
        } else {
            &mut self.promised
        };
        *set |= 1 << voter;
        set.count_ones() as usize
    }

    /// The message this attempt is at: Prepare, or Accept once a majority promised.
    pub(crate) fn message(&self, lease_duration: Duration) -> Message {
        if self.accepting {
            Message::Accept {
                ballot: self.ballot,
                lease_duration,
            }
        } else {
            Message::Prepare {
                ballot: self.ballot,
            }
        }
    }
}

/// Why an attempt ended without activating (P5).
#[derive(Debug, Clone, Copy, Hash)]
pub(crate) enum Abandon {
    /// An acceptor reported a live lease this attempt may not override.
    Blocked(Duration),
    /// An acceptor had promised a higher ballot.
    Rejected,
    /// The attempt reached its deadline `d`.
    TimedOut,
}

/// The lease this node holds.
#[derive(Debug, Clone, Copy, Hash)]
pub(crate) struct Active {
    /// The fencing token.
    pub(crate) ballot: Ballot,
    /// `d`, the protocol deadline.
    pub(crate) deadline: Timestamp,
    /// `d - margin`: the application's authority ends here.
    pub(crate) surrender_at: Timestamp,
}

impl Active {
    /// This lease as the application sees it: exact, ending at the surrender point.
    pub(crate) fn as_master(&self, node: NodeId) -> Master {
        Master {
            node,
            token: self.ballot,
            expires: self.surrender_at,
            exact: true,
        }
    }
}
