//! The acceptor of one lease name (A1–A3). Its state is volatile: a restart loses it, which
//! the node's quarantine (A4) makes safe.

use std::time::Duration;

use crate::ballot::Ballot;
use crate::message::{LiveLease, Message};
use crate::time::Timestamp;

/// The lease an acceptor has accepted, with its local exclusion deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AcceptedLease {
    ballot: Ballot,
    until: Timestamp,
}

/// Acceptor state for one lease name.
#[derive(Debug, Clone, Default, Hash)]
pub(crate) struct Acceptor {
    /// The last local time this acceptor promised, accepted, or changed its state. An entry
    /// untouched for a quarantine `Q` may be forgotten (see `acceptors.rs`).
    pub(crate) touched: Timestamp,
    promised: Option<Ballot>,
    accepted: Option<AcceptedLease>,
    /// The highest ballot released here (by its owner, checked by the node). Its owner
    /// gave up that ballot and every lower one of its own, so a Prepare or Accept for one of
    /// them that arrives late (a renewal's Accept sent as a best-effort datagram can be
    /// overtaken by the Release sent on a reliable stream) is refused rather than accepted:
    /// accepting it would exclude every other candidate for `D_A` after a handover.
    released: Option<Ballot>,
}

impl Acceptor {
    /// A fresh entry that has promised `floor` (the highest ballot of the entries pruned
    /// before it, see `acceptors.rs`), so a pruned name's old ballots stay refused.
    pub(crate) fn with_floor(now: Timestamp, floor: Option<Ballot>) -> Self {
        Acceptor {
            touched: now,
            promised: floor,
            ..Acceptor::default()
        }
    }

    /// The highest ballot this entry holds (promised, accepted or released).
    pub(crate) fn highest(&self) -> Option<Ballot> {
        self.promised
            .max(self.accepted.map(|a| a.ballot))
            .max(self.released)
    }

    /// The accepted lease if it still excludes others; an expired lease counts as none.
    fn live(&self, now: Timestamp) -> Option<AcceptedLease> {
        self.accepted.filter(|a| now < a.until)
    }

    /// A1/A2's ballot test, plus a refusal of ballots their owner has already released.
    /// Refusing more never gives two owners; it only costs the refused attempt a retry.
    fn admits(&self, ballot: Ballot) -> bool {
        let released = self
            .released
            .is_some_and(|r| r.owner() == ballot.owner() && ballot <= r);
        self.promised.is_none_or(|p| ballot >= p) && !released
    }

    /// A1: promise `ballot` if it is at least the promised one, reporting the live lease.
    pub(crate) fn handle_prepare(&mut self, now: Timestamp, ballot: Ballot) -> Message {
        if !self.admits(ballot) {
            return self.reject(ballot);
        }
        self.promised = Some(ballot);
        self.touched = now;
        Message::Promise {
            ballot,
            lease: self.live(now).map(|a| LiveLease {
                ballot: a.ballot,
                // `until > now` was checked in `live`, so this does not saturate to zero.
                remaining: a.until.saturating_duration_since(now),
            }),
        }
    }

    /// A2: accept unless a higher ballot was promised or another owner holds a live lease.
    pub(crate) fn handle_accept(
        &mut self,
        now: Timestamp,
        ballot: Ballot,
        exclusion: Duration,
        overwrite_live: bool,
    ) -> Message {
        let other_owner_live = !overwrite_live
            && self
                .live(now)
                .is_some_and(|a| a.ballot.owner() != ballot.owner());
        if !self.admits(ballot) || other_owner_live {
            return self.reject(ballot);
        }
        self.promised = Some(ballot);
        self.touched = now;
        self.accepted = Some(AcceptedLease {
            ballot,
            until: now + exclusion,
        });
        Message::Accepted { ballot }
    }

    /// During the quarantine (A4) nothing is answered, but ballots heard are remembered as
    /// promised: that only refuses more, and it keeps fencing tokens increasing after a
    /// restart of an acceptor that sat in the overlap of two quorums.
    pub(crate) fn observe_in_quarantine(&mut self, now: Timestamp, ballot: Ballot) {
        self.promised = self.promised.max(Some(ballot));
        self.touched = now;
    }

    /// A3: clear the accepted lease only if it is exactly the released one (same owner
    /// *and* ballot), so a late release cannot erase the owner's newer renewal.
    pub(crate) fn handle_release(&mut self, now: Timestamp, ballot: Ballot, owner_only: bool) {
        let matches = |a: &AcceptedLease| {
            if owner_only {
                a.ballot.owner() == ballot.owner()
            } else {
                a.ballot == ballot
            }
        };
        if self.accepted.as_ref().is_some_and(matches) {
            self.accepted = None;
        }
        self.released = self.released.max(Some(ballot));
        self.touched = now;
    }

    fn reject(&self, ballot: Ballot) -> Message {
        let promised = self
            .promised
            .into_iter()
            .chain(self.accepted.map(|a| a.ballot))
            .max()
            .unwrap_or(ballot);
        Message::Reject { ballot, promised }
    }

    /// Whether this state can be forgotten without changing any answer: nothing promised.
    #[cfg(test)]
    pub(crate) fn is_blank(&self) -> bool {
        self.promised.is_none() && self.accepted.is_none() && self.released.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Incarnation, NodeId};

    fn b(counter: u64, node: u64, inc: u64) -> Ballot {
        Ballot {
            counter,
            incarnation: Incarnation(inc),
            node: NodeId(node),
        }
    }
    const DA: Duration = Duration::from_millis(1002);
    fn t(ms: u64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn promise_reports_live_lease_and_rejects_lower_ballots() {
        let mut a = Acceptor::default();
        assert!(a.is_blank());
        assert_eq!(
            a.handle_accept(t(0), b(5, 1, 1), DA, false),
            Message::Accepted { ballot: b(5, 1, 1) }
        );
        match a.handle_prepare(t(100), b(6, 2, 1)) {
            Message::Promise { lease: Some(l), .. } => {
                assert_eq!(l.ballot, b(5, 1, 1));
                assert_eq!(l.remaining, DA - Duration::from_millis(100));
            }
            other => panic!("expected a promise with a live lease, got {other:?}"),
        }
        assert_eq!(
            a.handle_prepare(t(100), b(4, 3, 1)),
            Message::Reject {
                ballot: b(4, 3, 1),
                promised: b(6, 2, 1)
            }
        );
        // An expired lease counts as none.
        assert_eq!(
            a.handle_prepare(t(1002), b(7, 2, 1)),
            Message::Promise {
                ballot: b(7, 2, 1),
                lease: None
            }
        );
    }

    #[test]
    fn accept_refuses_other_owner_while_live_but_allows_same_owner() {
        let mut a = Acceptor::default();
        a.handle_accept(t(0), b(5, 1, 1), DA, false);
        // Another owner with a higher ballot is still excluded.
        assert!(matches!(
            a.handle_accept(t(10), b(9, 2, 1), DA, false),
            Message::Reject { .. }
        ));
        // The same node in another incarnation is another owner.
        assert!(matches!(
            a.handle_accept(t(10), b(9, 1, 2), DA, false),
            Message::Reject { .. }
        ));
        // The same owner renews.
        assert_eq!(
            a.handle_accept(t(10), b(9, 1, 1), DA, false),
            Message::Accepted { ballot: b(9, 1, 1) }
        );
        // After the exclusion runs out another owner may take it.
        assert_eq!(
            a.handle_accept(t(1012), b(10, 2, 1), DA, false),
            Message::Accepted {
                ballot: b(10, 2, 1)
            }
        );
    }

    #[test]
    fn release_clears_only_the_exact_lease() {
        let mut a = Acceptor::default();
        a.handle_accept(t(0), b(5, 1, 1), DA, false);
        a.handle_accept(t(1), b(6, 1, 1), DA, false);
        a.handle_release(t(1), b(5, 1, 1), false);
        assert!(matches!(
            a.handle_prepare(t(2), b(7, 2, 1)),
            Message::Promise { lease: Some(_), .. }
        ));
        a.handle_release(t(2), b(6, 1, 1), false);
        assert!(matches!(
            a.handle_prepare(t(3), b(8, 2, 1)),
            Message::Promise { lease: None, .. }
        ));
    }

    #[test]
    fn released_ballots_of_that_owner_are_refused_when_they_arrive_late() {
        let mut a = Acceptor::default();
        a.handle_accept(t(0), b(5, 1, 1), DA, false);
        a.handle_prepare(t(1), b(6, 1, 1)); // a renewal's Prepare
        // The owner shuts down: it releases the active ballot and the renewal's ballot,
        // and the releases overtake the renewal's Accept.
        a.handle_release(t(1), b(5, 1, 1), false);
        a.handle_release(t(1), b(6, 1, 1), false);
        assert!(matches!(
            a.handle_accept(t(2), b(6, 1, 1), DA, false),
            Message::Reject { .. }
        ));
        assert!(matches!(
            a.handle_accept(t(2), b(5, 1, 1), DA, false),
            Message::Reject { .. }
        ));
        // Nothing is held: the next candidate is promised at once and accepted.
        assert!(matches!(
            a.handle_prepare(t(3), b(7, 2, 1)),
            Message::Promise { lease: None, .. }
        ));
        assert_eq!(
            a.handle_accept(t(3), b(7, 2, 1), DA, false),
            Message::Accepted { ballot: b(7, 2, 1) }
        );
        // The releasing owner's later ballots are not affected (a resigned node may stand
        // again), and neither are other owners' ballots.
        a.handle_release(t(3), b(7, 2, 1), false);
        assert!(matches!(
            a.handle_prepare(t(4), b(8, 1, 1)),
            Message::Promise { lease: None, .. }
        ));
    }
}
