//! Per-peer state: the bounded send queue, the connections to the peer, redial backoff,
//! and the bad-frame rule.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gen_paxos_core::NodeId;
use gen_paxos_election::Delivery;
use tokio::sync::Notify;

use crate::config::PeerAddr;

/// One encoded message waiting to go out.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) frame: Bytes,
    pub(crate) delivery: Delivery,
}

/// The connections a node holds to one peer: at most one it dialled and one it accepted,
/// each with the moment it was established.
#[derive(Debug, Default)]
struct Connections {
    dialled: Option<(quinn::Connection, Instant)>,
    accepted: Option<(quinn::Connection, Instant)>,
}

/// Everything the transport keeps about one configured peer.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) id: NodeId,
    /// Where it listens (a name is resolved at every dial).
    pub(crate) addr: PeerAddr,
    /// The address it last resolved to, if any.
    resolved: Mutex<Option<SocketAddr>>,
    local: NodeId,
    /// Two connections established within this of each other are a simultaneous dial.
    race_window: Duration,
    queue: Mutex<VecDeque<Outgoing>>,
    capacity: usize,
    /// Wakes the peer's driver: a message was queued, or the state changed.
    pub(crate) wake: Notify,
    /// Wakes a driver waiting out a backoff: the peer dialled us.
    pub(crate) connected: Notify,
    connections: Mutex<Connections>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data under these locks stays consistent at every step, so a panic elsewhere
    // while holding one leaves nothing to repair.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn live(entry: &(quinn::Connection, Instant)) -> bool {
    entry.0.close_reason().is_none()
}

impl Peer {
    pub(crate) fn new(
        local: NodeId,
        id: NodeId,
        addr: PeerAddr,
        capacity: usize,
        race_window: Duration,
    ) -> Peer {
        let resolved = match &addr {
            PeerAddr::Socket(a) => Some(*a),
            PeerAddr::Host { .. } => None,
        };
        Peer {
            id,
            addr,
            resolved: Mutex::new(resolved),
            local,
            race_window,
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(64))),
            capacity,
            wake: Notify::new(),
            connected: Notify::new(),
            connections: Mutex::new(Connections::default()),
        }
    }

    /// The address last resolved (or configured).
    pub(crate) fn resolved(&self) -> Option<SocketAddr> {
        *lock(&self.resolved)
    }

    /// Records a new resolution; returns the previous one if it changed.
    pub(crate) fn set_resolved(&self, addr: SocketAddr) -> Option<Option<SocketAddr>> {
        let mut r = lock(&self.resolved);
        (*r != Some(addr)).then(|| r.replace(addr))
    }

    /// Queues a message; returns true if the oldest queued message was dropped for room.
    pub(crate) fn push(&self, item: Outgoing) -> bool {
        let dropped = {
            let mut queue = lock(&self.queue);
            let dropped = if queue.len() >= self.capacity {
                queue.pop_front().is_some()
            } else {
                false
            };
            queue.push_back(item);
            dropped
        };
        self.wake.notify_one();
        dropped
    }

    pub(crate) fn pop(&self) -> Option<Outgoing> {
        lock(&self.queue).pop_front()
    }

    pub(crate) fn has_queued(&self) -> bool {
        !lock(&self.queue).is_empty()
    }

    /// The connection to send on, forgetting dead ones.
    ///
    /// If both a dialled and an accepted connection are alive and were established within
    /// the race window of each other (both nodes dialled at once), both ends pick the one
    /// dialled by the lower node id, so they converge on one connection; the other stays
    /// open and is read from as usual. Otherwise the newer one wins.
    pub(crate) fn connection(&self) -> Option<quinn::Connection> {
        let mut c = lock(&self.connections);
        c.dialled = c.dialled.take().filter(live);
        c.accepted = c.accepted.take().filter(live);
        match (&c.dialled, &c.accepted) {
            (Some((dialled, at_d)), Some((accepted, at_a))) => {
                let gap = at_d.max(at_a).duration_since(*at_d.min(at_a));
                let prefer_dialled = if gap <= self.race_window {
                    self.local < self.id
                } else {
                    at_d > at_a
                };
                Some(if prefer_dialled { dialled } else { accepted }.clone())
            }
            (Some((one, _)), None) | (None, Some((one, _))) => Some(one.clone()),
            (None, None) => None,
        }
    }

    /// Every live connection with the peer (one, or two while a simultaneous dial is
    /// being settled).
    pub(crate) fn live_connections(&self) -> Vec<quinn::Connection> {
        let c = lock(&self.connections);
        [&c.dialled, &c.accepted]
            .into_iter()
            .flatten()
            .filter(|entry| live(entry))
            .map(|(conn, _)| conn.clone())
            .collect()
    }

    pub(crate) fn set_dialled(&self, conn: quinn::Connection) {
        let old = lock(&self.connections)
            .dialled
            .replace((conn, Instant::now()));
        if let Some((old, _)) = old {
            old.close(crate::code::REPLACED, b"replaced");
        }
        self.wake.notify_one();
    }

    /// Records a connection the peer dialled.
    ///
    /// A peer dials only when it has no live connection to us (it restarted, or its end of
    /// the old connection died). So an older accepted connection is closed (an
    /// authenticated peer holds at most one), and so is a dialled one established before
    /// the race window: the peer no longer has it, even if we have not noticed yet.
    pub(crate) fn set_accepted(&self, conn: quinn::Connection) {
        let now = Instant::now();
        let (old, stale) = {
            let mut c = lock(&self.connections);
            let old = c.accepted.replace((conn, now));
            let stale = match &c.dialled {
                Some((_, at)) if now.duration_since(*at) > self.race_window => c.dialled.take(),
                _ => None,
            };
            (old, stale)
        };
        for (conn, _) in [old, stale].into_iter().flatten() {
            conn.close(crate::code::REPLACED, b"replaced");
        }
        self.connected.notify_one();
    }

    /// Forgets `conn` (it ended).
    pub(crate) fn forget(&self, conn: &quinn::Connection) {
        let id = conn.stable_id();
        let mut c = lock(&self.connections);
        if c.dialled.as_ref().is_some_and(|(d, _)| d.stable_id() == id) {
            c.dialled = None;
        }
        if c.accepted
            .as_ref()
            .is_some_and(|(a, _)| a.stable_id() == id)
        {
            c.accepted = None;
        }
    }

    /// Closes every connection to the peer.
    pub(crate) fn close_all(&self, code: quinn::VarInt, reason: &[u8]) {
        let c = std::mem::take(&mut *lock(&self.connections));
        for (conn, _) in [c.dialled, c.accepted].into_iter().flatten() {
            conn.close(code, reason);
        }
    }
}

/// Capped exponential backoff with jitter: each delay is drawn uniformly from the upper
/// half of the current step, and the step doubles up to the cap. Jitter keeps nodes that
/// lost a peer at the same moment from redialling in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
    rng: u64,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        // RandomState is seeded per process from the OS: enough for jitter, no extra crate.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        Backoff {
            min,
            max,
            step: min,
            rng: hasher.finish() | 1,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.step = self.min;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        let half = step / 2;
        half + half.mul_f64((self.rng % 1024) as f64 / 1024.0)
    }
}

/// The bad-frame rule: more than `limit` bad frames within one `window` closes the
/// connection. Windows are fixed: the count restarts when a bad frame arrives more than
/// `window` after the window's first one.
#[derive(Debug)]
pub(crate) struct BadFrames {
    limit: u32,
    window: Duration,
    state: Mutex<(u32, Option<Instant>)>,
    version_warned: std::sync::atomic::AtomicBool,
}

impl BadFrames {
    pub(crate) fn new(limit: u32, window: Duration) -> BadFrames {
        BadFrames {
            limit,
            window,
            state: Mutex::new((0, None)),
            version_warned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// True the first time on this connection: a frame of an unknown wire version is worth
    /// one warning, not one per frame.
    pub(crate) fn first_version_error(&self) -> bool {
        !self
            .version_warned
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    }

    /// Records one bad frame; true if the connection has now broken the rule.
    pub(crate) fn record(&self, now: Instant) -> bool {
        let mut state = lock(&self.state);
        let (count, start) = &mut *state;
        match start {
            Some(s) if now.duration_since(*s) <= self.window => *count += 1,
            _ => {
                *start = Some(now);
                *count = 1;
            }
        }
        *count > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_in_the_upper_half() {
        let min = Duration::from_millis(10);
        let max = Duration::from_millis(80);
        let mut backoff = Backoff::new(min, max);
        let mut step = min;
        for _ in 0..10 {
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} for step {step:?}"
            );
            step = (step * 2).min(max);
        }
        backoff.reset();
        assert!(backoff.next_delay() <= min);
    }

    #[test]
    fn bad_frames_rule_counts_within_a_window() {
        let rule = BadFrames::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!rule.record(t0));
        assert!(!rule.record(t0 + Duration::from_secs(1)));
        assert!(rule.record(t0 + Duration::from_secs(2)));
        // A new window starts fresh.
        assert!(!rule.record(t0 + Duration::from_secs(30)));
    }

    #[test]
    fn full_queue_drops_the_oldest() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let peer = Peer::new(NodeId(1), NodeId(2), addr.into(), 2, Duration::from_secs(1));
        let item = |b: u8| Outgoing {
            frame: Bytes::from(vec![b]),
            delivery: Delivery::BestEffort,
        };
        assert!(!peer.push(item(1)));
        assert!(!peer.push(item(2)));
        assert!(peer.push(item(3)));
        assert_eq!(peer.pop().map(|o| o.frame), Some(Bytes::from(vec![2])));
        assert_eq!(peer.pop().map(|o| o.frame), Some(Bytes::from(vec![3])));
        assert!(peer.pop().is_none());
    }
}
