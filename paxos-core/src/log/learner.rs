//! The log learner of one lease on one voter: learns which slots are chosen, delivers them
//! to the application in slot order and once each (R5), fetches what it missed, and keeps
//! the chosen values it delivered to answer others' fetches until a snapshot covers them;
//! a fetch of slots a snapshot covers is answered with the snapshot, which the asking node
//! installs (R7).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::acceptor::{Dropped, LogAcceptor};
use super::{Effects, LogBallot, LogEvent, LogLimits, LogMessage, Slot, To, Value};
use crate::id::{LeaseName, NodeId};
use crate::time::Timestamp;
use crate::unsafe_rules::{Rules, UnsafeRule};

/// The learner of one lease on one node.
#[derive(Debug, Clone, Hash)]
pub(crate) struct LogLearner {
    limits: LogLimits,
    retransmit: Duration,
    /// The next slot to deliver: every slot below it was delivered.
    applied: Slot,
    /// Chosen values not delivered yet (a gap before them).
    pending: BTreeMap<Slot, Value>,
    /// Delivered values kept to answer fetches: the slots just below `applied`, in order
    /// (the first is slot `applied - kept.len()`).
    kept: VecDeque<Value>,
    /// The highest commit heard: slots below it are chosen.
    commit: Slot,
    /// No second fetch before this.
    next_fetch: Timestamp,
    /// A [`LogEvent::SnapshotNeeded`] is due when `applied` reaches this.
    hint_at: Slot,
    rules: Rules,
}

impl LogLearner {
    /// A learner that delivers from `applied` on (0, or the end of the snapshot the
    /// application holds).
    pub(crate) fn new(
        limits: LogLimits,
        retransmit: Duration,
        applied: Slot,
        rules: Rules,
    ) -> LogLearner {
        LogLearner {
            rules,
            limits,
            retransmit,
            applied,
            pending: BTreeMap::new(),
            kept: VecDeque::new(),
            commit: applied,
            next_fetch: Timestamp::ZERO,
            hint_at: applied.saturating_add(limits.window / 2),
        }
    }

    /// The next slot to deliver (every slot below it is chosen and delivered).
    pub(crate) fn applied(&self) -> Slot {
        self.applied
    }

    /// Forgets the delivered values below `upto` (a snapshot covers them, R7); they are
    /// no longer served to fetches.
    pub(crate) fn compact(&mut self, upto: Slot) {
        let upto = upto.min(self.applied);
        let first = self.applied - self.kept.len() as Slot;
        let drop = usize::try_from(upto.saturating_sub(first)).unwrap_or(usize::MAX);
        self.kept.drain(..drop.min(self.kept.len()));
        self.hint_at = self
            .hint_at
            .max(upto.saturating_add(self.limits.window / 2));
    }

    /// A peer's snapshot of every slot below `upto` (the answer to a fetch of slots it no
    /// longer keeps): installed when it covers slots this node has not applied (R7). The
    /// acceptor's entries below `upto` go with it (they are chosen: a snapshot covers
    /// only chosen slots). Returns whether it was installed.
    pub(crate) fn handle_snapshot(
        &mut self,
        lease: &LeaseName,
        upto: Slot,
        data: Arc<[u8]>,
        acceptor: &mut LogAcceptor,
        fx: &mut Effects,
    ) -> Result<bool, Dropped> {
        if data.len() > self.limits.max_snapshot_len {
            return Err(Dropped::TooLarge);
        }
        if upto <= self.applied {
            return Ok(false);
        }
        acceptor.cover(lease, upto, data.clone(), &mut fx.records);
        self.applied = upto;
        self.pending = self.pending.split_off(&upto);
        self.kept.clear();
        self.commit = self.commit.max(upto);
        self.hint_at = upto.saturating_add(self.limits.window / 2);
        fx.events.push(LogEvent::InstallSnapshot { upto, data });
        self.deliver(fx);
        Ok(true)
    }

    /// `slot` is chosen with `value` (the proposer saw a majority, or a peer answered a
    /// fetch): delivered when every slot before it is.
    pub(crate) fn learn(&mut self, slot: Slot, value: Value, fx: &mut Effects) {
        if slot == self.applied && self.pending.is_empty() {
            // The common case, in order: deliver at once.
            self.commit = self.commit.max(slot + 1);
            self.deliver_one(value, fx);
            return;
        }
        if slot >= self.applied && slot < self.applied.saturating_add(self.limits.window) {
            self.pending.entry(slot).or_insert(value);
        }
        self.commit = self.commit.max(
            slot.saturating_add(1)
                .min(self.applied + self.limits.window),
        );
        self.deliver(fx);
    }

    fn deliver(&mut self, fx: &mut Effects) {
        while let Some(value) = self.pending.remove(&self.applied) {
            self.deliver_one(value, fx);
        }
    }

    /// Delivers `value` as the next slot, and keeps it for fetches.
    fn deliver_one(&mut self, value: Value, fx: &mut Effects) {
        let slot = self.applied;
        self.kept.push_back(value.clone());
        fx.events.push(LogEvent::Chosen { slot, value });
        self.applied += 1;
        if self.applied >= self.hint_at {
            self.hint_at = self.applied.saturating_add(self.limits.window / 2);
            fx.events.push(LogEvent::SnapshotNeeded {
                applied: self.applied,
            });
        }
    }

    /// The master `from` says every slot below `commit` is chosen under `ballot`: the
    /// acceptor's entries accepted under that very ballot are the chosen values (a
    /// ballot proposes one value per slot); the rest is fetched from the master.
    pub(crate) fn handle_commit(
        &mut self,
        now: Timestamp,
        from: NodeId,
        ballot: LogBallot,
        commit: Slot,
        acceptor: &LogAcceptor,
        fx: &mut Effects,
    ) {
        let commit = commit.min(self.applied.saturating_add(self.limits.window));
        self.commit = self.commit.max(commit);
        // Unsafe `apply-unchosen`: whatever was accepted below the commit counts.
        let any = self.rules.breaks(UnsafeRule::ApplyUnchosen);
        // In order with nothing pending (the common case): deliver straight away.
        while self.applied < commit && self.pending.is_empty() {
            match acceptor.entry(self.applied) {
                Some((b, value)) if *b == ballot || any => self.deliver_one(value.clone(), fx),
                _ => break,
            }
        }
        if self.applied < commit {
            for (slot, (b, value)) in acceptor.entries(self.applied..commit) {
                if (*b == ballot || any)
                    && let Entry::Vacant(vacant) = self.pending.entry(slot)
                {
                    vacant.insert(value.clone());
                }
            }
            self.deliver(fx);
        }
        self.fetch_missing(now, from, fx);
    }

    /// Asks `from` for the chosen slots this node misses, at most once per
    /// retransmission interval.
    fn fetch_missing(&mut self, now: Timestamp, from: NodeId, fx: &mut Effects) {
        if self.applied >= self.commit || now < self.next_fetch {
            return;
        }
        self.next_fetch = now + self.retransmit;
        let span = u64::try_from(self.limits.max_entries).unwrap_or(u64::MAX);
        let to = self.commit.min(self.applied.saturating_add(span));
        fx.sends.push((
            To::Node(from),
            LogMessage::Fetch {
                from: self.applied,
                to,
            },
        ));
    }

    /// A peer asks for chosen values: the consecutive ones this node kept from `from`, or
    /// its snapshot when one covers `from` (R7).
    pub(crate) fn handle_fetch(
        &self,
        from_node: NodeId,
        from: Slot,
        to: Slot,
        acceptor: &LogAcceptor,
        fx: &mut Effects,
    ) {
        if from < acceptor.snapshot()
            && let Some(data) = acceptor.snapshot_data()
        {
            fx.sends.push((
                To::Node(from_node),
                LogMessage::Snapshot {
                    upto: acceptor.snapshot(),
                    data: data.clone(),
                },
            ));
            return;
        }
        let to = to.min(from.saturating_add(u64::try_from(self.limits.max_entries).unwrap_or(0)));
        if to <= from {
            return;
        }
        let mut values = Vec::new();
        let first = self.applied - self.kept.len() as Slot;
        if from >= first {
            let (a, b) = (from - first, to.min(self.applied) - first);
            if let (Ok(a), Ok(b)) = (usize::try_from(a), usize::try_from(b))
                && a < b
            {
                let take = self
                    .limits
                    .take(self.kept.range(a..b).map(|v| v.bytes().len()));
                values.extend(self.kept.range(a..a + take).cloned());
            }
        }
        if !values.is_empty() {
            fx.sends.push((
                To::Node(from_node),
                LogMessage::Chosen {
                    first: from,
                    values,
                },
            ));
        }
    }

    /// The answer to a fetch.
    /// Chosen values from `from` (the answer to a fetch): learned, and if they moved this
    /// node on and more is missing, the next part is asked for at once (a replica far
    /// behind catches up at the speed of round trips, not of retransmissions).
    pub(crate) fn handle_chosen(
        &mut self,
        now: Timestamp,
        from: NodeId,
        first: Slot,
        values: Vec<Value>,
        fx: &mut Effects,
    ) {
        if values.len() > self.limits.max_entries {
            return;
        }
        let before = self.applied;
        for (slot, value) in (first..).zip(values) {
            self.learn(slot, value, fx);
        }
        self.fetch_more(now, from, before, fx);
    }

    /// After progress from `before`, asks `from` for what is still missing, now.
    pub(crate) fn fetch_more(
        &mut self,
        now: Timestamp,
        from: NodeId,
        before: Slot,
        fx: &mut Effects,
    ) {
        if self.applied > before {
            self.next_fetch = now;
            self.fetch_missing(now, from, fx);
        }
    }
}
