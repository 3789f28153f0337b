//! Routing one message to the role it is for, after the checks every message passes.

use super::Node;
use crate::acceptors::Arrival;
use crate::ballot::Ballot;
use crate::id::NodeId;
use crate::message::{Envelope, Message};
use crate::time::Timestamp;
use crate::unsafe_rules::UnsafeRule;

impl Node {
    /// Routes one message to the role it is for, after the checks every message passes:
    /// a valid lease name, a voter's ballot (B2), a ballot within the bound (B1).
    pub(super) fn dispatch(&mut self, now: Timestamp, from: NodeId, envelope: Envelope) {
        self.stats.messages_received += 1;
        let Envelope { lease, message } = envelope;
        if !lease.is_valid() {
            self.stats.dropped_invalid += 1;
            return;
        }
        let rules = self.setup.rules;
        // B2: observers never propose and never own a lease: what would speak for one of
        // their ballots is dropped.
        if from != self.setup.id
            && message.voters_only()
            && self.setup.voters.binary_search(&from).is_err()
            && !rules.breaks(UnsafeRule::ObserverBallots)
        {
            self.stats.dropped_invalid += 1;
            return;
        }
        // B1: a ballot far above the wall clock is forged or corrupt. Following it would
        // push this lease's counters towards overflow, so it is not even looked at.
        let limit = self.ballot_limit();
        if !rules.breaks(UnsafeRule::UnboundedBallots)
            && message
                .ballots()
                .iter()
                .flatten()
                .any(|b| b.counter > limit)
        {
            self.stats.dropped_absurd_ballot += 1;
            return;
        }
        let at = Arrival {
            now,
            from,
            voter: self.setup.is_voter,
            quarantined: now < self.quarantine_until,
            conflict: self.peers.in_conflict(),
        };
        // One lookup of the name for the whole message (with many leases each lookup is a
        // cache miss, one of the largest costs of a message): the acceptor's part, and the
        // index of this node's proposer for the lease.
        let (joined, reply) =
            self.acceptors
                .receive(&mut self.stats, at, &lease, &message, &self.setup.timing);
        if let Some(ballot) = message.ballot_heard() {
            // T4, strengthened: never propose at or below a ballot seen for this lease.
            self.raise_counter(joined, ballot.counter);
        }
        match message {
            Message::Log(log) => self.dispatch_log(now, from, lease, log),
            Message::Ask(ask) => self.dispatch_ask(now, from, lease, ask),
            // Answered by the acceptor above (A1, A2).
            Message::Prepare { .. } | Message::Accept { .. } => {
                if let Some(reply) = reply {
                    // A Promise that reports a live lease blocks a fresh attempt (P2): the
                    // rival counts it as a refusal and is not about to win.
                    let agreed = matches!(
                        reply,
                        Message::Promise { lease: None, .. } | Message::Accepted { .. }
                    );
                    if let Some(idx) = joined.filter(|_| agreed && from != self.setup.id) {
                        self.leases[idx].saw_rival(&self.setup, now, from);
                    }
                    self.outbox.send(
                        from,
                        Envelope {
                            lease,
                            message: reply,
                        },
                    );
                }
            }
            Message::Release { ballot } => {
                if ballot.node != from {
                    self.stats.dropped_spoofed += 1;
                    return;
                }
                if let Some(idx) = joined {
                    let (l, mut cx) = self.parts(idx);
                    l.handle_release(&mut cx, now, ballot);
                    self.schedule(idx);
                }
            }
            Message::Learn { ballot, remaining } => {
                if ballot.node != from {
                    self.stats.dropped_spoofed += 1;
                    return;
                }
                if let Some(idx) = joined {
                    let (l, mut cx) = self.parts(idx);
                    l.handle_learn(&mut cx, now, ballot, remaining);
                    self.schedule(idx);
                }
            }
            Message::Promise {
                ballot,
                lease: live,
            } => {
                if let Some((idx, voter)) = self.response_target(joined, from, ballot) {
                    let (l, mut cx) = self.parts(idx);
                    l.handle_promise(&mut cx, now, voter, ballot, live);
                    self.schedule(idx);
                }
            }
            Message::Accepted { ballot } => {
                if let Some((idx, voter)) = self.response_target(joined, from, ballot) {
                    let (l, mut cx) = self.parts(idx);
                    l.handle_accepted(&mut cx, now, voter, ballot);
                    self.schedule(idx);
                }
            }
            Message::Reject { ballot, promised } => {
                // T4: never propose at or below a ballot seen in a rejection again.
                self.raise_counter(joined, promised.counter);
                if let Some((idx, voter)) = self.response_target(joined, from, ballot) {
                    let (l, mut cx) = self.parts(idx);
                    l.handle_reject(&mut cx, now, voter, ballot, promised);
                    self.schedule(idx);
                }
            }
        }
    }

    /// The highest ballot counter this node takes from anyone (B1).
    pub(super) fn ballot_limit(&self) -> u64 {
        self.wall.saturating_add(crate::MAX_BALLOT_LEAD)
    }

    /// T4 for one lease (`joined`: its index): its next ballot goes above `counter`. Only
    /// joined leases propose, so only they keep a counter.
    fn raise_counter(&mut self, joined: Option<usize>, counter: u64) {
        if let Some(idx) = joined {
            self.leases[idx].proposer.raise_counter(counter);
        }
    }

    /// The lease and voter index an acceptor's response is for, if it answers one of this
    /// run's ballots from a voter (`joined`: the lease's index, if this node joined it).
    fn response_target(
        &mut self,
        joined: Option<usize>,
        from: NodeId,
        ballot: Ballot,
    ) -> Option<(usize, usize)> {
        let Ok(voter) = self.setup.voters.binary_search(&from) else {
            self.stats.dropped_invalid += 1;
            return None;
        };
        if ballot.owner() != self.setup.owner() {
            self.stats.stale_responses += 1;
            return None;
        }
        match joined {
            Some(idx) => Some((idx, voter)),
            None => {
                self.stats.stale_responses += 1;
                None
            }
        }
    }
}
