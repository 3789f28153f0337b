//! The replicated log and `ask` in the simulation ([`super::SimConfig::log`]): durable
//! storage per host (kept across crashes; a write not yet synced when the host crashes is
//! lost; a sync takes 50 µs to 5 ms, sometimes up to 50 ms), a client workload (the master appends, everyone asks, gets and now and then
//! forgets), and the checks on what was chosen:
//! - no two different values chosen for one slot, and every replica delivers the slots in
//!   order from its start, once each;
//! - every acknowledged append is the value chosen at the slot it was acknowledged at;
//! - a snapshot (each host compacts now and then, R7) holds exactly the chosen prefix it
//!   claims, whether installed from a peer or restored from the disk;
//! - a lease read (R6) sees every append acknowledged before it started;
//! - `ask` answers agree per key and instance;
//! - after healing, an append is acknowledged again within the liveness bound.

use std::collections::HashMap;

use crate::ask::{AskEvent, AskValue, Instance};
use crate::durable::Record;
use crate::id::LeaseName;
use crate::log::{LogEvent, Slot, Value};
use crate::node::Node;
use crate::rng::Rng;

use super::Sim;
use super::checker::ms;
use super::chosen::{App, Chosen, mix, snapshot_violation};
use super::queue::Ev;

/// One host's storage.
#[derive(Debug, Default)]
pub(super) struct Storage {
    /// Synced: survives a crash.
    pub(super) disk: Vec<Record>,
    /// Written, not synced yet: lost by a crash.
    pub(super) unsynced: Vec<(u64, Vec<Record>)>,
    /// A sync is under way: writes made meanwhile wait for the next one, which covers
    /// them all (group commit, one sync at a time, as a real disk does).
    pub(super) syncing: bool,
}

/// Every host's application, in its current epoch (a restart starts a new one).
#[derive(Debug, Default)]
struct Apps(Vec<Option<(u64, App)>>);

impl Apps {
    /// `host`'s application in `epoch`, empty if it has none yet.
    fn get(&mut self, host: usize, epoch: u64) -> &mut App {
        if self.0.len() <= host {
            self.0.resize(host + 1, None);
        }
        let slot = &mut self.0[host];
        if slot.is_none_or(|(e, _)| e != epoch) {
            *slot = Some((epoch, App::EMPTY));
        }
        &mut slot.get_or_insert((epoch, App::EMPTY)).1
    }

    fn peek(&self, host: usize, epoch: u64) -> Option<App> {
        match self.0.get(host) {
            Some(Some((e, app))) if *e == epoch => Some(*app),
            _ => None,
        }
    }
}

/// The workload and the log's checks of one run.
#[derive(Debug)]
pub(super) struct Replicated {
    rng: Rng,
    next_value: u64,
    /// Appends in flight: (host, epoch, slot) → value.
    pending: HashMap<(usize, u64, Slot), Value>,
    /// Every slot chosen so far.
    chosen: Chosen,
    /// Per (host, epoch): what its application holds.
    apps: Apps,
    /// `prefix[i]`: the application state after the first `i` chosen slots.
    prefix: Vec<u64>,
    pub(super) installs: u64,
    /// Per instance: the value it was answered with, and when it first was.
    asks: HashMap<(LeaseName, Instance), (AskValue, u64)>,
    /// When (simulated time) each (host, epoch, key)'s oldest unanswered ask or get began.
    asking: HashMap<(usize, u64, LeaseName), u64>,
    /// Per key: when each completed forget completed, and the instance it closed.
    forgotten: HashMap<LeaseName, Vec<(u64, Instance)>>,
    keys: Vec<LeaseName>,
    pub(super) acks: u64,
    pub(super) first_ack_after_heal: Option<u64>,
    /// The highest slot acknowledged so far, and by whom.
    acked_upto: Option<(Slot, usize)>,
    pub(super) reads: u64,
}

impl Replicated {
    pub(super) fn new(seed: u64) -> Replicated {
        Replicated {
            rng: Rng::new(seed ^ 0x10C0_FFEE),
            next_value: 0,
            pending: HashMap::new(),
            chosen: Chosen::default(),
            apps: Apps::default(),
            prefix: vec![App::EMPTY.hash],
            installs: 0,
            asks: HashMap::new(),
            asking: HashMap::new(),
            forgotten: HashMap::new(),
            keys: (0..3)
                .map(|i| LeaseName::new(format!("key-{i}")).expect("static keys are valid"))
                .collect(),
            acks: 0,
            first_ack_after_heal: None,
            acked_upto: None,
            reads: 0,
        }
    }
}

impl Replicated {
    /// The application state after the first `upto` chosen slots, or the first slot in it
    /// no replica delivered.
    fn prefix_hash(&mut self, upto: Slot) -> Result<u64, Slot> {
        let upto = usize::try_from(upto).map_err(|_| upto)?;
        while self.prefix.len() <= upto {
            let slot = (self.prefix.len() - 1) as Slot;
            let value = self.chosen.get(&slot).ok_or(slot)?;
            let last = self.prefix[self.prefix.len() - 1];
            self.prefix.push(mix(last, value));
        }
        Ok(self.prefix[upto])
    }
}

impl Sim<'_> {
    /// The lease whose log the workload uses (the first; the others stay lease-only).
    fn log_lease(&self) -> LeaseName {
        self.leases[0].clone()
    }

    /// A node starts: it gets its disk back and keeps a log for the first lease.
    pub(super) fn start_replica(&mut self, host: usize, node: &mut Node) {
        if self.replica.is_none() {
            return;
        }
        node.restore(self.hosts[host].storage.disk.clone());
        let lease = self.log_lease();
        if self.hosts[host].voter
            && let Err(e) = node.enable_log(&lease)
        {
            self.checker
                .violations
                .push(format!("node {} cannot keep a log: {e}", host + 1));
        }
        // The application restores its state from the snapshot on the disk, if any.
        if let Some((upto, data)) = node.log_snapshot(&lease) {
            // `start` raises the epoch after this.
            let epoch = self.hosts[host].epoch + 1;
            self.install(host, epoch, upto, &data, "restored");
        }
    }

    /// `host`'s application takes a snapshot claiming the slots below `upto`: it must hold
    /// exactly the chosen prefix of that length.
    fn install(&mut self, host: usize, epoch: u64, upto: Slot, data: &[u8], how: &str) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        if how == "installed" {
            r.installs += 1;
        }
        let app = App::from_snapshot(data);
        let violation = snapshot_violation(app, upto, |n| r.prefix_hash(n), host, how);
        if let Some(app) = app {
            *r.apps.get(host, epoch) = app;
        }
        if let Some(v) = violation {
            self.note(|| format!("VIOLATION {v}"));
            self.checker.violations.push(v);
        }
    }

    /// A crash loses what was written and not synced.
    pub(super) fn crash_replica(&mut self, host: usize) {
        self.hosts[host].storage.unsynced.clear();
        self.hosts[host].storage.syncing = false;
        // Unsafe `forgetful-acceptor`: the disk is lost too, and the node comes back as
        // if it had never answered.
        if self.cfg.unsafe_is("forgetful-acceptor") {
            self.hosts[host].storage.disk.clear();
        }
    }

    /// The first client requests, one per host.
    pub(super) fn start_workload(&mut self) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let first: Vec<u64> = (0..self.hosts.len())
            .map(|_| 5_000_000 + r.rng.below(50_000_000))
            .collect();
        for (host, at) in first.into_iter().enumerate() {
            self.push(at, Ev::Client { host });
        }
    }

    /// A client request on `host`: the master appends; anyone asks, gets or forgets.
    pub(super) fn client(&mut self, host: usize) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let next = self.now + 10_000_000 + r.rng.below(40_000_000);
        let roll = r.rng.below(100);
        let compact = r.rng.chance(0.05);
        let key = r.keys[r.rng.below(r.keys.len() as u64) as usize].clone();
        r.next_value += 1;
        let text = format!("h{}.{}", host + 1, r.next_value);
        self.push(next, Ev::Client { host });
        let h = &self.hosts[host];
        if h.paused || h.node.is_none() || !h.voter {
            return;
        }
        let local = h.clock.local(self.now);
        let epoch = h.epoch;
        let lease = self.log_lease();
        if compact {
            self.compact(host, local);
        }
        let Some(node) = self.node_mut(host) else {
            return;
        };
        if roll < 10 {
            // R6: a lease read, answered only where the node says it may be.
            if node.is_ready(local, &lease) {
                self.lease_read(host);
            }
        } else if roll < 70 {
            if node.is_master(local, &lease) {
                let result = node.append(local, &lease, text.as_bytes());
                if let Ok(slot) = result
                    && let Some(r) = self.replica.as_mut()
                {
                    r.pending
                        .insert((host, epoch, slot), Value::Data(text.as_bytes().into()));
                }
                self.note(|| format!("node {} appends {text}: {result:?}", host + 1));
            }
        } else if roll < 98 {
            if roll < 90 {
                node.ask(local, &key, text.as_bytes());
            } else {
                node.get(local, &key);
            }
            let now = self.now;
            if let Some(r) = self.replica.as_mut() {
                r.asking.entry((host, epoch, key)).or_insert(now);
            }
        } else {
            node.forget(local, &key);
        }
        self.report.steps += 1;
        self.pump(host);
    }

    /// R7: `host`'s application snapshots its state and lets the log cut what it covers.
    fn compact(&mut self, host: usize, local: crate::time::Timestamp) {
        let epoch = self.hosts[host].epoch;
        let lease = self.log_lease();
        let Some(app) = self.replica.as_ref().and_then(|r| r.apps.peek(host, epoch)) else {
            return;
        };
        let Some(node) = self.node_mut(host) else {
            return;
        };
        let result = node.compact_log(local, &lease, app.next, app.snapshot());
        if let Err(e) = result {
            let v = format!(
                "node {} refused a snapshot of what it applied: {e}",
                host + 1
            );
            self.checker.violations.push(v);
        }
        self.note(|| format!("node {} compacts below {}: {result:?}", host + 1, app.next));
        // Now and then the storage rewrites itself to the node's checkpoint: every request
        // written so far (synced or not) is covered by it, and what comes later follows it.
        let rewrite = self.replica.as_mut().is_some_and(|r| r.rng.chance(0.5));
        if rewrite {
            self.take_writes(host);
            let h = &mut self.hosts[host];
            if let Some(node) = h.node.as_ref() {
                h.storage.disk = node.checkpoint();
                h.storage.unsynced.clear();
            }
        }
    }

    /// Takes the node's writes: written now, synced a little later.
    pub(super) fn take_writes(&mut self, host: usize) {
        if self.replica.is_none() {
            return;
        }
        let h = &mut self.hosts[host];
        let Some(node) = h.node.as_mut() else {
            return;
        };
        while let Some(req) = node.poll_persist() {
            h.storage.unsynced.push((req.token, req.records));
        }
        if !h.storage.syncing {
            self.start_sync(host);
        }
    }

    /// Syncs everything written so far on `host`: 50 µs to 5 ms, and now and then (a busy
    /// disk) up to 50 ms.
    fn start_sync(&mut self, host: usize) {
        let Some(&(token, _)) = self.hosts[host].storage.unsynced.last() else {
            self.hosts[host].storage.syncing = false;
            return;
        };
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let delay = if r.rng.chance(0.1) {
            50_000 + r.rng.below(50_000_000)
        } else {
            50_000 + r.rng.below(5_000_000)
        };
        let epoch = self.hosts[host].epoch;
        self.hosts[host].storage.syncing = true;
        self.push(self.now + delay, Ev::Synced { host, epoch, token });
    }

    /// A write of `host` is synced: onto the disk, and the node hears so.
    pub(super) fn synced(&mut self, host: usize, epoch: u64, token: u64) {
        let h = &mut self.hosts[host];
        if h.epoch != epoch || h.node.is_none() {
            return;
        }
        if h.paused {
            // The process is frozen: it learns of the sync when it resumes.
            self.push(self.now + 1_000_000, Ev::Synced { host, epoch, token });
            return;
        }
        let done: Vec<(u64, Vec<Record>)> = {
            let (done, rest) = std::mem::take(&mut h.storage.unsynced)
                .into_iter()
                .partition(|(t, _)| *t <= token);
            h.storage.unsynced = rest;
            done
        };
        for (_, records) in done {
            h.storage.disk.extend(records);
        }
        let local = h.clock.local(self.now);
        if let Some(node) = self.node_mut(host) {
            node.handle_persisted(local, token);
        }
        self.report.steps += 1;
        self.pump(host);
        // What was written during this sync goes in the next one.
        if self.hosts[host].epoch == epoch {
            self.start_sync(host);
        }
    }

    /// Checks one log event of `host`.
    pub(super) fn log_event(&mut self, host: usize, event: &LogEvent) {
        let epoch = self.hosts[host].epoch;
        let (now, healed, heal_at) = (self.now, self.healed, self.heal_at);
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let mut violation = None;
        match event {
            LogEvent::Chosen { slot, value } => {
                violation = r
                    .chosen
                    .deliver(r.apps.get(host, epoch), host, *slot, value);
            }
            LogEvent::InstallSnapshot { upto, data } => {
                let (upto, data) = (*upto, data.clone());
                self.install(host, epoch, upto, &data, "installed");
                return;
            }
            LogEvent::SnapshotNeeded { .. } => {}
            LogEvent::Appended { slot } => {
                if let Some(value) = r.pending.remove(&(host, epoch, *slot)) {
                    if r.chosen.get(slot) != Some(&value) {
                        violation = Some(format!(
                            "node {} acknowledged {value:?} at slot {slot}, but {:?} is chosen",
                            host + 1,
                            r.chosen.get(slot)
                        ));
                    }
                    r.acks += 1;
                    if r.acked_upto.is_none_or(|(s, _)| *slot > s) {
                        r.acked_upto = Some((*slot, host));
                    }
                    if healed && now >= heal_at && r.first_ack_after_heal.is_none() {
                        r.first_ack_after_heal = Some(now);
                    }
                }
            }
            LogEvent::AppendFailed { slot, .. } => {
                r.pending.remove(&(host, epoch, *slot));
            }
            LogEvent::Ready { chosen } => {
                let chosen = *chosen;
                self.note(|| format!("node {} log ready, slots below {chosen} chosen", host + 1));
            }
        }
        if let Some(v) = violation {
            self.note(|| format!("VIOLATION {v}"));
            self.checker.violations.push(v);
        }
    }

    /// A read on `host` sees its application's state: it must include every append
    /// acknowledged before it (linearizable lease reads, R6).
    fn lease_read(&mut self, host: usize) {
        let epoch = self.hosts[host].epoch;
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        r.reads += 1;
        let applied = r.apps.peek(host, epoch).map_or(0, |a| a.next);
        if let Some((slot, by)) = r.acked_upto
            && applied <= slot
        {
            let v = format!(
                "node {} read a state of {applied} slots, but node {} acknowledged slot {slot} before",
                host + 1,
                by + 1
            );
            self.note(|| format!("VIOLATION {v}"));
            self.checker.violations.push(v);
        }
    }

    /// Checks one `ask` answer of `host`.
    pub(super) fn ask_event(&mut self, host: usize, event: &AskEvent) {
        let (now, epoch) = (self.now, self.hosts[host].epoch);
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        // R8 is linearizable: an answer is for an instance no forget had closed when the
        // request began (a forget completed before it would have moved it on). The
        // workload calls while a request is in flight too, and those calls join it
        // (`Node::ask`): the check is against the request's first call.
        let answered = match event {
            AskEvent::Decided { key, instance, .. } | AskEvent::Undecided { key, instance } => {
                Some((key, *instance))
            }
            AskEvent::Forgotten { key, instance } => {
                r.forgotten
                    .entry(key.clone())
                    .or_default()
                    .push((now, *instance));
                None
            }
        };
        let began = answered.and_then(|(key, _)| r.asking.remove(&(host, epoch, key.clone())));
        if let Some((key, instance)) = answered
            && let Some(began) = began
        {
            let closed = r.forgotten.get(key).and_then(|f| {
                f.iter()
                    .find(|&&(at, closed)| at < began && closed >= instance)
            });
            // A decision is permanent: a request that began after an answer for the
            // instance is not told nothing was chosen there.
            let decided = matches!(event, AskEvent::Undecided { .. })
                .then(|| r.asks.get(&(key.clone(), instance)))
                .flatten()
                .filter(|&&(_, at)| at < began);
            let v = if let Some(&(at, _)) = closed {
                Some(format!(
                    "answer from a closed instance: node {} was answered {key} instance {instance}, which a forget closed at {} ms, before it asked at {} ms",
                    host + 1,
                    at / 1_000_000,
                    began / 1_000_000,
                ))
            } else {
                decided.map(|&(_, at)| {
                    format!(
                        "a decision lost: node {} was answered nothing chosen for {key} instance {instance}, answered a value at {} ms, before it asked at {} ms",
                        host + 1,
                        at / 1_000_000,
                        began / 1_000_000,
                    )
                })
            };
            if let Some(v) = v {
                self.note(|| format!("VIOLATION {v}"));
                self.checker.violations.push(v);
            }
        }
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        if let AskEvent::Decided {
            key,
            instance,
            value,
        } = event
        {
            match r.asks.get(&(key.clone(), *instance)) {
                Some((had, _)) if had != value => {
                    let v = format!(
                        "{key} instance {instance}: node {} was answered {value:?}, another {had:?}",
                        host + 1
                    );
                    self.checker.violations.push(v);
                }
                Some(_) => {}
                None => {
                    r.asks
                        .insert((key.clone(), *instance), (value.clone(), now));
                }
            }
        }
    }

    /// After healing, appends must be acknowledged again within `bound` (nanoseconds).
    pub(super) fn log_liveness(&self, bound: u64) -> Option<String> {
        let r = self.replica.as_ref()?;
        match r.first_ack_after_heal {
            Some(at) if at <= self.heal_at + bound => None,
            Some(at) => Some(format!(
                "the log acknowledged again {} after healing, bound {}",
                ms(at - self.heal_at),
                ms(bound)
            )),
            None => Some("the log acknowledged no append after healing".into()),
        }
    }
}
