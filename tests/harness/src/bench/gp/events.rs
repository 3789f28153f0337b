//! The trial cluster's event lines: every event for the timed trials, or only counts for
//! the scale run.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use gen_paxos_election::{EventLine, LineEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Elected,
    Renewed,
    Surrendered,
    /// A replicated lease's new master has its log ready, with this many entries.
    Ready(u64),
    /// The master this node knows changed (to none: `None`).
    Master(Option<u64>),
}

#[derive(Debug, Clone)]
pub struct Ev {
    pub ts: f64,
    pub node: u64,
    pub kind: Kind,
    pub lease: String,
}

/// Every event of the trial cluster, in arrival order.
#[derive(Debug, Default)]
pub(super) struct Log {
    events: Mutex<Vec<Ev>>,
    changed: Condvar,
}

impl Log {
    pub(super) fn push(&self, ev: Ev) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ev);
        self.changed.notify_all();
    }

    /// The first event matching `pred`, waiting up to `limit`.
    pub(super) fn wait_for(&self, limit: Duration, pred: impl Fn(&Ev) -> bool) -> Option<Ev> {
        let until = Instant::now() + limit;
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(ev) = events.iter().find(|e| pred(e)) {
                return Some(ev.clone());
            }
            let now = Instant::now();
            if now >= until {
                return None;
            }
            events = self
                .changed
                .wait_timeout(events, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub(super) fn count(&self, pred: impl Fn(&Ev) -> bool) -> usize {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|e| pred(e))
            .count()
    }

    pub(super) fn last(&self, pred: impl Fn(&Ev) -> bool) -> Option<Ev> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .rev()
            .find(|e| pred(e))
            .cloned()
    }
}

/// Counters of the scale run, fed by the reader threads.
#[derive(Debug, Default)]
pub struct Counts {
    pub elected: AtomicU64,
    pub renewed: AtomicU64,
    /// Surrendered with reason `expired` or `lost`: a lease the holder did not give up.
    pub lost: AtomicU64,
    pub other_surrenders: AtomicU64,
    pub lines: AtomicU64,
    pub unparsed: AtomicU64,
    acquired: Mutex<HashSet<String>>,
}

impl Counts {
    pub fn acquired(&self) -> usize {
        self.acquired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(super) fn snapshot(&self) -> [u64; 4] {
        [
            self.elected.load(Ordering::Relaxed),
            self.renewed.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed),
            self.other_surrenders.load(Ordering::Relaxed),
        ]
    }
}

#[derive(Debug, Clone)]
pub(super) enum Sink {
    Log(Arc<Log>),
    Count(Arc<Counts>),
}

impl Sink {
    pub(super) fn take(&self, line: &str) {
        match self {
            Sink::Log(log) => match serde_json::from_str::<EventLine>(line) {
                Ok(l) => log.push(Ev {
                    ts: l.ts_ms,
                    node: l.node,
                    lease: l.event.lease().to_string(),
                    kind: match l.event {
                        LineEvent::Elected { .. } => Kind::Elected,
                        LineEvent::Renewed { .. } => Kind::Renewed,
                        LineEvent::Surrendered { .. } => Kind::Surrendered,
                        LineEvent::Ready { entries, .. } => Kind::Ready(entries),
                        LineEvent::Master { master, .. } => Kind::Master(master),
                    },
                }),
                Err(_) => eprintln!("bench: not an event line: {line}"),
            },
            Sink::Count(c) => {
                c.lines.fetch_add(1, Ordering::Relaxed);
                let Ok(l) = serde_json::from_str::<EventLine>(line) else {
                    c.unparsed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                match l.event {
                    LineEvent::Elected { lease, .. } => {
                        c.elected.fetch_add(1, Ordering::Relaxed);
                        c.acquired
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(lease);
                    }
                    LineEvent::Renewed { .. } => {
                        c.renewed.fetch_add(1, Ordering::Relaxed);
                    }
                    LineEvent::Surrendered { reason, .. } => {
                        if matches!(reason.as_str(), "expired" | "lost") {
                            c.lost.fetch_add(1, Ordering::Relaxed);
                        } else {
                            c.other_surrenders.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    LineEvent::Master { .. } | LineEvent::Ready { .. } => {}
                }
            }
        }
    }
}
