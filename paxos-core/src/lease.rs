//! One joined lease on one node: its proposer and its learner, and the few inputs where
//! they meet (a Learn or Release from the master, the timer, an activation).

use std::time::Duration;

use crate::ballot::Ballot;
use crate::context::{Cx, Setup};
use crate::event::Master;
use crate::id::{LeaseName, NodeId};
use crate::learner::Learner;
use crate::message::LiveLease;
use crate::proposer::{Hold, Proposer, Step};
use crate::time::Timestamp;

/// Proposer and learner state for one joined lease.
#[derive(Debug, Clone, Hash)]
pub(crate) struct LeaseState {
    pub(crate) name: LeaseName,
    pub(crate) proposer: Proposer,
    pub(crate) learner: Learner,
}

impl LeaseState {
    pub(crate) fn new(name: LeaseName) -> Self {
        LeaseState {
            name,
            proposer: Proposer::new(),
            learner: Learner::default(),
        }
    }

    /// The earliest local time at which something is due for this lease.
    pub(crate) fn next_wakeup(&self) -> Timestamp {
        let t = self.proposer.next_wakeup();
        match self.learner.master_expires() {
            Some(expires) => t.min(expires),
            None => t,
        }
    }

    /// Who is master as this node sees it: itself (exact), another node (a hint), or none.
    pub(crate) fn master(&self, setup: &Setup) -> Option<Master> {
        match &self.proposer.active {
            Some(a) => Some(a.as_master(setup.id)),
            None => self.learner.view(setup.timing.margin),
        }
    }

    /// Joining (again), as a candidate with `priority` or as a learner only.
    pub(crate) fn join(
        &mut self,
        setup: &Setup,
        now: Timestamp,
        priority: Option<u8>,
        quarantine_until: Timestamp,
    ) {
        let known = self.learner.master.is_some();
        self.proposer
            .stand(setup, &self.name, now, priority, quarantine_until, known);
    }

    /// P2/P3: a promise for one of this node's ballots.
    pub(crate) fn handle_promise(
        &mut self,
        cx: &mut Cx<'_>,
        now: Timestamp,
        voter: usize,
        ballot: Ballot,
        live: Option<LiveLease>,
    ) {
        let step = self
            .proposer
            .handle_promise(cx, &self.name, now, voter, ballot, live);
        self.apply(cx, now, step);
    }

    /// P4: an acceptance for one of this node's ballots.
    pub(crate) fn handle_accepted(
        &mut self,
        cx: &mut Cx<'_>,
        now: Timestamp,
        voter: usize,
        ballot: Ballot,
    ) {
        let step = self
            .proposer
            .handle_accepted(cx, &self.name, now, voter, ballot);
        self.apply(cx, now, step);
    }

    /// A refusal of one of this node's ballots.
    pub(crate) fn handle_reject(
        &mut self,
        cx: &mut Cx<'_>,
        now: Timestamp,
        voter: usize,
        ballot: Ballot,
        promised: Ballot,
    ) {
        let step = self.proposer.handle_reject(cx, voter, ballot, promised);
        self.apply(cx, now, step);
    }

    /// Where a response left the attempt: an abandoned attempt waits at least for the
    /// known master's lease to end (L1); once active, this node's own lease replaces any
    /// learned master.
    fn apply(&mut self, cx: &mut Cx<'_>, now: Timestamp, step: Step) {
        match step {
            Step::Wait => {}
            Step::Abandon(why) => {
                let expires = self.learner.master_expires();
                self.proposer.abandon(cx, &self.name, now, why, expires);
            }
            Step::Activated => self.learner.master = None,
        }
    }

    /// L1: another node activated `ballot`. Ignored if its owner already released it; a
    /// lease of this node under a lower ballot ends (`Lost`); the proposer waits for the
    /// new master's lease to end.
    pub(crate) fn handle_learn(
        &mut self,
        cx: &mut Cx<'_>,
        now: Timestamp,
        ballot: Ballot,
        remaining: Duration,
    ) {
        if ballot.owner() == cx.setup.owner() {
            return;
        }
        if self.learner.was_released(ballot) {
            cx.stats.stale_responses += 1;
            return;
        }
        if !self.proposer.yield_to(cx, &self.name, ballot) {
            return;
        }
        if let Some(expires) = self
            .learner
            .handle_learn(cx, &self.name, now, ballot, remaining)
        {
            self.proposer
                .wait_for_master(cx.setup, &self.name, expires, ballot.node);
        }
    }

    /// This node's acceptor accepted `from`'s ballot for the lease, or promised it with
    /// no live lease to report (a Promise that reports one blocks the attempt): unless
    /// `from` is the master this node knows (renewing), a rival is trying for it, and the
    /// proposer lets it finish before a fresh attempt of its own (`Proposer::step_aside`).
    pub(crate) fn saw_rival(&mut self, setup: &Setup, now: Timestamp, from: NodeId) {
        if self.learner.master.is_none_or(|m| m.ballot.node != from) {
            self.proposer.saw_rival(setup, now);
        }
    }

    /// A master released `ballot`: forget it and, if standing, try after the succession
    /// order; ask the voters that refused this node's attempt again now (the released
    /// lease may be what they held against it), not at the next retransmission.
    pub(crate) fn handle_release(&mut self, cx: &mut Cx<'_>, now: Timestamp, ballot: Ballot) {
        if self.learner.handle_release(cx, &self.name, ballot) {
            self.proposer
                .after_release(cx.setup, &self.name, now, ballot.node);
        }
        self.proposer.resend_to(cx, &self.name, |att| att.refused);
    }

    /// Timer work for this lease, each deadline compared with stored state.
    pub(crate) fn handle_timeout(&mut self, cx: &mut Cx<'_>, now: Timestamp, hold: Hold) {
        let expires = self.learner.master_expires();
        self.proposer
            .handle_timeout(cx, &self.name, now, hold, expires);
        self.learner.handle_timeout(cx, &self.name, now);
        self.proposer.retransmit(cx, &self.name, now);
    }
}
