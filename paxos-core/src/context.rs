//! What every role of a node reads and writes while it handles one input: the node's fixed
//! [`Setup`], and the [`Cx`] that carries it with the node's outputs (messages, events,
//! counters) and its random numbers. The roles (`acceptors.rs`, `proposer.rs`,
//! `learner.rs`) keep their own state and write their outputs only through a `Cx`.

use std::collections::VecDeque;
use std::time::Duration;

use crate::ballot::Ballot;
use crate::config::Timing;
use crate::event::{Event, SurrenderReason};
use crate::id::{Incarnation, LeaseName, NodeId, Owner};
use crate::message::{Envelope, Message};
use crate::outbox::Outbox;
use crate::pacing::Pacer;
use crate::rng::Rng;
use crate::stats::Stats;
use crate::time::Timestamp;
use crate::unsafe_rules::{Rules, UnsafeRule};

/// Who this node is and whom it talks to; fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) id: NodeId,
    pub(crate) incarnation: Incarnation,
    pub(crate) timing: Timing,
    /// Sorted voters; a voter's index is its bit in promise/accept sets.
    pub(crate) voters: Vec<NodeId>,
    /// Sorted voters and observers.
    pub(crate) members: Vec<NodeId>,
    pub(crate) is_voter: bool,
    pub(crate) majority: usize,
    /// Renewals go straight to Accept (P7); off on the baseline protocol, whose acceptors
    /// overwrite live leases (A2 without its refusal, which P7 rests on).
    pub(crate) one_round_renewals: bool,
    pub(crate) rules: Rules,
}

impl Setup {
    /// The owner identity of this process run.
    pub(crate) fn owner(&self) -> Owner {
        Owner {
            node: self.id,
            incarnation: self.incarnation,
        }
    }

    /// How many voters may refuse before an attempt cannot reach a majority.
    pub(crate) fn minority(&self) -> usize {
        self.voters.len() - self.majority
    }

    /// Whether the test-only switch `rule` is on.
    pub(crate) fn breaks(&self, rule: UnsafeRule) -> bool {
        self.rules.breaks(rule)
    }

    /// Whether the defences in depth are off (test-only, [`UnsafeRule::Baseline`]).
    pub(crate) fn defences_off(&self) -> bool {
        self.rules.defences_off()
    }
}

/// One input's view of the node around a lease.
pub(crate) struct Cx<'a> {
    pub(crate) setup: &'a Setup,
    pub(crate) out: &'a mut Outbox,
    pub(crate) events: &'a mut VecDeque<Event>,
    pub(crate) stats: &'a mut Stats,
    pub(crate) rng: &'a mut Rng,
    /// The pacing of fresh attempts, and what it learns from every attempt's round trip.
    pub(crate) pacer: &'a mut Pacer,
    /// The wall-clock floor of ballot counters (T4).
    pub(crate) floor: u64,
    /// The highest ballot counter this node takes from anyone (B1).
    pub(crate) ballot_limit: u64,
}

impl Cx<'_> {
    /// Tells the pacing how long an attempt started at `started` has taken by `now`: it
    /// reached its majority, the Accept round having been sent at `accept_sent`; or it is
    /// still waiting and retransmits (`None`). Counts a rate cut.
    pub(crate) fn observe_round_trip(
        &mut self,
        now: Timestamp,
        started: Timestamp,
        accept_sent: Option<Timestamp>,
    ) {
        let answered = accept_sent.map(|t| now.saturating_duration_since(t));
        if self.pacer.observe(
            now,
            now.saturating_duration_since(started),
            answered,
            self.stats.held,
        ) {
            self.stats.attempt_rate_cuts += 1;
        }
    }

    /// How long an attempt waits for answers before it sends again: the retransmission
    /// interval, longer while answers take longer (twice their smoothed round trip, at
    /// most a quarter of the lease).
    pub(crate) fn retransmit_after(&self) -> Duration {
        let t = &self.setup.timing;
        self.pacer.retransmit_after(t.retransmit, t.lease / 4)
    }

    /// Queues `message` about `lease` for `to` (this node itself included).
    pub(crate) fn send(&mut self, to: NodeId, lease: &LeaseName, message: Message) {
        self.out.send(
            to,
            Envelope {
                lease: lease.clone(),
                message,
            },
        );
    }

    /// Queues `message` for every voter, this node too if it votes.
    pub(crate) fn send_to_voters(&mut self, lease: &LeaseName, message: &Message) {
        for &to in &self.setup.voters {
            self.out.send(
                to,
                Envelope {
                    lease: lease.clone(),
                    message: message.clone(),
                },
            );
        }
    }

    /// Queues `message` for every member, this node itself only with `include_self`.
    pub(crate) fn send_to_members(
        &mut self,
        lease: &LeaseName,
        message: &Message,
        include_self: bool,
    ) {
        for &to in &self.setup.members {
            if include_self || to != self.setup.id {
                self.out.send(
                    to,
                    Envelope {
                        lease: lease.clone(),
                        message: message.clone(),
                    },
                );
            }
        }
    }

    /// Queues an event for the application.
    pub(crate) fn event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// This node's authority under `token` is over: `Surrendered`, then no known master.
    pub(crate) fn surrender(&mut self, lease: &LeaseName, token: Ballot, reason: SurrenderReason) {
        self.stats.held = self.stats.held.saturating_sub(1);
        self.event(Event::Surrendered {
            lease: lease.clone(),
            token,
            reason,
        });
        self.event(Event::MasterChanged {
            lease: lease.clone(),
            master: None,
        });
    }
}

impl std::hash::Hash for Setup {
    /// The run's identity; the rest (timing, majority, rules) follows from the
    /// configuration, which the model checker keeps fixed per host (`state_hash.rs`).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        self.incarnation.hash(state);
        self.voters.hash(state);
        self.members.hash(state);
        self.is_voter.hash(state);
    }
}
