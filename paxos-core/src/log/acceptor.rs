//! The log acceptor of one lease name on one voter: Multi-Paxos Phase 1 over an open
//! range of slots and Phase 2 over consecutive slots, with durable state (R3).
//!
//! Every change to the durable state is returned as a [`Record`] in the same call; the
//! node holds the reply back until the records are durable (see `durable.rs`). A restarted
//! acceptor is rebuilt from its records ([`LogAcceptor::restore`]); one that lost them must
//! not answer again (R3; the `forgetful-acceptor` mistake).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{LogBallot, LogLimits, LogMessage, Slot, Value};
use crate::durable::Record;
use crate::id::LeaseName;

/// Why an input was dropped rather than answered (counted by the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dropped {
    /// A value over [`LogLimits::max_value_len`].
    TooLarge,
    /// More values than [`LogLimits::max_entries`], or none.
    TooMany,
    /// Slots beyond the window, a commit beyond the slots sent, or a slot range that
    /// overflows.
    OutOfWindow,
    /// The acceptor holds two windows of entries: a snapshot must cut them first (the
    /// bound on its memory, whatever the peers send).
    Full,
}

/// Durable state of one lease's log acceptor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct LogAcceptor {
    promised: Option<LogBallot>,
    /// Accepted entries at or above `snapshot`: slot → (ballot, value).
    entries: BTreeMap<Slot, (LogBallot, Value)>,
    /// Slots below this are chosen and covered by a snapshot; their entries are gone.
    snapshot: Slot,
    /// The application's snapshot of the slots below `snapshot` (served to peers that
    /// need them, R7).
    snapshot_data: Option<Arc<[u8]>>,
    /// Volatile: slots below this are known chosen (from commits), the base of the window.
    committed: Slot,
    /// What it takes from peers.
    limits: LogLimits,
}

impl LogAcceptor {
    /// A fresh acceptor that takes input within `limits`.
    pub(crate) fn new(limits: LogLimits) -> LogAcceptor {
        LogAcceptor {
            limits,
            ..LogAcceptor::default()
        }
    }

    /// Rebuilds the acceptor of `lease` from its records, in the order they were written
    /// (records of other leases are skipped).
    pub(crate) fn restore<'a>(
        limits: LogLimits,
        lease: &LeaseName,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> LogAcceptor {
        let mut acceptor = LogAcceptor::new(limits);
        for record in records.into_iter().filter(|r| r.name() == lease) {
            match record {
                Record::Promised { ballot, .. } => {
                    acceptor.promised = acceptor.promised.max(Some(*ballot));
                }
                Record::Accepted {
                    slot,
                    ballot,
                    value,
                    ..
                } => {
                    if *slot >= acceptor.snapshot {
                        acceptor.entries.insert(*slot, (*ballot, value.clone()));
                    }
                    acceptor.promised = acceptor.promised.max(Some(*ballot));
                }
                Record::Snapshot { upto, data, .. } => {
                    if *upto >= acceptor.snapshot {
                        acceptor.cut(*upto);
                        acceptor.snapshot_data = Some(data.clone());
                    }
                }
                Record::Counter { .. }
                | Record::AskPromised { .. }
                | Record::AskAccepted { .. }
                | Record::AskInstance { .. }
                | Record::AskCounter { .. } => {}
            }
        }
        acceptor.committed = acceptor.snapshot;
        acceptor
    }

    /// The ballot promised, if any.
    #[cfg(test)]
    pub(crate) fn promised(&self) -> Option<LogBallot> {
        self.promised
    }

    /// Slots below this are covered by a snapshot.
    pub(crate) fn snapshot(&self) -> Slot {
        self.snapshot
    }

    /// The snapshot of the slots below [`LogAcceptor::snapshot`], if one was taken.
    pub(crate) fn snapshot_data(&self) -> Option<&Arc<[u8]>> {
        self.snapshot_data.as_ref()
    }

    /// The slot after the last entry held (the snapshot's end when none is).
    pub(crate) fn end(&self) -> Slot {
        self.entries
            .last_key_value()
            .map_or(self.snapshot, |(slot, _)| slot + 1)
    }

    /// The entries accepted for the slots of `range`, in slot order.
    pub(crate) fn entries(
        &self,
        range: std::ops::Range<Slot>,
    ) -> impl Iterator<Item = (Slot, &(LogBallot, Value))> {
        let range = range.start..range.end.max(range.start);
        self.entries.range(range).map(|(slot, e)| (*slot, e))
    }

    /// The entry accepted for `slot`, if any.
    pub(crate) fn entry(&self, slot: Slot) -> Option<&(LogBallot, Value)> {
        self.entries.get(&slot)
    }

    /// Phase 1 (R2): promise `ballot` for every slot from `from` on and report what was
    /// accepted there, or refuse a ballot below the one promised.
    pub(crate) fn handle_prepare(
        &mut self,
        lease: &LeaseName,
        ballot: LogBallot,
        from: Slot,
        out: &mut Vec<Record>,
    ) -> LogMessage {
        let limits = self.limits;
        if let Some(promised) = self.promised.filter(|p| ballot < *p) {
            return LogMessage::Reject { ballot, promised };
        }
        if self.promised != Some(ballot) {
            self.promised = Some(ballot);
            out.push(Record::Promised {
                lease: lease.clone(),
                ballot,
            });
        }
        let start = from.max(self.snapshot);
        let entries = self.entries.range(start..);
        let take = limits.take(entries.clone().map(|(_, (_, v))| v.bytes().len()));
        let accepted: Vec<_> = entries
            .clone()
            .take(take)
            .map(|(slot, (b, value))| (*slot, *b, value.clone()))
            .collect();
        let more = entries.count() > take;
        LogMessage::Promise {
            ballot,
            accepted,
            more,
            snapshot: self.snapshot,
        }
    }

    /// Phase 2 (R2 repair, R4 appends): accept `values` for the slots from `first` under
    /// `ballot`, or refuse a ballot below the one promised. Slots below the snapshot are
    /// chosen already and skipped. Bad input is dropped, never answered.
    pub(crate) fn handle_accept(
        &mut self,
        lease: &LeaseName,
        ballot: LogBallot,
        first: Slot,
        values: &[Value],
        commit: Slot,
        out: &mut Vec<Record>,
    ) -> Result<LogMessage, Dropped> {
        let limits = self.limits;
        let count = u64::try_from(values.len()).map_err(|_| Dropped::TooMany)?;
        if values.is_empty() || values.len() > limits.max_entries {
            return Err(Dropped::TooMany);
        }
        if values
            .iter()
            .any(|v| v.bytes().len() > limits.max_value_len)
        {
            return Err(Dropped::TooLarge);
        }
        let end = first.checked_add(count).ok_or(Dropped::OutOfWindow)?;
        // A master commits only slots it has sent.
        if commit > end {
            return Err(Dropped::OutOfWindow);
        }
        // The window starts at what is known chosen, the master's word included; what it
        // lets through is bounded below by the cap on entries held.
        let base = self.snapshot.max(self.committed).max(commit);
        if end > base.saturating_add(limits.window) {
            return Err(Dropped::OutOfWindow);
        }
        let held = u64::try_from(self.entries.len()).unwrap_or(u64::MAX);
        if held.saturating_add(count) > limits.window.saturating_mul(2) {
            return Err(Dropped::Full);
        }
        if let Some(promised) = self.promised.filter(|p| ballot < *p) {
            return Ok(LogMessage::Reject { ballot, promised });
        }
        if self.promised != Some(ballot) {
            self.promised = Some(ballot);
            out.push(Record::Promised {
                lease: lease.clone(),
                ballot,
            });
        }
        for (slot, value) in (first..end).zip(values) {
            if slot < self.snapshot {
                continue;
            }
            self.entries.insert(slot, (ballot, value.clone()));
            out.push(Record::Accepted {
                lease: lease.clone(),
                slot,
                ballot,
                value: value.clone(),
            });
        }
        self.committed = self.committed.max(commit);
        Ok(LogMessage::Accepted {
            ballot,
            first,
            count,
        })
    }

    /// R7: every slot below `upto` is chosen and `data` is the application's state after
    /// them (its own snapshot, or a peer's being installed): the entries below `upto` go.
    /// The caller makes sure of the "chosen"; returns whether anything changed (never
    /// backwards).
    pub(crate) fn cover(
        &mut self,
        lease: &LeaseName,
        upto: Slot,
        data: Arc<[u8]>,
        out: &mut Vec<Record>,
    ) -> bool {
        if upto <= self.snapshot {
            return false;
        }
        self.cut(upto);
        self.snapshot_data = Some(data.clone());
        out.push(Record::Snapshot {
            lease: lease.clone(),
            upto,
            data,
        });
        true
    }

    /// The records that restore this acceptor's durable state (a checkpoint: restoring
    /// from them gives the state restoring from every record before them gives).
    pub(crate) fn checkpoint(&self, lease: &LeaseName, out: &mut Vec<Record>) {
        if let Some(ballot) = self.promised {
            out.push(Record::Promised {
                lease: lease.clone(),
                ballot,
            });
        }
        if let Some(data) = &self.snapshot_data {
            out.push(Record::Snapshot {
                lease: lease.clone(),
                upto: self.snapshot,
                data: data.clone(),
            });
        }
        for (slot, (ballot, value)) in &self.entries {
            out.push(Record::Accepted {
                lease: lease.clone(),
                slot: *slot,
                ballot: *ballot,
                value: value.clone(),
            });
        }
    }

    fn cut(&mut self, upto: Slot) {
        if upto > self.snapshot {
            self.snapshot = upto;
            self.entries = self.entries.split_off(&upto);
            self.committed = self.committed.max(upto);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    fn lease() -> LeaseName {
        LeaseName::new("log").expect("valid")
    }

    fn b(counter: u64, node: u64) -> LogBallot {
        LogBallot {
            counter,
            node: NodeId(node),
        }
    }

    fn data(text: &str) -> Value {
        Value::Data(text.as_bytes().into())
    }

    #[test]
    fn a_promise_reports_every_accepted_entry_of_the_open_range() {
        let (mut a, mut out) = (LogAcceptor::default(), Vec::new());
        let values = [data("x"), data("y"), data("z")];
        let reply = a.handle_accept(&lease(), b(1, 1), 0, &values, 0, &mut out);
        assert_eq!(
            reply,
            Ok(LogMessage::Accepted {
                ballot: b(1, 1),
                first: 0,
                count: 3
            })
        );
        assert_eq!(
            out.len(),
            4,
            "the promise and three entries are durable facts"
        );
        out.clear();
        let promise = a.handle_prepare(&lease(), b(2, 2), 1, &mut out);
        assert_eq!(
            promise,
            LogMessage::Promise {
                ballot: b(2, 2),
                accepted: vec![(1, b(1, 1), data("y")), (2, b(1, 1), data("z"))],
                more: false,
                snapshot: 0,
            }
        );
        assert_eq!(
            out,
            vec![Record::Promised {
                lease: lease(),
                ballot: b(2, 2)
            }]
        );
        // A promise made durable once is not written again.
        out.clear();
        let _ = a.handle_prepare(&lease(), b(2, 2), 1, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn lower_ballots_are_refused_in_both_phases_and_change_nothing() {
        let (mut a, mut out) = (LogAcceptor::default(), Vec::new());
        let _ = a.handle_prepare(&lease(), b(5, 2), 0, &mut out);
        out.clear();
        let before = a.clone();
        assert_eq!(
            a.handle_prepare(&lease(), b(4, 3), 0, &mut out),
            LogMessage::Reject {
                ballot: b(4, 3),
                promised: b(5, 2)
            }
        );
        assert_eq!(
            a.handle_accept(&lease(), b(5, 1), 0, &[data("old")], 0, &mut out),
            Ok(LogMessage::Reject {
                ballot: b(5, 1),
                promised: b(5, 2)
            })
        );
        assert!(out.is_empty());
        assert_eq!(a, before);
        // An equal ballot is the promised master's own: accepted.
        assert!(matches!(
            a.handle_accept(&lease(), b(5, 2), 0, &[data("new")], 0, &mut out),
            Ok(LogMessage::Accepted { .. })
        ));
        assert_eq!(a.entry(0), Some(&(b(5, 2), data("new"))));
    }

    #[test]
    fn bad_input_is_dropped_not_answered() {
        let limits = LogLimits {
            max_value_len: 4,
            max_entries: 2,
            window: 10,
            ..LogLimits::default()
        };
        let (mut a, mut out) = (LogAcceptor::new(limits), Vec::new());
        let l = lease();
        assert_eq!(
            a.handle_accept(&l, b(1, 1), 0, &[data("toolong")], 0, &mut out),
            Err(Dropped::TooLarge)
        );
        assert_eq!(
            a.handle_accept(&l, b(1, 1), 0, &[], 0, &mut out),
            Err(Dropped::TooMany)
        );
        let three = [data("a"), data("b"), data("c")];
        assert_eq!(
            a.handle_accept(&l, b(1, 1), 0, &three, 0, &mut out),
            Err(Dropped::TooMany)
        );
        assert_eq!(
            a.handle_accept(&l, b(1, 1), 9, &[data("a"), data("b")], 0, &mut out),
            Err(Dropped::OutOfWindow),
            "slot 10 is beyond the window of 10 slots"
        );
        assert_eq!(
            a.handle_accept(&l, b(1, 1), u64::MAX, &[data("a")], 0, &mut out),
            Err(Dropped::OutOfWindow)
        );
        assert_eq!(
            a.handle_accept(&l, b(1, 1), 0, &[data("a")], 5, &mut out),
            Err(Dropped::OutOfWindow),
            "a commit beyond the slots sent"
        );
        assert!(
            out.is_empty() && a.promised().is_none(),
            "nothing was taken"
        );
        // Commits move the window.
        let ok = a.handle_accept(&l, b(1, 1), 8, &[data("a"), data("b")], 10, &mut out);
        assert!(ok.is_ok());
        assert!(
            a.handle_accept(&l, b(1, 1), 18, &[data("c"), data("d")], 10, &mut out)
                .is_ok()
        );
        // Commits slide the window, but the entries held are bounded: two windows.
        let mut first = 20;
        let full = loop {
            let r = a.handle_accept(&l, b(1, 1), first, &[data("e")], first, &mut out);
            if r.is_err() {
                break r;
            }
            first += 1;
        };
        assert_eq!(full, Err(Dropped::Full));
        assert_eq!(a.entries.len(), 20);
    }

    #[test]
    fn a_promise_is_bounded_and_says_there_is_more() {
        let limits = LogLimits {
            max_entries: 2,
            ..LogLimits::default()
        };
        let (mut a, mut out) = (LogAcceptor::new(limits), Vec::new());
        for slot in 0..5 {
            let _ = a.handle_accept(&lease(), b(1, 1), slot, &[data("v")], 0, &mut out);
        }
        let LogMessage::Promise { accepted, more, .. } =
            a.handle_prepare(&lease(), b(2, 1), 1, &mut out)
        else {
            panic!("a promise");
        };
        assert_eq!(accepted.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(more);
    }

    #[test]
    fn a_snapshot_cuts_the_entries_below_it_and_restore_rebuilds_the_state() {
        let (mut a, mut out) = (LogAcceptor::default(), Vec::new());
        let l = lease();
        let values: Vec<Value> = (0..6).map(|i| data(&format!("v{i}"))).collect();
        let _ = a.handle_accept(&l, b(1, 1), 0, &values, 0, &mut out);
        let _ = a.handle_prepare(&l, b(3, 2), 4, &mut out);
        let state: Arc<[u8]> = Arc::from(&b"v0 v1 v2"[..]);
        assert!(a.cover(&l, 3, state.clone(), &mut out));
        assert_eq!(a.snapshot(), 3);
        assert_eq!(a.end(), 6);
        assert_eq!(a.entry(2), None);
        assert_eq!(a.entry(3), Some(&(b(1, 1), data("v3"))));
        assert!(
            !a.cover(&l, 2, Arc::from(&b"v0 v1"[..]), &mut out),
            "never backwards"
        );
        assert_eq!(a.snapshot_data(), Some(&state));
        // Records of another lease are not this acceptor's.
        out.push(Record::Promised {
            lease: LeaseName::new("other").expect("valid"),
            ballot: b(99, 9),
        });
        let restored = LogAcceptor::restore(LogLimits::default(), &l, &out);
        assert_eq!(restored.promised(), Some(b(3, 2)));
        assert_eq!(restored.snapshot(), 3);
        assert_eq!(restored.snapshot_data(), Some(&state));
        assert_eq!(restored.entries, a.entries);
        let LogMessage::Promise {
            accepted, snapshot, ..
        } = restored
            .clone()
            .handle_prepare(&l, b(4, 1), 0, &mut Vec::new())
        else {
            panic!("a promise");
        };
        assert_eq!(snapshot, 3);
        assert_eq!(accepted.first().map(|e| e.0), Some(3));
    }
}
