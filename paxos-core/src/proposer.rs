//! The proposer of one lease on one node (P1–P7): its attempts to acquire or renew, and the
//! lease it holds. Each handler takes one input with `now` and writes what it decides
//! (messages, events, counters) through the node's [`Cx`]; what it needs from the learner
//! of the same lease (the expiry of a known master) comes in as an argument.

use std::time::Duration;

use crate::attempt::{Abandon, Active, Attempt};
use crate::ballot::Ballot;
use crate::context::{Cx, Setup};
use crate::event::{Event, SurrenderReason};
use crate::id::LeaseName;
use crate::message::{LiveLease, Message};
use crate::succession::{candidate_wait, priority_wait, succession_wait};
use crate::time::Timestamp;
use crate::unsafe_rules::UnsafeRule;

mod yielding;

/// What a response to an attempt led to; the lease applies it (`lease.rs`).
#[derive(Debug, Clone, Copy, Hash)]
pub(crate) enum Step {
    /// Nothing more to do now.
    Wait,
    /// The attempt is over without a lease (P5): call [`Proposer::abandon`].
    Abandon(Abandon),
    /// The lease activated (P4).
    Activated,
}

/// What stops a proposer from starting attempts, beyond its own state.
#[derive(Debug, Clone, Copy, Hash)]
pub(crate) struct Hold {
    /// A voter runs with another configuration (F2).
    pub(crate) conflict: bool,
    /// The node is shutting down.
    pub(crate) shutting_down: bool,
}

/// Proposer state for one joined lease.
#[derive(Debug, Clone, Hash)]
pub(crate) struct Proposer {
    /// The highest ballot counter this node used or saw for this lease (T4). Per lease, so
    /// that a ballot pushed up on one name (B1) slows no other name's proposers.
    pub(crate) counter: u64,
    /// `Some(priority)` if this node stands for the lease.
    pub(crate) priority: Option<u8>,
    pub(crate) attempt: Option<Attempt>,
    pub(crate) active: Option<Active>,
    /// When to start the next attempt (a fresh acquisition, or a renewal while active).
    pub(crate) next_attempt: Timestamp,
    /// In the node's queue of fresh acquisitions waiting for their turn (the pacing
    /// refused one; its timer is off meanwhile). The node clears it.
    pub(crate) queued: bool,
    /// Set by the node when this lease's turn in the queue came: the next fresh attempt
    /// starts without asking the pacing again.
    pub(crate) admitted: bool,
    /// Until when a rival's attempt, which this node's acceptor has just promised or
    /// accepted while this node waited, may finish before this node starts one of its
    /// own (one retransmission interval after the promise; see [`Proposer::step_aside`]).
    pub(crate) rival_until: Timestamp,
    /// The planned attempt follows a Release (the succession order): it may step aside
    /// for a rival once.
    pub(crate) handing_over: bool,
}

impl Proposer {
    pub(crate) fn new() -> Proposer {
        Proposer {
            counter: 0,
            priority: None,
            attempt: None,
            active: None,
            next_attempt: Timestamp::MAX,
            queued: false,
            admitted: false,
            rival_until: Timestamp::ZERO,
            handing_over: false,
        }
    }

    /// Whether this lease would start attempts on its own.
    pub(crate) fn stands(&self) -> bool {
        self.active.is_some() || self.priority.is_some()
    }

    /// Whether a fresh acquisition of this lease waits in the node's queue for its turn:
    /// queued, and nothing else planned for it since.
    pub(crate) fn deferred(&self) -> bool {
        self.queued
            && self.attempt.is_none()
            && self.active.is_none()
            && self.priority.is_some()
            && self.next_attempt == Timestamp::MAX
    }

    /// Whether this node is idle for the lease: no attempt, no lease.
    fn idle(&self) -> bool {
        self.attempt.is_none() && self.active.is_none()
    }

    /// The earliest local time at which the proposer has something to do.
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
        t
    }

    /// T4 for this lease: the next ballot goes above `counter`.
    pub(crate) fn raise_counter(&mut self, counter: u64) {
        self.counter = self.counter.max(counter);
    }

    /// The counter of the lease's next ballot: above every ballot seen for it and the
    /// wall-clock floor (T4). Saturating: with the ballot bound (B1) it stays centuries
    /// away from the top, and the `unbounded-ballots` rule shows what wrapping did.
    fn next_counter(&self, setup: &Setup, floor: u64) -> u64 {
        let base = self.counter.max(floor);
        if setup.breaks(UnsafeRule::UnboundedBallots) {
            base.wrapping_add(1)
        } else {
            base.saturating_add(1)
        }
    }

    /// Joining with `priority` (`None`: learner only). A candidate that is idle and knows
    /// no master plans its first attempt.
    pub(crate) fn stand(
        &mut self,
        setup: &Setup,
        lease: &LeaseName,
        now: Timestamp,
        priority: Option<u8>,
        quarantine_until: Timestamp,
        master_known: bool,
    ) {
        self.priority = priority;
        let Some(p) = priority else {
            return;
        };
        if self.idle() && !master_known {
            self.next_attempt = if now < quarantine_until {
                // Every node of a cluster started together leaves its quarantine at about
                // the same time: the succession order keeps their first attempts apart.
                quarantine_until + succession_wait(setup, lease, p, None)
            } else {
                // A join at run time answers the application, not an event every
                // candidate saw at once (an expiry, a release): only the priority steps,
                // no random part, so a free lease is acquired in one round trip. Two equal
                // candidates joining in the same instant collide once and retry after a
                // random wait.
                now + priority_wait(&setup.timing, p)
            };
        }
    }

    /// P1: a fresh ballot, `d := now + D_P` stored with the attempt, Prepare to all voters;
    /// or, for the renewal of a lease this node holds, P7: the same, but Accept at once.
    fn start_attempt(
        &mut self,
        cx: &mut Cx<'_>,
        lease: &LeaseName,
        now: Timestamp,
        renewal_base: Option<Ballot>,
    ) {
        let setup = cx.setup;
        let counter = self.next_counter(setup, cx.floor);
        self.counter = counter;
        let ballot = Ballot {
            counter,
            incarnation: setup.incarnation,
            node: setup.id,
        };
        // P7: only the owner of the active lease.
        let one_round = setup.one_round_renewals
            && renewal_base.is_some()
            && self.active.map(|a| a.ballot) == renewal_base;
        cx.stats.attempts += 1;
        let attempt = Attempt {
            ballot,
            deadline: now + setup.timing.lease,
            renewal_base,
            accepting: one_round,
            promised: 0,
            accepted: 0,
            refused: 0,
            blocked_for: Duration::ZERO,
            responses: 0,
            started: now,
            accept_sent: now,
            next_retransmit: now + cx.retransmit_after(),
            retransmits: 0,
        };
        let message = attempt.message(setup.timing.lease);
        self.attempt = Some(attempt);
        self.next_attempt = Timestamp::MAX;
        cx.send_to_voters(lease, &message);
    }

    /// P2/P3: a promise from voter index `voter`; with a majority, Accept to all voters.
    pub(crate) fn handle_promise(
        &mut self,
        cx: &mut Cx<'_>,
        lease: &LeaseName,
        now: Timestamp,
        voter: usize,
        ballot: Ballot,
        live: Option<LiveLease>,
    ) -> Step {
        let setup = cx.setup;
        let Some(att) = self
            .attempt
            .as_mut()
            .filter(|a| a.ballot == ballot && !a.accepting)
        else {
            cx.stats.stale_responses += 1;
            return Step::Wait;
        };
        if let Some(l) = live {
            // P2: only "no live lease", or the exact lease this attempt renews, is open.
            // A self-owned lease under another ballot blocks too (rule 5). A blocking
            // promise is not counted, exactly as if it had been lost; the attempt ends once
            // the refusals leave no majority.
            let open = att.renewal_base == Some(l.ballot)
                || (setup.breaks(UnsafeRule::StaleOwnerOpen) && l.ballot.owner() == setup.owner());
            if !open {
                att.refused |= 1 << voter;
                att.blocked_for = att.blocked_for.max(l.remaining);
                if att.refused.count_ones() as usize > setup.minority() {
                    return Step::Abandon(Abandon::Blocked(att.blocked_for));
                }
                return Step::Wait;
            }
        }
        if att.vote(voter, setup.breaks(UnsafeRule::CountDuplicates)) < setup.majority {
            return Step::Wait;
        }
        if setup.breaks(UnsafeRule::LateTimer) {
            // Unsafe rule 1: the deadline restarts when the quorum arrives.
            att.deadline = now + setup.timing.lease;
        }
        if now < att.deadline {
            att.accepting = true;
            att.accept_sent = now;
            att.responses = 0;
            att.retransmits = 0;
            att.next_retransmit = now + cx.retransmit_after();
            let accept = att.message(setup.timing.lease);
            cx.send_to_voters(lease, &accept);
            Step::Wait
        } else {
            Step::Abandon(Abandon::TimedOut)
        }
    }

    /// P4: a majority of distinct acceptors accepted and `now < d` (checked here, rule 6).
    pub(crate) fn handle_accepted(
        &mut self,
        cx: &mut Cx<'_>,
        lease: &LeaseName,
        now: Timestamp,
        voter: usize,
        ballot: Ballot,
    ) -> Step {
        let setup = cx.setup;
        let Some(att) = self
            .attempt
            .as_mut()
            .filter(|a| a.ballot == ballot && a.accepting)
        else {
            cx.stats.stale_responses += 1;
            return Step::Wait;
        };
        if att.vote(voter, setup.breaks(UnsafeRule::CountDuplicates)) < setup.majority {
            return Step::Wait;
        }
        let surrender_at = att.deadline.saturating_sub(setup.timing.margin);
        // Unsafe rule 6 trusts the (late) timer to have ended the attempt.
        if setup.breaks(UnsafeRule::TimerOrder) || (now < att.deadline && now < surrender_at) {
            if self.activate(cx, lease, now) {
                return Step::Activated;
            }
            Step::Wait
        } else {
            Step::Abandon(Abandon::TimedOut)
        }
    }

    /// A voter refused this attempt's `ballot` because it promised `promised`.
    pub(crate) fn handle_reject(
        &mut self,
        cx: &mut Cx<'_>,
        voter: usize,
        ballot: Ballot,
        promised: Ballot,
    ) -> Step {
        let minority = cx.setup.minority();
        let Some(att) = self.attempt.as_mut().filter(|a| a.ballot == ballot) else {
            cx.stats.stale_responses += 1;
            return Step::Wait;
        };
        // A refusal counts as a lost reply; give up once no majority is left, or at once
        // if a higher ballot pre-empted this one: its proposer is about to win, and holding
        // on (with our own acceptor excluding it) would only stall both attempts until
        // `d`. A rejection carrying our own ballot means a live lease elsewhere and leaves
        // the attempt to its other acceptors.
        att.refused |= 1 << voter;
        let preempted = promised > ballot;
        if preempted || att.refused.count_ones() as usize > minority {
            Step::Abandon(Abandon::Rejected)
        } else {
            Step::Wait
        }
    }

    fn activate(&mut self, cx: &mut Cx<'_>, lease: &LeaseName, now: Timestamp) -> bool {
        let Some(att) = self.attempt.take() else {
            return false;
        };
        let setup = cx.setup;
        // Renewals start on a grid (`Timing::renewal_step`: up to 5% of the lease, finer
        // with many leases held), so those due within a step leave together in one batch
        // per peer instead of a datagram each (a lease table renewed evenly over time
        // otherwise costs a wake-up and a send per renewal); never later than the
        // surrender point allows.
        let renew_at = att.started + setup.timing.renew_after;
        let surrender_at = att.deadline.saturating_sub(setup.timing.margin);
        let renew_at = Some(renew_at.round_up(setup.timing.renewal_step(cx.stats.held)))
            .filter(|&t| t < surrender_at)
            .unwrap_or(renew_at);
        // How long the majority took tells the pacing of fresh attempts how busy the
        // cluster is (renewals first under overload).
        cx.observe_round_trip(now, att.started, Some(att.accept_sent));
        let active = Active {
            ballot: att.ballot,
            deadline: att.deadline,
            surrender_at: att.deadline.saturating_sub(setup.timing.margin),
        };
        if let Some(old) = self.active.filter(|a| now >= a.surrender_at) {
            // The old lease lapsed while the timer had not run yet: say so before anything new.
            self.active = None;
            cx.surrender(lease, old.ballot, SurrenderReason::Expired);
        }
        let renewal =
            matches!((&self.active, att.renewal_base), (Some(a), Some(base)) if a.ballot == base);
        self.active = Some(active);
        self.next_attempt = renew_at;
        if renewal {
            cx.stats.renewals += 1;
            cx.event(Event::Renewed {
                lease: lease.clone(),
                token: active.ballot,
                deadline: active.surrender_at,
            });
        } else {
            cx.stats.elections += 1;
            cx.stats.held += 1;
            cx.event(Event::Elected {
                lease: lease.clone(),
                token: active.ballot,
                deadline: active.surrender_at,
            });
            cx.event(Event::MasterChanged {
                lease: lease.clone(),
                master: Some(active.as_master(setup.id)),
            });
        }
        let learn = Message::Learn {
            ballot: active.ballot,
            remaining: active.deadline.saturating_duration_since(now),
        };
        cx.send_to_members(lease, &learn, false);
        true
    }

    /// P5: back to idle, with the next attempt scheduled. A failed renewal extends nothing.
    /// `master_expires`: when the master this node's learner knows of ends, if any.
    pub(crate) fn abandon(
        &mut self,
        cx: &mut Cx<'_>,
        lease: &LeaseName,
        now: Timestamp,
        why: Abandon,
        master_expires: Option<Timestamp>,
    ) {
        let setup = cx.setup;
        let timing = &setup.timing;
        let (jitter, retransmit) = (timing.jitter, timing.retransmit);
        let spread = cx.rng.duration(jitter);
        let wait = self
            .priority
            .map(|p| candidate_wait(timing, cx.rng, p))
            .unwrap_or_default();
        let not_before = master_expires
            .filter(|&e| now < e)
            .map(|e| e + timing.exclusion.saturating_sub(timing.lease) + wait);
        if self
            .attempt
            .as_ref()
            .is_some_and(|a| a.renewal_base.is_some())
        {
            cx.stats.renewals_failed += 1;
        }
        let no_lease = self.active.is_none() && !setup.defences_off();
        if let Some(att) = self
            .attempt
            .take()
            .filter(|a| a.accepting && a.renewal_base.is_none() && no_lease)
        {
            // Some acceptors may hold this never-activated ballot and would exclude everyone
            // (this node's fresh attempts too, rule 5) for D_A. Nobody acted under it, so
            // release exactly it (A3). Never a renewal's ballot: an acceptor that accepted
            // it no longer holds the active lease, and releasing it would end the active
            // lease's exclusion there while the owner still acts.
            cx.send_to_members(lease, &Message::Release { ballot: att.ballot }, true);
        }
        self.next_attempt = if self.active.is_some() {
            // Keep renewing until the surrender point; the old deadline stands.
            match why {
                Abandon::Blocked(_) => now + retransmit,
                Abandon::Rejected | Abandon::TimedOut => now + jitter + spread,
            }
        } else {
            match why {
                // Try again just after the blocking acceptor's exclusion runs out.
                Abandon::Blocked(remaining) => now + remaining + spread + wait,
                // Someone with a higher ballot is trying: give it time to finish (its Learn
                // reschedules us) rather than duelling with it.
                Abandon::Rejected => now + jitter * 4 + cx.rng.duration(retransmit) + wait,
                Abandon::TimedOut => now + spread + wait,
            }
            // Never before a known master's lease is over (L1: the hint times attempts).
            .max(not_before.unwrap_or(Timestamp::ZERO))
        };
    }

    /// Timer work, each deadline compared with stored state: the surrender point, the
    /// attempt's deadline, and the start of the next attempt (paced, within the ballot
    /// bound).
    pub(crate) fn handle_timeout(
        &mut self,
        cx: &mut Cx<'_>,
        lease: &LeaseName,
        now: Timestamp,
        hold: Hold,
        master_expires: Option<Timestamp>,
    ) {
        let setup = cx.setup;
        // Authority ends at d - margin whatever else is pending.
        if let Some(a) = self.active.filter(|a| now >= a.surrender_at) {
            self.active = None;
            cx.surrender(lease, a.ballot, SurrenderReason::Expired);
            if let Some(p) = self.priority {
                // The acceptors exclude others (and this node's fresh attempts) until about
                // D_A after they accepted; try again then.
                let t = &setup.timing;
                let after = t.margin + t.exclusion.saturating_sub(t.lease);
                self.next_attempt = now + after + candidate_wait(t, cx.rng, p);
            }
        }
        if self.attempt.as_ref().is_some_and(|a| now >= a.deadline) {
            self.abandon(cx, lease, now, Abandon::TimedOut, master_expires);
        }
        if hold.conflict {
            // F2: no attempt until every voter heard from matches (`leave_conflict`).
            self.next_attempt = Timestamp::MAX;
        }
        let due = self.attempt.is_none()
            && self.stands()
            && now >= self.next_attempt
            && !hold.shutting_down;
        let excess = self
            .next_counter(setup, cx.floor)
            .saturating_sub(cx.ballot_limit);
        if due && excess > 0 && !setup.breaks(UnsafeRule::UnboundedBallots) {
            // B1: a ballot over the bound would be dropped everywhere. Only a pushed
            // counter gets here (a forged ballot just under the bound); the floor catches
            // up one per millisecond.
            self.next_attempt = now + Duration::from_millis(excess);
        }
        if due && self.active.is_none() {
            self.step_aside();
        }
        if self.attempt.is_none()
            && self.stands()
            && now >= self.next_attempt
            && !hold.shutting_down
        {
            let base = self.active.map(|a| a.ballot);
            let admitted = std::mem::take(&mut self.admitted);
            // Renewals and admitted leases go now; other fresh attempts over the rate wait
            // in the node's queue (the node queues a lease when `queued` turns true).
            if base.is_some() || admitted || cx.pacer.try_take(now, cx.stats.held) {
                self.start_attempt(cx, lease, now, base);
            } else {
                self.next_attempt = Timestamp::MAX;
                if !self.queued {
                    self.queued = true;
                    cx.stats.paced_attempts += 1;
                }
            }
        }
    }

    /// Re-sends Prepare / Accept to the voters that have not answered this attempt yet.
    pub(crate) fn retransmit(&mut self, cx: &mut Cx<'_>, lease: &LeaseName, now: Timestamp) {
        let interval = cx.retransmit_after();
        let Some(att) = self.attempt.as_mut().filter(|a| now >= a.next_retransmit) else {
            return;
        };
        // Backing off: under overload, answers are late rather than lost, and every
        // retransmission only adds to the queues.
        att.retransmits = att.retransmits.saturating_add(1);
        att.next_retransmit = now + att.backoff(interval);
        let started = att.started;
        cx.observe_round_trip(now, started, None);
        cx.stats.retransmissions += 1;
        self.resend_to(cx, lease, |att| {
            !if att.accepting {
                att.accepted
            } else {
                att.promised
            }
        });
    }

    /// Sends the attempt's current message (Prepare or Accept) again to the voters in the
    /// set `to` picks.
    pub(crate) fn resend_to(
        &self,
        cx: &mut Cx<'_>,
        lease: &LeaseName,
        to: impl Fn(&Attempt) -> u64,
    ) {
        let Some(att) = self.attempt.as_ref() else {
            return;
        };
        let setup = cx.setup;
        let targets = to(att);
        let message = att.message(setup.timing.lease);
        for (i, &voter) in setup.voters.iter().enumerate() {
            if targets & (1 << i) != 0 {
                cx.send(voter, lease, message.clone());
            }
        }
    }
}
