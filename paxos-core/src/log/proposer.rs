//! The log proposer of one lease, run only while this node holds the lease (R1): recovery
//! once per tenure with a fresh log ballot (R2), then single-round appends into new slots,
//! pipelined and batched (R4). The recovery itself (Phase 1, snapshot install, repair) is
//! `proposer/recovery.rs`.

use std::collections::BTreeMap;
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
#[derive(Debug, Clone)]
struct InFlight {
    value: Value,
    /// The voters (by index) that accepted it under the current ballot.
    accepted: u64,
    /// Accepted messages counted (only the `count-duplicate-accepts` switch uses it).
    replies: usize,
}

/// Phase 2 of a tenure: repairs, then appends.
#[derive(Debug)]
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
    /// Slots `commit..next`.
    inflight: BTreeMap<Slot, InFlight>,
    next_retransmit: Timestamp,
}

#[derive(Debug)]
enum State {
    Idle,
    Recovering(Recovery),
    Installing(Installing),
    Active(Active),
}

/// The log proposer of one lease on one node.
#[derive(Debug)]
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

    /// Raises the counter above a log ballot heard of.
    pub(crate) fn hear(&mut self, ballot: LogBallot) {
        self.counter = self.counter.max(ballot.counter);
    }

    /// Ends the tenure (the lease ended or was resigned, or a higher log ballot took
    /// over): every append in flight fails with an unknown outcome.
    pub(crate) fn stop(&mut self, fx: &mut Effects) {
        if let State::Active(a) = std::mem::replace(&mut self.state, State::Idle) {
            for slot in a.inflight.keys().filter(|s| **s >= a.repair_end) {
                fx.acks.push(LogEvent::AppendFailed {
                    slot: *slot,
                    reason: AppendError::Lost,
                });
            }
        }
    }

    /// R4: takes `value` for the next free slot; it is sent at the next flush and
    /// acknowledged (`Appended`) once a majority accepted it.
    pub(crate) fn append(&mut self, value: Value) -> Result<Slot, AppendError> {
        if value.bytes().len() > self.limits.max_value_len {
            return Err(AppendError::TooLarge);
        }
        let a = match &mut self.state {
            State::Active(a) if a.ready => a,
            State::Idle => return Err(AppendError::NotMaster),
            _ => return Err(AppendError::NotReady),
        };
        if a.next - a.commit >= self.limits.window {
            return Err(AppendError::Busy);
        }
        let slot = a.next;
        a.next += 1;
        a.inflight.insert(
            slot,
            InFlight {
                value,
                accepted: 0,
                replies: 0,
            },
        );
        Ok(slot)
    }

    /// Sends what is new: Accepts for the slots not sent yet (batched), or the commit
    /// when nothing else carries it.
    pub(crate) fn flush(&mut self, fx: &mut Effects) {
        let max = self.limits.max_entries.max(1);
        let State::Active(a) = &mut self.state else {
            return;
        };
        if a.unsent < a.next {
            send_accepts(a, a.unsent, a.next, max, To::Voters, fx);
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
        if first >= end {
            return; // Nothing this tenure proposed (a stray or forged reply).
        }
        for (_, entry) in a.inflight.range_mut(first..end) {
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
        while a
            .inflight
            .first_key_value()
            .is_some_and(|(slot, e)| *slot == a.commit && enough(e))
        {
            let Some((slot, entry)) = a.inflight.pop_first() else {
                break;
            };
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
        let max = self.limits.max_entries.max(1);
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
                let sent_end = a.unsent;
                for (i, v) in voters.iter().enumerate() {
                    let missing = a
                        .inflight
                        .range(..sent_end)
                        .find(|(_, e)| e.accepted & bit(i) == 0)
                        .map(|(slot, _)| *slot);
                    if let Some(first) = missing {
                        send_accepts(a, first, sent_end, max, To::Node(*v), fx);
                    }
                }
            }
        }
    }
}

/// Accepts for the in-flight slots `first..end`, at most `max` values each.
fn send_accepts(a: &Active, first: Slot, end: Slot, max: usize, to: To, fx: &mut Effects) {
    let mut values = Vec::new();
    let mut start = first;
    for (slot, entry) in a.inflight.range(first..end) {
        if values.len() == max || (values.is_empty() && *slot != start) {
            if !values.is_empty() {
                fx.sends
                    .push((to, accept(a, start, std::mem::take(&mut values))));
            }
            start = *slot;
        }
        values.push(entry.value.clone());
    }
    if !values.is_empty() {
        fx.sends.push((to, accept(a, start, values)));
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
