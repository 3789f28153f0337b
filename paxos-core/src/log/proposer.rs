//! The log proposer of one lease, run only while this node holds the lease (R1): recovery
//! once per tenure with a fresh log ballot (R2), then single-round appends into new slots,
//! pipelined and batched (R4). The recovery itself (Phase 1, snapshot install, repair) is
//! `proposer/recovery.rs`.

use std::collections::VecDeque;
use std::time::Duration;

use super::quorum::{bit, voters_in};
use super::{AppendError, Effects, LogBallot, LogEvent, LogLimits, LogMessage, Slot};
use super::{To, Value};
use crate::durable::Record;
use crate::id::{LeaseName, NodeId};
use crate::time::Timestamp;
use crate::unsafe_rules::{Rules, UnsafeRule};

mod recovery;

pub(crate) use recovery::Promise;
use recovery::{Installing, Recovery};

/// An entry proposed and not yet chosen.
#[derive(Debug, Clone, Hash)]
struct InFlight {
    value: Value,
    /// The voters (by index) that accepted it under the current ballot.
    accepted: u64,
    /// Accepted messages counted (only the `count-duplicate-accepts` switch uses it).
    replies: usize,
}

/// Phase 2 of a tenure: repairs, then appends.
#[derive(Debug, Clone, Hash)]
struct Active {
    ballot: LogBallot,
    ready: bool,
    /// Slots below this were re-proposed by recovery (no caller waits for them).
    repair_end: Slot,
    /// Slots below this are chosen.
    commit: Slot,
    /// The commit the voters were last told.
    commit_sent: Slot,
    /// The next free slot.
    next: Slot,
    /// The first slot not yet sent.
    unsent: Slot,
    /// Slots `commit..next`, in order: the one at index `i` is slot `commit + i`.
    inflight: VecDeque<InFlight>,
    next_retransmit: Timestamp,
}

#[derive(Debug, Clone, Hash)]
enum State {
    Idle,
    Recovering(Recovery),
    Installing(Installing),
    Active(Active),
}

/// The log proposer of one lease on one node.
#[derive(Debug, Clone, Hash)]
pub(crate) struct LogProposer {
    lease: LeaseName,
    me: NodeId,
    /// Sorted; a voter's index is its bit.
    voters: Vec<NodeId>,
    majority: usize,
    limits: LogLimits,
    retransmit: Duration,
    /// The highest log ballot counter used or heard of.
    counter: u64,
    state: State,
    rules: Rules,
}

impl LogProposer {
    /// A proposer for `lease` on `me`, whose counter follows the `Counter` records given.
    pub(crate) fn new<'a>(
        lease: LeaseName,
        me: NodeId,
        voters: &[NodeId],
        limits: LogLimits,
        retransmit: Duration,
        records: impl IntoIterator<Item = &'a Record>,
        rules: Rules,
    ) -> LogProposer {
        let mut voters = voters.to_vec();
        voters.sort_unstable();
        voters.dedup();
        let counter = records
            .into_iter()
            .filter_map(|r| match r {
                Record::Counter { lease: l, counter } if *l == lease => Some(*counter),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        // Unsafe `reuse-log-ballot`: a restart forgets the counter.
        let counter = if rules.breaks(UnsafeRule::ReuseLogBallot) {
            0
        } else {
            counter
        };
        LogProposer {
            rules,
            majority: voters.len() / 2 + 1,
            lease,
            me,
            voters,
            limits,
            retransmit,
            counter,
            state: State::Idle,
        }
    }

    /// The voter index of `node`.
    pub(crate) fn voter(&self, node: NodeId) -> Option<usize> {
        self.voters.binary_search(&node).ok()
    }

    /// The ballot of the current tenure, if one runs.
    pub(crate) fn ballot(&self) -> Option<LogBallot> {
        match &self.state {
            State::Idle => None,
            State::Recovering(r) => Some(r.ballot),
            State::Installing(i) => Some(i.ballot),
            State::Active(a) => Some(a.ballot),
        }
    }

    /// Whether recovery finished and appends are taken.
    pub(crate) fn is_ready(&self) -> bool {
        matches!(&self.state, State::Active(a) if a.ready)
    }

    /// The highest counter used or heard of (durable through `Record::Counter`).
    pub(crate) fn counter(&self) -> u64 {
        self.counter
    }

    /// Raises the counter above a log ballot heard of.
    pub(crate) fn hear(&mut self, ballot: LogBallot) {
        self.counter = self.counter.max(ballot.counter);
    }

    /// Ends the tenure (the lease ended or was resigned, or a higher log ballot took
    /// over): every append in flight fails with an unknown outcome.
    pub(crate) fn stop(&mut self, fx: &mut Effects) {
        if let State::Active(a) = std::mem::replace(&mut self.state, State::Idle) {
            for slot in a.repair_end.max(a.commit)..a.next {
                fx.acks.push(LogEvent::AppendFailed {
                    slot,
                    reason: AppendError::Lost,
                });
            }
        }
    }

    /// R4: takes `value` for the next free slot; it is sent at the next flush and
    /// acknowledged (`Appended`) once a majority accepted it.
    #[cfg(test)]
    pub(crate) fn append(&mut self, value: Value) -> Result<Slot, AppendError> {
        self.append_all(vec![value]).map(|slots| slots.start)
    }

    /// R4: takes every value for the next free slots, in order, or none of them (one too
    /// large, or not room for all in the window); they leave in as few Accepts as the
    /// message size allows.
    pub(crate) fn append_all(
        &mut self,
        values: Vec<Value>,
    ) -> Result<std::ops::Range<Slot>, AppendError> {
        let max_len = self.limits.max_value_len;
        if values.iter().any(|v| v.bytes().len() > max_len) {
            return Err(AppendError::TooLarge);
        }
        let a = match &mut self.state {
            State::Active(a) if a.ready => a,
            State::Idle => return Err(AppendError::NotMaster),
            _ => return Err(AppendError::NotReady),
        };
        let count = values.len() as Slot;
        if (a.next - a.commit).saturating_add(count) > self.limits.window {
            return Err(AppendError::Busy);
        }
        let first = a.next;
        a.next += count;
        a.inflight.extend(values.into_iter().map(|value| InFlight {
            value,
            accepted: 0,
            replies: 0,
        }));
        Ok(first..a.next)
    }

    /// The next flush repeats the commit to every voter, even if they were told (a
    /// heartbeat of the log: a replica that missed it learns what it must fetch).
    pub(crate) fn recommit(&mut self) {
        if let State::Active(a) = &mut self.state
            && a.commit > 0
        {
            a.commit_sent = a.commit_sent.min(a.commit - 1);
        }
    }

    /// Sends what is new: Accepts for the slots not sent yet (batched), or the commit
    /// when nothing else carries it.
    pub(crate) fn flush(&mut self, fx: &mut Effects) {
        let limits = self.limits;
        let State::Active(a) = &mut self.state else {
            return;
        };
        if a.unsent < a.next {
            send_accepts(a, a.unsent, a.next, &limits, To::Voters, fx);
            a.unsent = a.next;
            a.commit_sent = a.commit;
        } else if a.commit > a.commit_sent {
            fx.sends.push((
                To::Voters,
                LogMessage::Commit {
                    ballot: a.ballot,
                    commit: a.commit,
                },
            ));
            a.commit_sent = a.commit;
        }
    }

    /// A voter accepted `count` slots from `first` under `ballot`.
    pub(crate) fn handle_accepted(
        &mut self,
        from: NodeId,
        ballot: LogBallot,
        first: Slot,
        count: u64,
        fx: &mut Effects,
    ) {
        let Some(voter) = self.voter(from) else {
            return;
        };
        let majority = self.majority;
        let State::Active(a) = &mut self.state else {
            return;
        };
        if a.ballot != ballot {
            return;
        }
        let end = first.saturating_add(count).min(a.next);
        let first = first.max(a.commit);
        if first >= end {
            return; // Chosen already, or nothing this tenure proposed (stray or forged).
        }
        for entry in a.inflight.range_mut(index(a, first)..index(a, end)) {
            entry.accepted |= bit(voter);
            entry.replies += 1;
        }
        // Unsafe `count-duplicate-accepts`: replies, not distinct voters, make a majority.
        let duplicates = self.rules.breaks(UnsafeRule::CountDuplicateAccepts);
        let enough = |e: &InFlight| {
            if duplicates {
                e.replies >= majority
            } else {
                voters_in(e.accepted) >= majority
            }
        };
        // Chosen in slot order: a later slot waits for the ones before it.
        while a.inflight.front().is_some_and(enough) {
            let Some(entry) = a.inflight.pop_front() else {
                break;
            };
            let slot = a.commit;
            fx.chosen.push((slot, entry.value));
            if slot >= a.repair_end {
                fx.acks.push(LogEvent::Appended { slot });
            }
            a.commit = slot + 1;
        }
        if !a.ready && a.commit >= a.repair_end {
            a.ready = true;
            fx.acks.push(LogEvent::Ready { chosen: a.commit });
        }
    }

    /// A voter promised a higher ballot: another tenure took over; this one ends.
    pub(crate) fn handle_reject(
        &mut self,
        ballot: LogBallot,
        promised: LogBallot,
        fx: &mut Effects,
    ) {
        self.hear(promised);
        if self.ballot() == Some(ballot) && promised > ballot {
            self.stop(fx);
        }
    }

    /// When the next retransmission is due.
    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        match &self.state {
            State::Idle => None,
            State::Recovering(r) => Some(r.next_retransmit),
            State::Installing(i) => Some(i.next_retransmit),
            State::Active(a) if a.inflight.is_empty() => None,
            State::Active(a) => Some(a.next_retransmit),
        }
    }

    /// Re-sends what voters have not answered: the Prepare, or the Accepts of the slots
    /// not chosen yet.
    pub(crate) fn handle_timeout(&mut self, now: Timestamp, fx: &mut Effects) {
        let limits = self.limits;
        let voters = self.voters.clone();
        let (retransmit, me) = (self.retransmit, self.me);
        match &mut self.state {
            State::Idle => {}
            State::Installing(i) => {
                if now < i.next_retransmit {
                    return;
                }
                i.next_retransmit = now + retransmit;
                // Any voter that kept the slots or compacted past them answers.
                for v in voters.iter().filter(|v| **v != me) {
                    let message = LogMessage::Fetch {
                        from: i.from,
                        to: i.start,
                    };
                    fx.sends.push((To::Node(*v), message));
                }
            }
            State::Recovering(r) => {
                if now < r.next_retransmit {
                    return;
                }
                r.next_retransmit = now + retransmit;
                for (i, v) in voters.iter().enumerate() {
                    if r.promised & bit(i) == 0 {
                        let message = LogMessage::Prepare {
                            ballot: r.ballot,
                            from: r.from,
                        };
                        fx.sends.push((To::Node(*v), message));
                    }
                }
            }
            State::Active(a) => {
                if now < a.next_retransmit {
                    return;
                }
                a.next_retransmit = now + retransmit;
                let sent_end = a.unsent.max(a.commit);
                for (i, v) in voters.iter().enumerate() {
                    let missing = a
                        .inflight
                        .range(..index(a, sent_end))
                        .position(|e| e.accepted & bit(i) == 0)
                        .map(|at| a.commit + at as Slot);
                    if let Some(first) = missing {
                        send_accepts(a, first, sent_end, &limits, To::Node(*v), fx);
                    }
                }
            }
        }
    }
}

/// The index in `a.inflight` of `slot` (at least `a.commit`, at most `a.next`).
fn index(a: &Active, slot: Slot) -> usize {
    usize::try_from(slot.saturating_sub(a.commit))
        .unwrap_or(usize::MAX)
        .min(a.inflight.len())
}

/// Accepts for the in-flight slots `first..end`, each within `limits` (entries and bytes).
fn send_accepts(a: &Active, first: Slot, end: Slot, limits: &LogLimits, to: To, fx: &mut Effects) {
    let first = first.max(a.commit);
    let (from, to_index) = (index(a, first), index(a, end));
    let mut start = first;
    let mut at = from;
    while at < to_index {
        let take = limits
            .take(
                a.inflight
                    .range(at..to_index)
                    .map(|e| e.value.bytes().len()),
            )
            .max(1);
        let values: Vec<Value> = a
            .inflight
            .range(at..at + take)
            .map(|e| e.value.clone())
            .collect();
        fx.sends.push((to, accept(a, start, values)));
        start += take as Slot;
        at += take;
    }
}

fn accept(a: &Active, first: Slot, values: Vec<Value>) -> LogMessage {
    LogMessage::Accept {
        ballot: a.ballot,
        first,
        values,
        commit: a.commit,
    }
}
