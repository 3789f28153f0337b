//! The replicated log and `ask` in the checker ([`CheckConfig::log`](super::CheckConfig)):
//! each host's storage (what a sync made durable survives a crash, what is written and
//! not synced yet does not), each host's application (the slots it applied, as the
//! simulator's `replica.rs` keeps it), the client steps (append on the master, `ask`,
//! compaction) and the log's properties, as the simulator checks them:
//! - no two different values chosen for one slot, and every replica delivers the slots in
//!   order from its start, once each;
//! - every acknowledged append is the value chosen at the slot it was acknowledged at;
//! - a snapshot, installed from a peer or restored from the disk, holds exactly the chosen
//!   prefix it claims;
//! - a lease read sees every append acknowledged before it: checked at every state, for
//!   every host whose node says a read may be served there (`Node::is_ready`);
//! - `ask`'s properties (`ask.rs`).

use std::sync::Arc;

use crate::durable::Record;
use crate::log::{LogEvent, Slot, Value};
use crate::node::Node;
use crate::sim::chosen::{App, Chosen, snapshot_violation};

use super::CheckConfig;
use super::ask::AskWorld;
use super::world::{Action, Context, World};

/// One host's disk and application.
#[derive(Debug, Clone, Hash)]
pub(super) struct Store {
    /// Synced: survives a crash.
    disk: Vec<Record>,
    /// Written, not synced yet (by persist token): a crash loses it.
    unsynced: Vec<(u64, Vec<Record>)>,
    /// What the host's application applied in its current life.
    app: App,
}

/// The log's part of a state: storage, applications, what was chosen and acknowledged,
/// and the client steps left.
#[derive(Debug, Clone, Hash)]
pub(super) struct LogWorld {
    stores: Vec<Store>,
    /// Every slot some replica delivered, with its value.
    chosen: Chosen,
    /// Appends in flight: (host, its restarts, slot, value).
    pending: Vec<(usize, u32, Slot, Value)>,
    /// The highest slot acknowledged so far, and by which host.
    acked_upto: Option<(Slot, usize)>,
    /// `ask`, `get` and `forget`.
    pub(super) ask: AskWorld,
    /// Client values are numbered so that every one differs.
    pub(super) next_value: u32,
    appends: u8,
    compactions: u8,
}

impl LogWorld {
    pub(super) fn new(hosts: usize, cfg: &CheckConfig) -> LogWorld {
        LogWorld {
            stores: vec![
                Store {
                    disk: Vec::new(),
                    unsynced: Vec::new(),
                    app: App::EMPTY,
                };
                hosts
            ],
            chosen: Chosen::default(),
            pending: Vec::new(),
            acked_upto: None,
            ask: AskWorld::new(cfg.asks, cfg.gets, cfg.forgets),
            next_value: 0,
            appends: cfg.appends,
            compactions: cfg.compactions,
        }
    }
}

impl Context {
    /// The log's steps possible in `world`.
    pub(super) fn log_enabled(&self, world: &World, actions: &mut Vec<Action>) {
        let Some(log) = world.log.as_deref() else {
            return;
        };
        for (h, node) in world.nodes.iter().enumerate() {
            let Some(node) = node else {
                continue;
            };
            let store = &log.stores[h];
            if !store.unsynced.is_empty() {
                actions.push(Action::Sync(h));
            }
            let local = self.local(world, h);
            if log.appends > 0 && node.is_master(local, &self.lease) {
                actions.push(Action::Append(h));
            }
            log.ask.enabled(h, actions);
            let covered = node.log_snapshot(&self.lease).map_or(0, |(upto, _)| upto);
            if log.compactions > 0 && store.app.next > covered {
                actions.push(Action::Compact(h));
            }
        }
    }

    /// Takes one of the log's steps.
    pub(super) fn log_apply(&self, world: &mut World, action: &Action) {
        let h = match *action {
            Action::Sync(h) | Action::Append(h) | Action::Compact(h) => h,
            Action::Ask(_) | Action::Get(_) | Action::Forget(_) => {
                return self.ask_apply(world, action);
            }
            _ => return,
        };
        match *action {
            Action::Sync(h) => self.sync(world, h),
            Action::Append(h) => {
                let restarts = world.restarts[h];
                let next = world.log.as_deref().map_or(0, |l| l.next_value) + 1;
                let value = format!("v{next}");
                let local = self.local(world, h);
                let lease = self.lease.clone();
                let result = self
                    .node_mut(world, h)
                    .map(|node| node.append(local, &lease, value.as_bytes()));
                if self.tracing {
                    world
                        .notes
                        .push(format!("  node {} appends {value}: {result:?}", h + 1));
                }
                // Refused: nothing happened but the client's attempt, which costs nothing.
                if let Some(Ok(slot)) = result {
                    self.with_log(world, |l| {
                        l.appends -= 1;
                        l.next_value = next;
                        let entry = (h, restarts, slot, Value::Data(value.as_bytes().into()));
                        let at = l
                            .pending
                            .partition_point(|p| (p.0, p.1, p.2) < (h, restarts, slot));
                        l.pending.insert(at, entry);
                    });
                }
            }
            Action::Compact(h) => {
                let app = self.with_log(world, |l| {
                    l.compactions -= 1;
                    l.stores[h].app
                });
                let local = self.local(world, h);
                let lease = self.lease.clone();
                let result = self
                    .node_mut(world, h)
                    .map(|node| node.compact_log(local, &lease, app.next, app.snapshot()));
                if let Some(Err(e)) = result {
                    world.violation.get_or_insert(format!(
                        "node {} refused a snapshot of what it applied: {e}",
                        h + 1
                    ));
                }
            }
            _ => {}
        }
        self.pump(world, h);
    }

    pub(super) fn with_log<T>(&self, world: &mut World, f: impl FnOnce(&mut LogWorld) -> T) -> T {
        let log = world.log.as_mut().expect("the log is on");
        f(Arc::make_mut(log))
    }

    /// Syncs everything `host` wrote: onto its disk, and its node hears so.
    pub(super) fn sync(&self, world: &mut World, host: usize) {
        let Some(token) = self.with_log(world, |l| {
            let store = &mut l.stores[host];
            let token = store.unsynced.last().map(|(t, _)| *t)?;
            for (_, records) in std::mem::take(&mut store.unsynced) {
                store.disk.extend(records);
            }
            Some(token)
        }) else {
            return;
        };
        let local = self.local(world, host);
        if let Some(node) = self.node_mut(world, host) {
            node.handle_persisted(local, token);
        }
    }

    /// Takes `node`'s writes (not synced yet). Returns whether there were any.
    pub(super) fn take_writes(
        &self,
        log: &mut Arc<LogWorld>,
        host: usize,
        node: &mut Node,
    ) -> bool {
        let mut any = false;
        while let Some(req) = node.poll_persist() {
            Arc::make_mut(log).stores[host]
                .unsynced
                .push((req.token, req.records));
            any = true;
        }
        any
    }

    /// A crash loses what was written and not synced (`forgetful-acceptor`: the disk
    /// too), and the appends in flight on that host will never be acknowledged.
    pub(super) fn log_crash(&self, world: &mut World, host: usize) {
        let forgetful = self.cfg.unsafe_is("forgetful-acceptor");
        if world.log.is_none() {
            return;
        }
        self.with_log(world, |l| {
            let store = &mut l.stores[host];
            store.unsynced.clear();
            if forgetful {
                store.disk.clear();
            }
            store.app = App::EMPTY;
            l.pending.retain(|p| p.0 != host);
            l.ask.crash(host);
        });
    }

    /// A node starts: it gets its disk back and keeps a log for the lease; its
    /// application restores the snapshot on the disk, if any.
    pub(super) fn log_start(&self, world: &mut World, host: usize, node: &mut Node) {
        let Some(log) = world.log.as_deref() else {
            return;
        };
        node.restore(log.stores[host].disk.clone());
        if let Err(e) = node.enable_log(&self.lease) {
            world
                .violation
                .get_or_insert(format!("node {} cannot keep a log: {e}", host + 1));
        }
        if let Some((upto, data)) = node.log_snapshot(&self.lease) {
            self.install(world, host, upto, &data, "restored");
        }
    }

    /// `host`'s application takes a snapshot claiming the slots below `upto`: it must
    /// hold exactly the chosen prefix of that length.
    fn install(&self, world: &mut World, host: usize, upto: Slot, data: &[u8], how: &str) {
        let app = App::from_snapshot(data);
        let violation = self.with_log(world, |l| {
            let violation = snapshot_violation(app, upto, |n| l.chosen.prefix_hash(n), host, how);
            if let Some(app) = app {
                l.stores[host].app = app;
            }
            violation
        });
        if self.tracing {
            world.notes.push(format!(
                "  node {} {how} a snapshot of {upto} slots",
                host + 1
            ));
        }
        if let Some(v) = violation {
            world.violation.get_or_insert(v);
        }
    }

    /// The log's properties on one event of `host`.
    pub(super) fn log_event(&self, world: &mut World, host: usize, event: &LogEvent) {
        let restarts = world.restarts[host];
        let mut note = None;
        let violation = match event {
            LogEvent::Chosen { slot, value } => {
                note = Some(format!(
                    "  node {} applies slot {slot}: {value:?}",
                    host + 1
                ));
                self.with_log(world, |l| {
                    l.chosen
                        .deliver(&mut l.stores[host].app, host, *slot, value)
                })
            }
            LogEvent::InstallSnapshot { upto, data } => {
                self.install(world, host, *upto, data, "installed");
                None
            }
            LogEvent::Appended { slot } => self.with_log(world, |l| {
                let at = l
                    .pending
                    .iter()
                    .position(|p| (p.0, p.1, p.2) == (host, restarts, *slot))?;
                let (.., value) = l.pending.remove(at);
                if l.acked_upto.is_none_or(|(s, _)| *slot > s) {
                    l.acked_upto = Some((*slot, host));
                }
                note = Some(format!("  node {} acknowledges slot {slot}", host + 1));
                (l.chosen.get(slot) != Some(&value)).then(|| {
                    format!(
                        "node {} acknowledged {value:?} at slot {slot}, but {:?} is chosen",
                        host + 1,
                        l.chosen.get(slot)
                    )
                })
            }),
            LogEvent::AppendFailed { slot, .. } => {
                self.with_log(world, |l| {
                    l.pending
                        .retain(|p| (p.0, p.1, p.2) != (host, restarts, *slot));
                });
                None
            }
            LogEvent::Ready { chosen } => {
                note = Some(format!(
                    "  node {} log ready, slots below {chosen} chosen",
                    host + 1
                ));
                None
            }
            LogEvent::SnapshotNeeded { .. } => None,
        };
        if self.tracing
            && let Some(n) = note
        {
            world.notes.push(n);
        }
        if let Some(v) = violation {
            world.violation.get_or_insert(v);
        }
    }

    /// R6: a read served now on any host that may serve one sees every append
    /// acknowledged so far.
    pub(super) fn check_reads(&self, world: &mut World) {
        let Some(log) = world.log.as_deref() else {
            return;
        };
        let Some((slot, by)) = log.acked_upto else {
            return;
        };
        for (h, node) in world.nodes.iter().enumerate() {
            let Some(node) = node else {
                continue;
            };
            let applied = log.stores[h].app.next;
            if applied <= slot && node.is_ready(self.local(world, h), &self.lease) {
                let v = format!(
                    "node {} would read a state of {applied} slots, but node {} acknowledged slot {slot} before",
                    h + 1,
                    by + 1
                );
                world.violation.get_or_insert(v);
                return;
            }
        }
    }
}
