//! How the proposer of one lease stops and steps aside: giving up its lease and attempt
//! (P6), resigning, shutting down, stopping on a configuration conflict (F2), yielding to
//! a newer owner (L1), and timing its next attempt after a master is seen or released.

use super::Proposer;
use crate::ballot::Ballot;
use crate::context::{Cx, Setup};
use crate::event::SurrenderReason;
use crate::id::{LeaseName, NodeId};
use crate::message::Message;
use crate::succession::{candidate_wait, succession_wait};
use crate::time::Timestamp;

impl Proposer {
    /// Surrenders (if active) and releases the active lease and any attempt (P6: the
    /// `Surrendered` event is queued before the `Release` transmits). Returns whether it
    /// was active.
    pub(crate) fn give_up(
        &mut self,
        cx: &mut Cx<'_>,
        lease: &LeaseName,
        reason: SurrenderReason,
    ) -> bool {
        let active = self.active.take();
        let attempt = self.attempt.take();
        if let Some(a) = &active {
            cx.surrender(lease, a.ballot, reason);
        }
        for ballot in active
            .map(|a| a.ballot)
            .into_iter()
            .chain(attempt.map(|a| a.ballot))
        {
            cx.send_to_members(lease, &Message::Release { ballot }, true);
        }
        active.is_some()
    }

    /// Resign: give up, and hold off for one lease duration. Returns whether it was active.
    pub(crate) fn resign(&mut self, cx: &mut Cx<'_>, lease: &LeaseName, now: Timestamp) -> bool {
        let was_master = self.give_up(cx, lease, SurrenderReason::Resigned);
        if self.priority.is_some() {
            self.next_attempt = now + cx.setup.timing.lease;
        }
        was_master
    }

    /// Load shedding: give up, and hold off for one lease duration (another node may take
    /// it meanwhile; after that the node's hold limit decides).
    pub(crate) fn shed(&mut self, cx: &mut Cx<'_>, lease: &LeaseName, now: Timestamp) {
        if self.give_up(cx, lease, SurrenderReason::Overload) {
            cx.stats.shed += 1;
        }
        if self.priority.is_some() {
            self.next_attempt = now + cx.setup.timing.lease;
        }
    }

    /// Shutdown: give up and stand no more.
    pub(crate) fn shut_down(&mut self, cx: &mut Cx<'_>, lease: &LeaseName) {
        self.give_up(cx, lease, SurrenderReason::Shutdown);
        self.priority = None;
        self.next_attempt = Timestamp::MAX;
    }

    /// F2: stop acting until every voter heard from matches again.
    pub(crate) fn enter_conflict(&mut self, cx: &mut Cx<'_>, lease: &LeaseName) {
        self.give_up(cx, lease, SurrenderReason::ConfigMismatch);
        self.next_attempt = Timestamp::MAX;
    }

    /// Every voter heard from matches again: a candidate tries again after a random wait.
    pub(crate) fn leave_conflict(&mut self, cx: &mut Cx<'_>, now: Timestamp) {
        if let Some(p) = self.priority {
            let wait = candidate_wait(&cx.setup.timing, cx.rng, p);
            if self.idle() {
                self.next_attempt = self.next_attempt.min(now + wait);
            }
        }
    }

    /// L1 seen from the proposer: another owner activated `ballot`. A lease of this node
    /// under a lower ballot ends now (`Lost`). Returns false if `ballot` is older than
    /// this node's lease (the Learn is stale).
    pub(crate) fn yield_to(&mut self, cx: &mut Cx<'_>, lease: &LeaseName, ballot: Ballot) -> bool {
        let Some(a) = self.active else {
            return true;
        };
        if ballot > a.ballot {
            // Another owner holds a newer lease: whatever this node believed, stop now.
            self.active = None;
            cx.surrender(lease, a.ballot, SurrenderReason::Lost);
            true
        } else {
            cx.stats.stale_responses += 1;
            false
        }
    }

    /// A master `previous` holds the lease until `expires`: plan the next attempt for about
    /// when the acceptors' exclusion of it runs out.
    pub(crate) fn wait_for_master(
        &mut self,
        setup: &Setup,
        lease: &LeaseName,
        expires: Timestamp,
        previous: NodeId,
    ) {
        // A master is known: the rivals seen before it are done.
        self.rival_until = Timestamp::ZERO;
        self.handing_over = false;
        let Some(p) = self.priority else {
            return;
        };
        // A fresh acquisition now would only be blocked, and its higher ballot would
        // disturb the master's renewals: drop it (P5) and wait for the lease to end.
        if self
            .attempt
            .as_ref()
            .is_some_and(|a| a.renewal_base.is_none())
        {
            self.attempt = None;
        }
        if self.attempt.is_none() {
            let after = setup.timing.exclusion.saturating_sub(setup.timing.lease);
            let wait = succession_wait(setup, lease, p, Some(previous));
            self.next_attempt = expires + after + wait;
        }
    }

    /// This node's acceptor accepted the ballot of another node, not the master it knows,
    /// for the lease at `now`, or promised it with no live lease to report: that node is
    /// trying for it and may win. Kept only while this node is an idle candidate, the one
    /// case [`Proposer::step_aside`] uses.
    pub(crate) fn saw_rival(&mut self, setup: &Setup, now: Timestamp) {
        if self.priority.is_some() && self.idle() {
            self.rival_until = now + setup.timing.retransmit;
        }
    }

    /// The attempt this idle candidate planned after a Release is due: if a rival's
    /// attempt was promised (open) or accepted here less than a retransmission interval
    /// ago, let it finish first: its Learn reschedules this node, and if it fails this
    /// node tries when the interval is over. (Always taken here, since only a due fresh
    /// attempt starts one, so no attempt leaves it set.) The first in the
    /// succession order tries at once and the next a third of a jitter step later, so a
    /// first candidate slowed down by a fraction of a millisecond met a second, higher
    /// ballot: the acceptors then refused its Accept, and the lease stayed free until one
    /// of them retried (several milliseconds at a 50 ms lease). Once per Release, so a
    /// rival that never finishes costs one interval at most. No safety rule depends on
    /// it: it only moves the start of an attempt.
    pub(crate) fn step_aside(&mut self) {
        if std::mem::take(&mut self.handing_over) && self.next_attempt < self.rival_until {
            self.next_attempt = self.rival_until;
        }
    }

    /// The master `previous` released the lease: an idle candidate tries after its place
    /// in the succession order.
    pub(crate) fn after_release(
        &mut self,
        setup: &Setup,
        lease: &LeaseName,
        now: Timestamp,
        previous: NodeId,
    ) {
        if let Some(p) = self.priority.filter(|_| self.idle()) {
            self.next_attempt = now + succession_wait(setup, lease, p, Some(previous));
            self.handing_over = true;
        }
    }
}
