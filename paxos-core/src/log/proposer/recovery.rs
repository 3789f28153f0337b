//! A tenure's recovery (R2): Phase 1 with a fresh log ballot over the open range, the
//! snapshot a master must install first when voters compacted past what it applied (R7),
//! then the repair of every reported slot under the new ballot.

use std::collections::{BTreeMap, VecDeque};

use super::{Active, InFlight, LogProposer, State};
use crate::durable::Record;
use crate::id::NodeId;
use crate::log::quorum::{bit, voters_in};
use crate::log::{Effects, LogBallot, LogEvent, LogMessage, Slot, To, Value};
use crate::time::Timestamp;
use crate::unsafe_rules::UnsafeRule;

/// A voter's Promise (the fields of [`LogMessage::Promise`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Promise {
    pub(crate) ballot: LogBallot,
    /// Accepted entries at or after the Prepare's slot: slot, ballot, value.
    pub(crate) accepted: Vec<(Slot, LogBallot, Value)>,
    /// Entries were left out after the last one.
    pub(crate) more: bool,
    /// Slots below this are covered by the voter's snapshot.
    pub(crate) snapshot: Slot,
}

/// Phase 1 of a tenure.
#[derive(Debug, Clone, Hash)]
pub(super) struct Recovery {
    pub(super) ballot: LogBallot,
    pub(super) from: Slot,
    /// Voters whose whole promise arrived.
    pub(super) promised: u64,
    /// The highest-ballot entry reported for each slot at or after `from`.
    pub(super) reported: BTreeMap<Slot, (LogBallot, Value)>,
    /// The highest snapshot reported: slots below it are chosen.
    pub(super) snapshot: Slot,
    /// Who reported it.
    pub(super) snapshot_from: Option<NodeId>,
    pub(super) next_retransmit: Timestamp,
}

/// Between Phase 1 and the repairs, when voters compacted past what this node applied
/// (R7): the master fetches a snapshot first; it is not ready without that state.
#[derive(Debug, Clone, Hash)]
pub(super) struct Installing {
    pub(super) ballot: LogBallot,
    /// The first slot the node had not applied when the tenure began.
    pub(super) from: Slot,
    /// Slots below this are chosen and covered by a voter's snapshot.
    pub(super) start: Slot,
    pub(super) reported: BTreeMap<Slot, (LogBallot, Value)>,
    pub(super) next_retransmit: Timestamp,
}

impl LogProposer {
    /// R2: starts a tenure's recovery from `from`, the first slot this node does not know
    /// chosen, with a fresh ballot made durable before the Prepare leaves.
    pub(crate) fn start(&mut self, now: Timestamp, from: Slot, fx: &mut Effects) {
        self.stop(fx);
        let Some(counter) = self.counter.checked_add(1) else {
            return; // Unreachable with the bound on ballots heard; never wrap.
        };
        self.counter = counter;
        let ballot = LogBallot {
            counter,
            node: self.me,
        };
        fx.records.push(Record::Counter {
            lease: self.lease.clone(),
            counter,
        });
        if self.rules.breaks(UnsafeRule::SkipRecovery) {
            // Unsafe `skip-recovery`: ready at once, appending from `from`.
            fx.acks.push(LogEvent::Ready { chosen: from });
            self.state = State::Active(Active {
                ballot,
                ready: true,
                repair_end: from,
                commit: from,
                commit_sent: from,
                next: from,
                unsent: from,
                inflight: VecDeque::new(),
                next_retransmit: now + self.retransmit,
            });
            return;
        }
        fx.sends
            .push((To::Voters, LogMessage::Prepare { ballot, from }));
        self.state = State::Recovering(Recovery {
            ballot,
            from,
            promised: 0,
            reported: BTreeMap::new(),
            snapshot: 0,
            snapshot_from: None,
            next_retransmit: now + self.retransmit,
        });
    }

    /// A voter's answer to this tenure's Prepare.
    pub(crate) fn handle_promise(
        &mut self,
        now: Timestamp,
        from: NodeId,
        promise: Promise,
        fx: &mut Effects,
    ) {
        let Promise {
            ballot,
            accepted,
            more,
            snapshot,
        } = promise;
        let Some(voter) = self.voter(from) else {
            return;
        };
        let State::Recovering(r) = &mut self.state else {
            return;
        };
        if r.ballot != ballot || r.promised & bit(voter) != 0 {
            return;
        }
        let last = accepted.last().map(|e| e.0);
        for (slot, b, value) in accepted {
            if slot < r.from {
                continue;
            }
            // Keep the value of the highest ballot reported for the slot (R2); the unsafe
            // `repair-any-value` keeps the lowest.
            let any = self.rules.breaks(UnsafeRule::RepairAnyValue);
            let keep = r
                .reported
                .get(&slot)
                .is_none_or(|(had, _)| if any { b < *had } else { b > *had });
            if keep {
                r.reported.insert(slot, (b, value));
            }
        }
        if snapshot > r.snapshot {
            r.snapshot = snapshot;
            r.snapshot_from = Some(from);
        }
        if more {
            if let Some(next) = last.and_then(|l| l.checked_add(1)) {
                fx.sends
                    .push((To::Node(from), LogMessage::Prepare { ballot, from: next }));
            }
            return;
        }
        r.promised |= bit(voter);
        if voters_in(r.promised) < self.majority {
            return;
        }
        self.recovered(now, fx);
    }

    /// A majority promised. When a voter's snapshot covers slots this node has not
    /// applied, it fetches that snapshot first (R7); then [`LogProposer::repair`].
    fn recovered(&mut self, now: Timestamp, fx: &mut Effects) {
        let State::Recovering(r) = std::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        if r.snapshot <= r.from {
            self.repair(now, r.ballot, r.from, r.reported, fx);
            return;
        }
        if let Some(voter) = r.snapshot_from {
            fx.sends.push((
                To::Node(voter),
                LogMessage::Fetch {
                    from: r.from,
                    to: r.snapshot,
                },
            ));
        }
        self.state = State::Installing(Installing {
            ballot: r.ballot,
            from: r.from,
            start: r.snapshot,
            reported: r.reported,
            next_retransmit: now + self.retransmit,
        });
    }

    /// This node's learner applied every slot below `applied`: a master waiting for a
    /// snapshot goes on to its repairs once it has one covering what the voters compacted.
    pub(crate) fn caught_up(&mut self, now: Timestamp, applied: Slot, fx: &mut Effects) {
        let State::Installing(i) = &self.state else {
            return;
        };
        if applied < i.start {
            return;
        }
        let State::Installing(i) = std::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        self.repair(now, i.ballot, applied, i.reported, fx);
    }

    /// Re-proposes every reported slot from `start` with its highest-ballot value and
    /// fills the holes with no-ops (R2), all under this tenure's ballot; ready once they
    /// are chosen.
    fn repair(
        &mut self,
        now: Timestamp,
        ballot: LogBallot,
        start: Slot,
        reported: BTreeMap<Slot, (LogBallot, Value)>,
        fx: &mut Effects,
    ) {
        let end = reported
            .last_key_value()
            .map_or(start, |(slot, _)| (slot + 1).max(start));
        // Unsafe `no-repair`: what was found is not re-proposed; appends start over it.
        let end = if self.rules.breaks(UnsafeRule::NoRepair) {
            start
        } else {
            end
        };
        let inflight: VecDeque<InFlight> = (start..end)
            .map(|slot| InFlight {
                value: reported.get(&slot).map_or(Value::Noop, |(_, v)| v.clone()),
                accepted: 0,
                replies: 0,
            })
            .collect();
        let ready = start == end;
        if ready {
            fx.acks.push(LogEvent::Ready { chosen: start });
        }
        self.state = State::Active(Active {
            ballot,
            ready,
            repair_end: end,
            commit: start,
            commit_sent: start,
            next: end,
            unsent: start,
            inflight,
            next_retransmit: now + self.retransmit,
        });
    }
}
