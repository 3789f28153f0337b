//! The node's side of the replicated log and per-key consensus (docs/REPLICATION.md): the
//! commands (append, ask, get, forget), durability in and out (restore, poll_persist,
//! handle_persisted), the routing of their messages, and R1: the lease admits the log's
//! proposer (recovery starts when this node is elected, and the tenure ends with it).

use std::sync::Arc;

use super::Node;
use crate::ask::{AskEffects, AskMessage};
use crate::durable::{PersistRequest, Record};
use crate::error::Error;
use crate::event::Event;
use crate::id::{LeaseName, NodeId};
use crate::log::{AppendError, CompactError, Effects, LogMessage, Slot, To, Value};
use crate::message::{Envelope, Message};
use crate::replication::{MAX_SLOT, Replication};
use crate::time::Timestamp;
use crate::unsafe_rules::UnsafeRule;

impl Node {
    /// Gives the node back the records it asked to make durable before a restart, in the
    /// order they were written. Call once, before any other input.
    pub fn restore(&mut self, records: Vec<Record>) {
        self.replication.restore(&self.setup, records);
    }

    /// Keeps a replicated log for `lease` (R1–R7): while this node holds the lease it
    /// recovers the log, then takes [`Node::append`]s. Every voter is a log acceptor for
    /// any lease on demand; only a voter may propose.
    pub fn enable_log(&mut self, lease: &LeaseName) -> Result<(), Error> {
        if !self.setup.is_voter {
            return Err(Error::ObserverCandidate(self.setup.id));
        }
        if !self.replication.enable(&self.setup, lease) {
            return Err(Error::UnknownLease(lease.clone()));
        }
        self.log_enabled = true;
        Ok(())
    }

    /// R4: appends `value` to `lease`'s log; it is acknowledged with an
    /// [`crate::log::LogEvent::Appended`] event once chosen (or failed). Only the master
    /// whose guard is valid at `now` and whose recovery finished takes appends (R1, R2).
    /// It leaves at once; [`Node::append_batch`] sends many in one message.
    pub fn append(
        &mut self,
        now: Timestamp,
        lease: &LeaseName,
        value: impl Into<Arc<[u8]>>,
    ) -> Result<Slot, AppendError> {
        self.append_batch(now, lease, [value])
            .map(|slots| slots.start)
    }

    /// R4: appends every value, in order, into consecutive slots (returned), or none of
    /// them; each is acknowledged on its own. A runtime that gathers the appends arriving
    /// together and hands them over here sends one Accept (and gets one write per
    /// acceptor) for all of them.
    pub fn append_batch<V: Into<Arc<[u8]>>>(
        &mut self,
        now: Timestamp,
        lease: &LeaseName,
        values: impl IntoIterator<Item = V>,
    ) -> Result<std::ops::Range<Slot>, AppendError> {
        if !self.is_master(now, lease) {
            return Err(AppendError::NotMaster);
        }
        let log = self
            .replication
            .logs
            .get_mut(lease)
            .and_then(|l| l.proposer.as_mut())
            .ok_or(AppendError::NotMaster)?;
        let values = values.into_iter().map(|v| Value::Data(v.into())).collect();
        let slots = log.append_all(values)?;
        self.flush_local(now);
        Ok(slots)
    }

    /// R6: whether a read of `lease`'s log state may be answered here at `now` without a
    /// round trip: this node is master with a valid guard and its recovery finished.
    pub fn is_ready(&self, now: Timestamp, lease: &LeaseName) -> bool {
        // Unsafe `stale-read`: the master answers reads without waiting for recovery.
        if self.setup.rules.breaks(UnsafeRule::StaleRead) {
            return self.is_master(now, lease) && self.replication.logs.contains_key(lease);
        }
        self.is_master(now, lease)
            && self
                .replication
                .logs
                .get(lease)
                .and_then(|l| l.proposer.as_ref())
                .is_some_and(|p| p.is_ready())
    }

    /// How much of `lease`'s log this node applied: every slot below the returned one was
    /// delivered (in [`crate::log::LogEvent::Chosen`] events). A read served under
    /// [`Node::is_ready`] sees exactly this state.
    pub fn log_applied(&self, lease: &LeaseName) -> Option<Slot> {
        self.replication
            .logs
            .get(lease)
            .map(|l| l.learner.applied())
    }

    /// R7: `snapshot` is the application's state after every slot of `lease`'s log below
    /// `upto` (which must be applied here): the entries below it go, and peers that need
    /// them get the snapshot instead. The snapshot is made durable with the node's other
    /// records and given back at restart ([`Node::log_snapshot`]). Returns the slot the
    /// log now starts at.
    pub fn compact_log(
        &mut self,
        now: Timestamp,
        lease: &LeaseName,
        upto: Slot,
        snapshot: impl Into<Arc<[u8]>>,
    ) -> Result<Slot, CompactError> {
        let rules = self.setup.rules;
        let max = self.replication.limits.max_snapshot_len;
        let log = self
            .replication
            .logs
            .get_mut(lease)
            .ok_or(CompactError::NoLog)?;
        let applied = log.learner.applied();
        if upto > applied {
            return Err(CompactError::NotApplied { applied });
        }
        let snapshot: Arc<[u8]> = snapshot.into();
        if snapshot.len() > max {
            return Err(CompactError::TooLarge {
                len: snapshot.len(),
                max,
            });
        }
        // Unsafe `truncate-unchosen`: every entry accepted goes, chosen or not.
        let cut = if rules.breaks(UnsafeRule::TruncateUnchosen) {
            upto.max(log.acceptor.end())
        } else {
            upto
        };
        let mut records = Vec::new();
        log.acceptor.cover(lease, cut, snapshot, &mut records);
        log.learner.compact(upto);
        let start = log.acceptor.snapshot();
        for record in records {
            self.replication.gate.record(record);
        }
        self.flush_local(now);
        Ok(start)
    }

    /// The latest snapshot of `lease`'s log this node holds (taken here or installed from
    /// a peer; after a restart, the one it restored): the slot it covers up to and the
    /// application's state. A runtime restores its state machine from it at start; the
    /// [`crate::log::LogEvent::Chosen`] events that follow continue from that slot.
    pub fn log_snapshot(&self, lease: &LeaseName) -> Option<(Slot, Arc<[u8]>)> {
        let log = self.replication.logs.get(lease)?;
        let data = log.acceptor.snapshot_data()?;
        Some((log.acceptor.snapshot(), data.clone()))
    }

    /// The open instance of `key` and the value this node knows chosen in it: a local
    /// read, with no round trip, that may be stale (use [`Node::get`] for a
    /// linearizable one).
    pub fn ask_local(
        &self,
        key: &LeaseName,
    ) -> (crate::ask::Instance, Option<crate::ask::AskValue>) {
        self.replication.ask_acceptors.local(key)
    }

    /// R8: `ask(key, value)`: the value chosen for the key's open instance comes as an
    /// [`Event::Ask`] (the first proposal to win, for every caller). A call while a request
    /// for the key is in flight joins it, and that answer may rest on replies sent before
    /// the call (missing a `forget` completed since): for a linearizable answer, call only
    /// when none is in flight and call again after the answer, as the runtime does.
    pub fn ask(&mut self, now: Timestamp, key: &LeaseName, value: impl Into<Arc<[u8]>>) {
        let mut fx = AskEffects::default();
        self.replication
            .ask_proposers
            .ask(now, key, Some(value.into()), &mut fx);
        self.apply_ask(fx);
        self.flush_local(now);
    }

    /// R8: `get(key)`: the value chosen for the key's open instance, or undecided (a call
    /// while one is in flight joins it, as with [`Node::ask`]).
    pub fn get(&mut self, now: Timestamp, key: &LeaseName) {
        let mut fx = AskEffects::default();
        self.replication.ask_proposers.ask(now, key, None, &mut fx);
        self.apply_ask(fx);
        self.flush_local(now);
    }

    /// R8: `forget(key)`: closes the key's open instance and opens the next.
    pub fn forget(&mut self, now: Timestamp, key: &LeaseName) {
        let mut fx = AskEffects::default();
        self.replication.ask_proposers.forget(now, key, &mut fx);
        self.apply_ask(fx);
        self.flush_local(now);
    }

    /// A checkpoint of this node's durable log and `ask` state: records that restore the
    /// same state as every record handed out by [`Node::poll_persist`] so far. A storage
    /// that grows replaces what it holds with them (after writing every request polled
    /// before, in order): the disk then stays within a small multiple of the live data.
    /// Take it between inputs, after polling every request.
    pub fn checkpoint(&self) -> Vec<Record> {
        self.replication.checkpoint()
    }

    /// The next records to make durable (R3). Write them in order, then confirm with
    /// [`Node::handle_persisted`]; every log or `ask` message produced after them waits.
    pub fn poll_persist(&mut self) -> Option<PersistRequest> {
        self.replication.gate.poll_persist()
    }

    /// The runtime made request `token`, and every earlier one, durable: what waited for
    /// them is sent. A token never handed out is ignored (and counted).
    pub fn handle_persisted(&mut self, now: Timestamp, token: u64) {
        match self.replication.gate.confirm(token) {
            Ok(released) => {
                for (to, envelope) in released {
                    self.outbox.send(to, envelope);
                }
            }
            Err(_) => self.stats.dropped_invalid += 1,
        }
        self.flush_local(now);
    }

    /// A write failed: this node's durable state is in doubt, so it answers no more as a
    /// log or `ask` acceptor and sends nothing that may depend on it (R3).
    pub fn handle_persist_failed(&mut self, now: Timestamp) {
        self.replication.gate.fail();
        self.flush_local(now);
    }

    // ---- routing --------------------------------------------------------------------------

    /// A log message for `lease` from `from`, after the checks every message passes.
    pub(super) fn dispatch_log(
        &mut self,
        now: Timestamp,
        from: NodeId,
        lease: LeaseName,
        message: LogMessage,
    ) {
        if message
            .ballots()
            .into_iter()
            .flatten()
            .any(Replication::absurd)
        {
            self.stats.dropped_absurd_ballot += 1;
            return;
        }
        if message.highest_slot() > MAX_SLOT {
            self.stats.dropped_invalid += 1;
            return;
        }
        if let LogMessage::Prepare { ballot, .. } | LogMessage::Accept { ballot, .. } = &message {
            if ballot.node != from {
                self.stats.dropped_spoofed += 1;
                return;
            }
            if self.peers.in_conflict() || self.replication.gate.failed() {
                self.stats.dropped_conflicted += 1;
                return;
            }
        }
        let Some(log) = self.replication.log(&self.setup, &lease) else {
            self.stats.dropped_over_capacity += 1;
            return;
        };
        let mut fx = Effects::default();
        if log.handle(now, from, &lease, message, &mut fx).is_err() {
            self.stats.dropped_invalid += 1;
            return;
        }
        self.apply_log(&lease, fx);
    }

    /// An `ask` message about `key` from `from`.
    pub(super) fn dispatch_ask(
        &mut self,
        now: Timestamp,
        from: NodeId,
        key: LeaseName,
        message: AskMessage,
    ) {
        let mut fx = AskEffects::default();
        if *message.key() != key {
            self.stats.dropped_spoofed += 1;
            return;
        }
        if message.for_acceptor() {
            if message
                .proposal()
                .is_some_and(|b| b.node != from || Replication::absurd(b))
            {
                self.stats.dropped_spoofed += 1;
                return;
            }
            if self.peers.in_conflict() || self.replication.gate.failed() {
                self.stats.dropped_conflicted += 1;
                return;
            }
            if self
                .replication
                .ask_acceptors
                .handle(from, message, &mut fx)
                .is_err()
            {
                self.stats.dropped_invalid += 1;
                return;
            }
        } else {
            self.replication
                .ask_proposers
                .handle(now, from, message, &mut fx);
        }
        self.apply_ask(fx);
    }

    // ---- outputs --------------------------------------------------------------------------

    /// Records first (they hold back what follows), then messages through the gate, then
    /// the learner's deliveries of what the proposer saw chosen, then the proposer's events.
    fn apply_log(&mut self, lease: &LeaseName, mut fx: Effects) {
        for record in fx.records.drain(..) {
            self.replication.gate.record(record);
        }
        if !fx.chosen.is_empty()
            && let Some(log) = self.replication.logs.get_mut(lease)
        {
            let mut learned = Effects::default();
            for (slot, value) in fx.chosen.drain(..) {
                log.learner.learn(slot, value, &mut learned);
            }
            fx.events.append(&mut learned.events);
            fx.sends.append(&mut learned.sends);
        }
        let sends = std::mem::take(&mut fx.sends);
        for (to, message) in sends {
            self.send_gated(to, lease, Message::Log(message));
        }
        for event in fx.events.into_iter().chain(fx.acks) {
            self.events.push_back(Event::Log {
                lease: lease.clone(),
                event,
            });
        }
    }

    fn apply_ask(&mut self, fx: AskEffects) {
        for record in fx.records {
            self.replication.gate.record(record);
        }
        for (to, message) in fx.sends {
            let key = message.key().clone();
            self.send_gated(to, &key, Message::Ask(message));
        }
        for event in fx.events {
            self.events.push_back(Event::Ask(event));
        }
    }

    fn send_gated(&mut self, to: To, name: &LeaseName, message: Message) {
        let one;
        let targets: &[NodeId] = match to {
            To::Voters => &self.setup.voters,
            To::Node(n) => {
                one = [n];
                &one
            }
        };
        for &target in targets {
            let envelope = Envelope {
                lease: name.clone(),
                message: message.clone(),
            };
            if let Some((target, envelope)) = self.replication.gate.pass((target, envelope)) {
                self.outbox.send(target, envelope);
            }
        }
    }

    // ---- the lease's side (R1) and timers -------------------------------------------------

    /// After an input: lease events start and end the log's tenures (R1), proposers send
    /// what is new, and the records of the input become one request.
    pub(super) fn replication_after_input(&mut self, now: Timestamp) {
        if !self.log_enabled {
            self.replication.gate.seal();
            return;
        }
        // R1: this input's lease events start and end the log's tenures; a renewal also
        // repeats the commit, so a replica that missed it (restarted, cut off) catches up
        // even when nothing is appended.
        while let Some(event) = self.events.get(self.events_checked) {
            self.events_checked += 1;
            let (lease, tenure) = match event {
                Event::Elected { lease, .. } => (lease.clone(), Some(true)),
                Event::Surrendered { lease, .. } => (lease.clone(), Some(false)),
                Event::Renewed { lease, .. } => (lease.clone(), None),
                _ => continue,
            };
            let Some(log) = self.replication.logs.get_mut(&lease) else {
                continue;
            };
            let from = log.learner.applied();
            let Some(proposer) = log.proposer.as_mut() else {
                continue;
            };
            let mut fx = Effects::default();
            match tenure {
                Some(true) => proposer.start(now, from, &mut fx),
                Some(false) => proposer.stop(&mut fx),
                None => proposer.recommit(),
            }
            self.apply_log(&lease, fx);
        }
        for i in 0..self.replication.proposing.len() {
            let lease = self.replication.proposing[i].clone();
            let idle = self
                .replication
                .logs
                .get(&lease)
                .and_then(|l| l.proposer.as_ref())
                .is_some_and(|p| p.ballot().is_none());
            let restart = idle && self.is_master(now, &lease);
            let mut fx = Effects::default();
            if let Some(log) = self.replication.logs.get_mut(&lease)
                && let Some(p) = log.proposer.as_mut()
            {
                // R1/R2: the lease holder whose tenure a higher log ballot ended (or
                // never began) recovers again, with a counter above what it heard.
                if restart {
                    p.start(now, log.learner.applied(), &mut fx);
                }
                p.flush(&mut fx);
            }
            if !fx.is_empty() {
                self.apply_log(&lease, fx);
            }
        }
        self.replication.gate.seal();
    }

    /// The next retransmission of the log's proposers and learners or of `ask`.
    pub(super) fn replication_timeout(&self) -> Option<Timestamp> {
        let logs = self
            .replication
            .logs
            .values()
            .filter_map(|l| l.proposer.as_ref()?.poll_timeout());
        logs.chain(self.replication.ask_proposers.poll_timeout())
            .min()
    }

    /// Retransmissions due at `now`.
    pub(super) fn handle_replication_timeout(&mut self, now: Timestamp) {
        let names: Vec<LeaseName> = self
            .replication
            .logs
            .iter()
            .filter(|(_, l)| {
                l.proposer
                    .as_ref()
                    .and_then(|p| p.poll_timeout())
                    .is_some_and(|at| at <= now)
            })
            .map(|(n, _)| n.clone())
            .collect();
        for lease in names {
            let mut fx = Effects::default();
            if let Some(p) = self
                .replication
                .logs
                .get_mut(&lease)
                .and_then(|l| l.proposer.as_mut())
            {
                p.handle_timeout(now, &mut fx);
            }
            self.apply_log(&lease, fx);
        }
        if self
            .replication
            .ask_proposers
            .poll_timeout()
            .is_some_and(|at| at <= now)
        {
            let mut fx = AskEffects::default();
            self.replication
                .ask_proposers
                .handle_timeout(now, &mut self.rng, &mut fx);
            self.apply_ask(fx);
        }
    }
}
