//! Per-lease proposer and learner state of one node.

use crate::ballot::Ballot;
use crate::id::{LeaseName, Owner};
use crate::time::Timestamp;

/// One attempt to acquire or renew (P1–P5).
#[derive(Debug, Clone)]
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
    pub(crate) blocked_for: std::time::Duration,
    /// Raw response count, used only by the `count-duplicates` unsafe rule.
    pub(crate) responses: usize,
    pub(crate) started: Timestamp,
    pub(crate) next_retransmit: Timestamp,
}

impl Attempt {
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
}

/// The lease this node holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Active {
    /// The fencing token.
    pub(crate) ballot: Ballot,
    /// `d`, the protocol deadline.
    pub(crate) deadline: Timestamp,
    /// `d - margin`: the application's authority ends here.
    pub(crate) surrender_at: Timestamp,
}

/// A master learned from another node (L1): a hint, never authority.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Remote {
    pub(crate) owner: Owner,
    pub(crate) ballot: Ballot,
    /// Estimated end of its lease `d` on this node's clock.
    pub(crate) expires: Timestamp,
}

/// Proposer and learner state for one joined lease.
#[derive(Debug, Clone)]
pub(crate) struct LeaseState {
    pub(crate) name: LeaseName,
    /// The highest ballot counter this node used or saw for this lease (T4). Per lease, so
    /// that a ballot pushed up on one name (B1) slows no other name's proposers.
    pub(crate) counter: u64,
    /// `Some(priority)` if this node stands for the lease.
    pub(crate) priority: Option<u8>,
    pub(crate) attempt: Option<Attempt>,
    pub(crate) active: Option<Active>,
    /// When to start the next attempt (a fresh acquisition, or a renewal while active).
    pub(crate) next_attempt: Timestamp,
    pub(crate) master: Option<Remote>,
    /// The highest ballot whose Release this learner has heard: a Learn of that owner at or
    /// below it arrived late (overtaken by the Release) and is ignored.
    pub(crate) released: Option<Ballot>,
    /// A start slot the node's pacing reserved for this lease's next fresh attempt: when
    /// `next_attempt` still equals it, the attempt starts without asking again.
    pub(crate) paced_slot: Option<Timestamp>,
}

impl LeaseState {
    pub(crate) fn new(name: LeaseName) -> Self {
        LeaseState {
            name,
            counter: 0,
            priority: None,
            attempt: None,
            active: None,
            next_attempt: Timestamp::MAX,
            master: None,
            released: None,
            paced_slot: None,
        }
    }

    /// Whether this lease would start attempts on its own.
    pub(crate) fn stands(&self) -> bool {
        self.active.is_some() || self.priority.is_some()
    }

    /// The earliest local time at which something is due for this lease.
    pub(crate) fn next_wakeup(&self) -> Timestamp {
        let mut t = Timestamp::MAX;
        if let Some(a) = &self.active {
            t = t.min(a.surrender_at);
        }
        match &self.attempt {
            Some(att) => t = t.min(att.deadline).min(att.next_retransmit),
            None if self.stands() => t = t.min(self.next_attempt),
            None => {}
        }
        if let Some(m) = &self.master {
            t = t.min(m.expires);
        }
        t
    }
}
