//! The `ask` proposers of one node (ordered maps: what is retried together goes out in
//! key order, so a simulation replays exactly): one request per key at a time (callers of the same
//! key share it), each a single-decree Paxos round in the key's open instance, retried with
//! a fresh, higher ballot after a random backoff when it meets another proposer.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{AskEffects, AskEvent, AskMessage, AskValue, Instance};
use crate::durable::Record;
use crate::id::{LeaseName, NodeId};
use crate::log::quorum::{bit, voters_in};
use crate::log::{LogBallot, To};
use crate::rng::Rng;
use crate::time::Timestamp;
use crate::unsafe_rules::{Rules, UnsafeRule};

#[derive(Debug, Clone, Hash)]
struct Request {
    instance: Instance,
    ballot: LogBallot,
    /// The value to propose if none was accepted before (`None` for a `get`).
    want: Option<AskValue>,
    promised: u64,
    /// The highest-ballot value reported accepted in this instance.
    best: Option<(LogBallot, AskValue)>,
    /// Phase 2: the value proposed and who accepted it.
    accepting: Option<(AskValue, u64)>,
    /// The decision an acceptor reported for this instance, answered once a majority has
    /// replied about this instance (one acceptor cannot tell whether a forget closed it).
    decided: Option<AskValue>,
    /// When to retry if nothing settles it.
    retry_at: Timestamp,
    attempts: u32,
    /// A voter promised a higher ballot: this round waits for its retry.
    blocked: bool,
}

#[derive(Debug, Clone, Hash)]
struct Forgetting {
    instance: Instance,
    acked: u64,
    retry_at: Timestamp,
}

/// Every key's proposer state on this node.
#[derive(Debug, Clone, Hash)]
pub(crate) struct AskProposers {
    me: NodeId,
    voters: Vec<NodeId>,
    majority: usize,
    retransmit: Duration,
    counters: BTreeMap<LeaseName, u64>,
    requests: BTreeMap<LeaseName, Request>,
    forgets: BTreeMap<LeaseName, Forgetting>,
    /// The open instance of each key as far as this node knows.
    instances: BTreeMap<LeaseName, Instance>,
    rules: Rules,
}

/// The request of `key` if `ballot` in `instance` is its current round.
fn round<'a>(
    requests: &'a mut BTreeMap<LeaseName, Request>,
    key: &LeaseName,
    instance: Instance,
    ballot: LogBallot,
) -> Option<&'a mut Request> {
    requests
        .get_mut(key)
        .filter(|r| r.ballot == ballot && r.instance == instance)
}

impl AskProposers {
    /// Proposers for `me` among `voters`, whose counters follow the records given.
    pub(crate) fn restore<'a>(
        me: NodeId,
        voters: &[NodeId],
        retransmit: Duration,
        records: impl IntoIterator<Item = &'a Record>,
        rules: Rules,
    ) -> AskProposers {
        let mut voters = voters.to_vec();
        voters.sort_unstable();
        voters.dedup();
        let mut counters: BTreeMap<LeaseName, u64> = BTreeMap::new();
        let mut instances: BTreeMap<LeaseName, Instance> = BTreeMap::new();
        for record in records {
            match record {
                // Unsafe `reuse-log-ballot`: a restart forgets the counters.
                Record::AskCounter { .. } if rules.breaks(UnsafeRule::ReuseLogBallot) => {}
                Record::AskCounter { key, counter } => {
                    let c = counters.entry(key.clone()).or_default();
                    *c = (*c).max(*counter);
                }
                Record::AskInstance { key, instance } => {
                    let i = instances.entry(key.clone()).or_default();
                    *i = (*i).max(*instance);
                }
                _ => {}
            }
        }
        AskProposers {
            rules,
            me,
            majority: voters.len() / 2 + 1,
            voters,
            retransmit,
            counters,
            requests: BTreeMap::new(),
            forgets: BTreeMap::new(),
            instances,
        }
    }

    /// What a restart keeps: the counters and the instances known (tests compare them).
    #[cfg(test)]
    pub(crate) fn durable(&self) -> (&BTreeMap<LeaseName, u64>, &BTreeMap<LeaseName, Instance>) {
        (&self.counters, &self.instances)
    }

    /// The records that keep the proposers' counters across a restart.
    pub(crate) fn checkpoint(&self, out: &mut Vec<Record>) {
        for (key, counter) in &self.counters {
            out.push(Record::AskCounter {
                key: key.clone(),
                counter: *counter,
            });
        }
    }

    fn voter(&self, node: NodeId) -> Option<usize> {
        self.voters.binary_search(&node).ok()
    }

    /// A fresh ballot for `key`, made durable before anything carrying it leaves.
    fn fresh(&mut self, key: &LeaseName, fx: &mut AskEffects) -> Option<LogBallot> {
        let counter = self.counters.entry(key.clone()).or_default();
        *counter = counter.checked_add(1)?;
        fx.records.push(Record::AskCounter {
            key: key.clone(),
            counter: *counter,
        });
        Some(LogBallot {
            counter: *counter,
            node: self.me,
        })
    }

    /// `ask(key, value)` (or, with `None`, `get(key)`): the answer comes as an event.
    pub(crate) fn ask(
        &mut self,
        now: Timestamp,
        key: &LeaseName,
        value: Option<AskValue>,
        fx: &mut AskEffects,
    ) {
        if let Some(r) = self.requests.get_mut(key) {
            if r.want.is_none() {
                r.want = value;
            }
            return;
        }
        let instance = self.instances.get(key).copied().unwrap_or(0);
        self.begin(now, key, instance, value, 0, fx);
    }

    fn begin(
        &mut self,
        now: Timestamp,
        key: &LeaseName,
        instance: Instance,
        want: Option<AskValue>,
        attempts: u32,
        fx: &mut AskEffects,
    ) {
        let Some(ballot) = self.fresh(key, fx) else {
            return;
        };
        fx.sends.push((
            To::Voters,
            AskMessage::Prepare {
                key: key.clone(),
                instance,
                ballot,
            },
        ));
        self.requests.insert(
            key.clone(),
            Request {
                instance,
                ballot,
                want,
                promised: 0,
                best: None,
                accepting: None,
                decided: None,
                retry_at: now + self.retransmit,
                attempts,
                blocked: false,
            },
        );
    }

    /// Finishes the request of `key` with an event.
    fn finish(&mut self, key: &LeaseName, event: AskEvent, fx: &mut AskEffects) {
        self.requests.remove(key);
        fx.events.push(event);
    }

    /// Finishes the request of `key` with the value chosen in `instance`.
    fn answer(
        &mut self,
        key: &LeaseName,
        instance: Instance,
        value: AskValue,
        fx: &mut AskEffects,
    ) {
        let event = AskEvent::Decided {
            key: key.clone(),
            instance,
            value,
        };
        self.finish(key, event, fx);
    }

    /// Handles one reply from `from`.
    pub(crate) fn handle(
        &mut self,
        now: Timestamp,
        from: NodeId,
        message: AskMessage,
        fx: &mut AskEffects,
    ) {
        let Some(voter) = self.voter(from) else {
            return;
        };
        let majority = self.majority;
        match message {
            AskMessage::Promise {
                key,
                instance,
                ballot,
                accepted,
                decided,
            } => {
                let Some(r) = round(&mut self.requests, &key, instance, ballot) else {
                    return;
                };
                // Unsafe `ask-unchosen`: an accepted value is taken for the decision.
                let decided = if self.rules.breaks(UnsafeRule::AskUnchosen) {
                    decided.or_else(|| accepted.as_ref().map(|(_, v)| v.clone()))
                } else {
                    decided
                };
                if let Some(value) = decided {
                    // The acceptor was told the decision: it is chosen in this instance.
                    // It answers the caller once a majority replied about this instance
                    // (phase 2 began only after one did): a forget that a majority
                    // acknowledged before this request would have moved one of them on,
                    // and one acceptor that missed it still reports the old decision.
                    r.promised |= bit(voter);
                    // Unsafe `ask-one-decision`: the first decision reported is the answer.
                    if r.accepting.is_none()
                        && voters_in(r.promised) < majority
                        && !self.rules.breaks(UnsafeRule::AskOneDecision)
                    {
                        r.decided.get_or_insert(value);
                        return;
                    }
                    self.answer(&key, instance, value, fx);
                    return;
                }
                if r.blocked || r.accepting.is_some() || r.promised & bit(voter) != 0 {
                    return;
                }
                r.promised |= bit(voter);
                if let Some((b, v)) = accepted
                    && r.best.as_ref().is_none_or(|(had, _)| b > *had)
                {
                    r.best = Some((b, v));
                }
                if voters_in(r.promised) < majority {
                    return;
                }
                if let Some(value) = r.decided.take() {
                    self.answer(&key, instance, value, fx);
                    return;
                }
                // Propose the highest-ballot value accepted before, else our own.
                let value = r.best.as_ref().map(|(_, v)| v.clone()).or(r.want.clone());
                match value {
                    Some(value) => {
                        r.accepting = Some((value.clone(), 0));
                        r.retry_at = now + self.retransmit;
                        fx.sends.push((
                            To::Voters,
                            AskMessage::Accept {
                                key,
                                instance,
                                ballot,
                                value,
                            },
                        ));
                    }
                    None => {
                        self.finish(
                            &key,
                            AskEvent::Undecided {
                                key: key.clone(),
                                instance,
                            },
                            fx,
                        );
                    }
                }
            }
            AskMessage::Accepted {
                key,
                instance,
                ballot,
            } => {
                let Some(r) = round(&mut self.requests, &key, instance, ballot) else {
                    return;
                };
                let Some((value, acked)) = r.accepting.as_mut().filter(|_| !r.blocked) else {
                    return;
                };
                *acked |= bit(voter);
                if voters_in(*acked) < majority {
                    return;
                }
                let value = value.clone();
                fx.sends.push((
                    To::Voters,
                    AskMessage::Decided {
                        key: key.clone(),
                        instance,
                        value: value.clone(),
                    },
                ));
                self.finish(
                    &key,
                    AskEvent::Decided {
                        key: key.clone(),
                        instance,
                        value,
                    },
                    fx,
                );
            }
            AskMessage::Reject {
                key,
                instance,
                ballot,
                promised,
            } => {
                let counter = self.counters.entry(key.clone()).or_default();
                *counter = (*counter).max(promised.counter);
                if let Some(r) = round(&mut self.requests, &key, instance, ballot) {
                    // Another proposer is ahead: back off until the retry.
                    r.blocked = true;
                    r.accepting = None;
                }
            }
            AskMessage::Moved {
                key,
                instance,
                current,
            } => {
                let known = self.instances.entry(key.clone()).or_default();
                *known = (*known).max(current);
                self.ack_forget(&key, instance, voter);
                if let Some(r) = self.requests.remove(&key) {
                    if r.instance < current {
                        // The instance asked about is over: ask again in the open one.
                        self.begin(now, &key, current, r.want, r.attempts, fx);
                    } else {
                        self.requests.insert(key.clone(), r);
                    }
                }
                self.forgotten(&key, fx);
            }
            AskMessage::Forgot { key, instance } => {
                self.ack_forget(&key, instance, voter);
                self.forgotten(&key, fx);
            }
            _ => {}
        }
    }

    /// `forget(key)`: closes the open instance on a majority and opens the next.
    pub(crate) fn forget(&mut self, now: Timestamp, key: &LeaseName, fx: &mut AskEffects) {
        let instance = self.instances.get(key).copied().unwrap_or(0);
        self.forgets.insert(
            key.clone(),
            Forgetting {
                instance,
                acked: 0,
                retry_at: now + self.retransmit,
            },
        );
        fx.sends.push((
            To::Voters,
            AskMessage::Forget {
                key: key.clone(),
                instance,
            },
        ));
    }

    /// A voter closed `instance` of `key` (or was past it).
    fn ack_forget(&mut self, key: &LeaseName, instance: Instance, voter: usize) {
        if let Some(f) = self.forgets.get_mut(key).filter(|f| f.instance == instance) {
            f.acked |= bit(voter);
        }
    }

    fn forgotten(&mut self, key: &LeaseName, fx: &mut AskEffects) {
        let Some(f) = self.forgets.get(key) else {
            return;
        };
        if voters_in(f.acked) < self.majority {
            return;
        }
        let instance = f.instance;
        self.forgets.remove(key);
        let known = self.instances.entry(key.clone()).or_default();
        *known = (*known).max(instance + 1);
        fx.events.push(AskEvent::Forgotten {
            key: key.clone(),
            instance,
        });
    }

    /// When the next retry is due.
    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        let requests = self.requests.values().map(|r| r.retry_at);
        let forgets = self.forgets.values().map(|f| f.retry_at);
        requests.chain(forgets).min()
    }

    /// Retries what has not settled: a request with a fresh ballot after a random wait
    /// that grows with its attempts; a forget as it was.
    pub(crate) fn handle_timeout(&mut self, now: Timestamp, rng: &mut Rng, fx: &mut AskEffects) {
        let due: Vec<LeaseName> = self
            .requests
            .iter()
            .filter(|(_, r)| r.retry_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(r) = self.requests.remove(&key) else {
                continue;
            };
            self.begin(now, &key, r.instance, r.want, r.attempts + 1, fx);
            if let Some(next) = self.requests.get_mut(&key) {
                let spread = self.retransmit * (1 << next.attempts.min(5));
                next.retry_at = now + self.retransmit + rng.duration(spread);
            }
        }
        let retransmit = self.retransmit;
        for (key, f) in &mut self.forgets {
            if f.retry_at <= now {
                f.retry_at = now + retransmit;
                fx.sends.push((
                    To::Voters,
                    AskMessage::Forget {
                        key: key.clone(),
                        instance: f.instance,
                    },
                ));
            }
        }
    }
}
