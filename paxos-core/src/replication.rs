//! The node's replicated state beside its leases: every lease's log (acceptor on demand,
//! learner, and a proposer for the leases this node joined with a log) and per-key
//! consensus, with the records given back at start and the gate that holds every reply
//! until its records are durable (R3). `node/replication.rs` is the node's side of it.

use std::collections::BTreeMap;

use crate::ask::acceptor::AskAcceptors;
use crate::ask::proposer::AskProposers;
use crate::context::Setup;
use crate::durable::{Gate, Record};
use crate::id::{LeaseName, NodeId};
use crate::log::acceptor::Dropped;
use crate::log::acceptor::LogAcceptor;
use crate::log::learner::LogLearner;
use crate::log::proposer::LogProposer;
use crate::log::proposer::Promise;
use crate::log::{Effects, LogBallot, LogLimits, LogMessage, To};
use crate::message::Envelope;
use crate::time::Timestamp;
use crate::unsafe_rules::UnsafeRule;

/// A log counter above this is forged or corrupt: honest counters grow by one per tenure.
pub(crate) const MAX_LOG_COUNTER: u64 = 1 << 48;

/// A slot beyond this is forged or corrupt: a log would take millennia to reach it.
pub(crate) const MAX_SLOT: u64 = 1 << 62;

/// Most lease names with log state on one node, and most `ask` keys.
pub(crate) const MAX_LOG_NAMES: usize = 4096;

/// One lease's log on this node.
#[derive(Debug, Clone, Hash)]
pub(crate) struct LeaseLog {
    pub(crate) acceptor: LogAcceptor,
    pub(crate) learner: LogLearner,
    /// Present when this node joined the lease with a log: it proposes while master.
    pub(crate) proposer: Option<LogProposer>,
}

impl LeaseLog {
    /// One log message for this lease from `from`: to the acceptor (and, for what carries
    /// a commit, the learner), the proposer, or the learner. Bad input is an error,
    /// dropped unanswered.
    pub(crate) fn handle(
        &mut self,
        now: Timestamp,
        from: NodeId,
        lease: &LeaseName,
        message: LogMessage,
        fx: &mut Effects,
    ) -> Result<(), Dropped> {
        if let Some(p) = &mut self.proposer {
            for b in message.ballots().into_iter().flatten() {
                p.hear(b);
            }
        }
        match message {
            LogMessage::Prepare { ballot, from: slot } => {
                let reply = self
                    .acceptor
                    .handle_prepare(lease, ballot, slot, &mut fx.records);
                fx.sends.push((To::Node(from), reply));
            }
            LogMessage::Accept {
                ballot,
                first,
                values,
                commit,
            } => {
                let reply = self.acceptor.handle_accept(
                    lease,
                    ballot,
                    first,
                    &values,
                    commit,
                    &mut fx.records,
                )?;
                fx.sends.push((To::Node(from), reply));
                self.learner
                    .handle_commit(now, from, ballot, commit, &self.acceptor, fx);
            }
            LogMessage::Commit { ballot, commit } => {
                self.learner
                    .handle_commit(now, from, ballot, commit, &self.acceptor, fx);
            }
            LogMessage::Promise {
                ballot,
                accepted,
                more,
                snapshot,
            } => {
                if let Some(p) = &mut self.proposer {
                    let promise = Promise {
                        ballot,
                        accepted,
                        more,
                        snapshot,
                    };
                    p.handle_promise(now, from, promise, fx);
                    p.caught_up(now, self.learner.applied(), fx);
                }
            }
            LogMessage::Accepted {
                ballot,
                first,
                count,
            } => {
                if let Some(p) = &mut self.proposer {
                    p.handle_accepted(from, ballot, first, count, fx);
                }
            }
            LogMessage::Reject { ballot, promised } => {
                if let Some(p) = &mut self.proposer {
                    p.handle_reject(ballot, promised, fx);
                }
            }
            LogMessage::Fetch { from: first, to } => {
                self.learner
                    .handle_fetch(from, first, to, &self.acceptor, fx);
            }
            LogMessage::Chosen { first, values } => {
                self.learner.handle_chosen(now, from, first, values, fx);
                self.caught_up(now, fx);
            }
            LogMessage::Snapshot { upto, data } => {
                let before = self.learner.applied();
                self.learner
                    .handle_snapshot(lease, upto, data, &mut self.acceptor, fx)?;
                self.learner.fetch_more(now, from, before, fx);
                self.caught_up(now, fx);
            }
        }
        Ok(())
    }

    /// A recovering master waiting for a snapshot goes on once its learner has it.
    fn caught_up(&mut self, now: Timestamp, fx: &mut Effects) {
        if let Some(p) = &mut self.proposer {
            p.caught_up(now, self.learner.applied(), fx);
        }
    }
}

/// Everything replicated a node keeps (ordered maps, so that work over several logs
/// happens in name order: a simulation replays exactly).
#[derive(Debug, Clone, Hash)]
pub(crate) struct Replication {
    pub(crate) limits: LogLimits,
    /// Records given back at start, per name, for logs created later.
    restored: BTreeMap<LeaseName, Vec<Record>>,
    pub(crate) logs: BTreeMap<LeaseName, LeaseLog>,
    /// The names of the logs with a proposer, in name order (as `logs` iterates).
    pub(crate) proposing: Vec<LeaseName>,
    pub(crate) ask_acceptors: AskAcceptors,
    pub(crate) ask_proposers: AskProposers,
    /// Log and `ask` messages waiting for their records to be durable.
    pub(crate) gate: Gate<(NodeId, Envelope)>,
}

impl Replication {
    pub(crate) fn new(setup: &Setup) -> Replication {
        let limits = LogLimits::default();
        Replication {
            limits,
            restored: BTreeMap::new(),
            logs: BTreeMap::new(),
            proposing: Vec::new(),
            ask_acceptors: AskAcceptors::restore(MAX_LOG_NAMES, limits.max_value_len, &[]),
            ask_proposers: AskProposers::restore(
                setup.id,
                &setup.voters,
                setup.timing.retransmit,
                &[],
                setup.rules,
            ),
            gate: Gate::leaky(setup.rules.breaks(UnsafeRule::ReplyBeforePersist)),
        }
    }

    /// Takes back what was made durable before a restart, in the order it was written.
    pub(crate) fn restore(&mut self, setup: &Setup, records: Vec<Record>) {
        self.ask_acceptors =
            AskAcceptors::restore(MAX_LOG_NAMES, self.limits.max_value_len, &records);
        self.ask_proposers = AskProposers::restore(
            setup.id,
            &setup.voters,
            setup.timing.retransmit,
            &records,
            setup.rules,
        );
        for record in records {
            if matches!(
                record,
                Record::Promised { .. }
                    | Record::Accepted { .. }
                    | Record::Snapshot { .. }
                    | Record::Counter { .. }
            ) {
                self.restored
                    .entry(record.name().clone())
                    .or_default()
                    .push(record);
            }
        }
        for name in self.restored.keys().cloned().collect::<Vec<_>>() {
            let _ = self.log(setup, &name);
        }
        // The logs hold their acceptors' state now; only the counters are read again (by
        // a proposer made later), so the rest is not kept twice.
        for (name, records) in &mut self.restored {
            if self.logs.contains_key(name) {
                records.retain(|r| matches!(r, Record::Counter { .. }));
            }
        }
    }

    /// The log of `lease`, created (from its restored records) when first needed; `None`
    /// beyond the number of names kept.
    pub(crate) fn log(&mut self, setup: &Setup, lease: &LeaseName) -> Option<&mut LeaseLog> {
        if !self.logs.contains_key(lease) {
            if self.logs.len() >= MAX_LOG_NAMES {
                return None;
            }
            let records = self.restored.get(lease).map_or(&[][..], Vec::as_slice);
            let acceptor = LogAcceptor::restore(self.limits, lease, records);
            let learner = LogLearner::new(
                self.limits,
                setup.timing.retransmit,
                acceptor.snapshot(),
                setup.rules,
            );
            self.logs.insert(
                lease.clone(),
                LeaseLog {
                    acceptor,
                    learner,
                    proposer: None,
                },
            );
        }
        self.logs.get_mut(lease)
    }

    /// Makes this node propose for `lease`'s log while it holds the lease.
    pub(crate) fn enable(&mut self, setup: &Setup, lease: &LeaseName) -> bool {
        let limits = self.limits;
        let records = self.restored.get(lease).cloned().unwrap_or_default();
        let Some(log) = self.log(setup, lease) else {
            return false;
        };
        if log.proposer.is_none() {
            log.proposer = Some(LogProposer::new(
                lease.clone(),
                setup.id,
                &setup.voters,
                limits,
                setup.timing.retransmit,
                &records,
                setup.rules,
            ));
            if let Err(at) = self.proposing.binary_search(lease) {
                self.proposing.insert(at, lease.clone());
            }
        }
        true
    }

    /// A checkpoint of everything durable: records that restore the same durable state as
    /// every record handed out so far (R3 holds across a storage's rewrite). Records of
    /// names restored but never used again are kept as they were.
    pub(crate) fn checkpoint(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for (name, records) in &self.restored {
            if !self.logs.contains_key(name) {
                out.extend(records.iter().cloned());
            }
        }
        for (name, log) in &self.logs {
            log.acceptor.checkpoint(name, &mut out);
            // The counter: the proposer's (used or heard of), else what was restored.
            let restored = self.restored.get(name).into_iter().flatten();
            let counter = restored
                .filter_map(|r| match r {
                    Record::Counter { counter, .. } => Some(*counter),
                    _ => None,
                })
                .chain(log.proposer.as_ref().map(LogProposer::counter))
                .max();
            if let Some(counter) = counter.filter(|c| *c > 0) {
                out.push(Record::Counter {
                    lease: name.clone(),
                    counter,
                });
            }
        }
        self.ask_acceptors.checkpoint(&mut out);
        self.ask_proposers.checkpoint(&mut out);
        out
    }

    /// Whether a log ballot is beyond what an honest node sends.
    pub(crate) fn absurd(ballot: LogBallot) -> bool {
        ballot.counter > MAX_LOG_COUNTER
    }
}
