//! An in-memory transport with fault injection, for tests (feature `test-util`).
//!
//! All transports made from one [`MemoryNetwork`] reach each other. Faults — loss,
//! delay, duplication, partitions (two-way and one-way), crashes — are decided by one
//! generator seeded at construction, in the order messages are sent, so a test on
//! tokio's paused clock (`#[tokio::test(start_paused = true)]`) replays the same way
//! for the same seed. Delays use the tokio clock.
//!
//! ```
//! use gen_paxos_election::memory::MemoryNetwork;
//! use gen_paxos_election::{Delivery, NodeId, Transport};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let net = MemoryNetwork::<String>::new(7);
//! let (a, b) = (net.transport(NodeId(1)), net.transport(NodeId(2)));
//! a.send(NodeId(2), "hi".into(), Delivery::Reliable);
//! assert_eq!(b.recv().await.map(|m| m.message), Some("hi".to_string()));
//!
//! net.block(NodeId(1), NodeId(2)); // one way only
//! a.send(NodeId(2), "lost".into(), Delivery::Reliable);
//! b.send(NodeId(1), "arrives".into(), Delivery::Reliable);
//! assert_eq!(a.recv().await.map(|m| m.message), Some("arrives".to_string()));
//! net.heal();
//! # }
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use gen_paxos_core::NodeId;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use crate::transport::{Delivery, Incoming, Transport};

/// Counters of a [`MemoryNetwork`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetworkStats {
    /// Messages handed to a mailbox (duplicates included).
    pub delivered: u64,
    /// Messages dropped by chance.
    pub dropped_random: u64,
    /// Messages dropped by a partition or a crashed node.
    pub dropped_partition: u64,
    /// Extra copies made.
    pub duplicated: u64,
}

struct Faults {
    drop_rate: f64,
    duplicate_rate: f64,
    delay: (Duration, Duration),
    blocked: HashSet<(NodeId, NodeId)>,
    crashed: HashSet<NodeId>,
}

struct Net<M> {
    rng: fastrand::Rng,
    faults: Faults,
    mailboxes: HashMap<NodeId, Arc<Mailbox<M>>>,
    /// Reliable messages of one pair never overtake each other.
    last_reliable: HashMap<(NodeId, NodeId), Instant>,
    seq: u64,
    stats: NetworkStats,
}

/// A simulated network of in-memory transports. Cheap to clone.
pub struct MemoryNetwork<M> {
    net: Arc<Mutex<Net<M>>>,
}

impl<M> Clone for MemoryNetwork<M> {
    fn clone(&self) -> Self {
        MemoryNetwork {
            net: self.net.clone(),
        }
    }
}

impl<M> fmt::Debug for MemoryNetwork<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryNetwork").finish_non_exhaustive()
    }
}

struct Queued<M> {
    at: Instant,
    seq: u64,
    incoming: Incoming<M>,
}

impl<M> PartialEq for Queued<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<M> Eq for Queued<M> {}
impl<M> PartialOrd for Queued<M> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Queued<M> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct Mailbox<M> {
    queue: Mutex<MailboxState<M>>,
    notify: Notify,
}

struct MailboxState<M> {
    heap: BinaryHeap<Reverse<Queued<M>>>,
    closed: bool,
}

impl<M> Mailbox<M> {
    fn state(&self) -> MutexGuard<'_, MailboxState<M>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<M: Clone + Send + 'static> MemoryNetwork<M> {
    /// A network without faults whose random decisions follow `seed`.
    pub fn new(seed: u64) -> Self {
        MemoryNetwork {
            net: Arc::new(Mutex::new(Net {
                rng: fastrand::Rng::with_seed(seed),
                faults: Faults {
                    drop_rate: 0.0,
                    duplicate_rate: 0.0,
                    delay: (Duration::ZERO, Duration::ZERO),
                    blocked: HashSet::new(),
                    crashed: HashSet::new(),
                },
                mailboxes: HashMap::new(),
                last_reliable: HashMap::new(),
                seq: 0,
                stats: NetworkStats::default(),
            })),
        }
    }

    fn net(&self) -> MutexGuard<'_, Net<M>> {
        self.net.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The transport of node `id`. Calling it again for the same id replaces (restarts)
    /// the node: the old transport is closed and the crash mark is cleared.
    pub fn transport(&self, id: NodeId) -> MemoryTransport<M> {
        let mailbox = Arc::new(Mailbox {
            queue: Mutex::new(MailboxState {
                heap: BinaryHeap::new(),
                closed: false,
            }),
            notify: Notify::new(),
        });
        let mut net = self.net();
        if let Some(old) = net.mailboxes.insert(id, mailbox.clone()) {
            old.state().closed = true;
            old.notify.notify_one();
        }
        net.faults.crashed.remove(&id);
        MemoryTransport {
            id,
            network: self.clone(),
            mailbox,
        }
    }

    /// Drops each best-effort message with probability `rate` (reliable ones are only
    /// lost to partitions and crashes, as on a live connection).
    pub fn set_drop_rate(&self, rate: f64) {
        self.net().faults.drop_rate = rate.clamp(0.0, 1.0);
    }

    /// Delivers each best-effort message twice with probability `rate`.
    pub fn set_duplicate_rate(&self, rate: f64) {
        self.net().faults.duplicate_rate = rate.clamp(0.0, 1.0);
    }

    /// Delays every message by a uniform random time in `[min, max]`; best-effort
    /// messages may be reordered, reliable ones of one pair keep their order.
    pub fn set_delay(&self, min: Duration, max: Duration) {
        self.net().faults.delay = (min, max.max(min));
    }

    /// Cuts `from -> to` (one way).
    pub fn block(&self, from: NodeId, to: NodeId) {
        self.net().faults.blocked.insert((from, to));
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        let mut net = self.net();
        for &x in a {
            for &y in b {
                net.faults.blocked.insert((x, y));
                net.faults.blocked.insert((y, x));
            }
        }
    }

    /// Cuts `node` off from every other node, both ways.
    pub fn isolate(&self, node: NodeId) {
        let others: Vec<NodeId> = self.net().mailboxes.keys().copied().collect();
        self.partition(&[node], &others);
    }

    /// Removes every cut (crashed nodes stay crashed).
    pub fn heal(&self) {
        self.net().faults.blocked.clear();
    }

    /// Crashes `node`'s transport: everything to and from it is lost from now on and its
    /// `recv` returns `None`. A new [`MemoryNetwork::transport`] for the id restarts it.
    pub fn crash(&self, node: NodeId) {
        let mut net = self.net();
        net.faults.crashed.insert(node);
        if let Some(mailbox) = net.mailboxes.get(&node) {
            let mut state = mailbox.state();
            state.closed = true;
            state.heap.clear();
            drop(state);
            mailbox.notify.notify_one();
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> NetworkStats {
        self.net().stats
    }

    fn deliver(&self, from: NodeId, to: NodeId, message: M, delivery: Delivery) {
        let now = Instant::now();
        let mut net = self.net();
        let net = &mut *net;
        if net.faults.crashed.contains(&from)
            || net.faults.crashed.contains(&to)
            || net.faults.blocked.contains(&(from, to))
        {
            net.stats.dropped_partition += 1;
            return;
        }
        let Some(mailbox) = net.mailboxes.get(&to).cloned() else {
            net.stats.dropped_partition += 1;
            return;
        };
        let best_effort = delivery == Delivery::BestEffort;
        if best_effort && net.faults.drop_rate > 0.0 && net.rng.f64() < net.faults.drop_rate {
            net.stats.dropped_random += 1;
            return;
        }
        let copies = if best_effort
            && net.faults.duplicate_rate > 0.0
            && net.rng.f64() < net.faults.duplicate_rate
        {
            net.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut state = mailbox.state();
        if state.closed {
            net.stats.dropped_partition += 1;
            return;
        }
        let mut original = Some(message);
        for copy in 0..copies {
            let (min, max) = net.faults.delay;
            let mut at = now + min + spread(&mut net.rng, max.saturating_sub(min));
            if !best_effort {
                let last = net.last_reliable.entry((from, to)).or_insert(at);
                at = at.max(*last);
                *last = at;
            }
            let message = if copy + 1 == copies {
                original.take()
            } else {
                original.clone()
            };
            let Some(message) = message else { break };
            net.seq += 1;
            net.stats.delivered += 1;
            state.heap.push(Reverse(Queued {
                at,
                seq: net.seq,
                incoming: Incoming { from, message },
            }));
        }
        drop(state);
        mailbox.notify.notify_one();
    }
}

/// One node's end of a [`MemoryNetwork`].
pub struct MemoryTransport<M> {
    id: NodeId,
    network: MemoryNetwork<M>,
    mailbox: Arc<Mailbox<M>>,
}

impl<M> fmt::Debug for MemoryTransport<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<M: Clone + Send + 'static> Transport<M> for MemoryTransport<M> {
    fn local_id(&self) -> NodeId {
        self.id
    }

    fn send(&self, to: NodeId, message: M, delivery: Delivery) {
        if to != self.id && !self.mailbox.state().closed {
            self.network.deliver(self.id, to, message, delivery);
        }
    }

    async fn recv(&self) -> Option<Incoming<M>> {
        loop {
            let next = {
                let mut state = self.mailbox.state();
                if state.closed {
                    return None;
                }
                match state.heap.peek() {
                    Some(Reverse(q)) if q.at <= Instant::now() => {
                        return state.heap.pop().map(|Reverse(q)| q.incoming);
                    }
                    Some(Reverse(q)) => Some(q.at),
                    None => None,
                }
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        () = self.mailbox.notify.notified() => {}
                        () = sleep_until(at) => {}
                    }
                }
                None => self.mailbox.notify.notified().await,
            }
        }
    }

    fn try_recv(&self) -> Option<Incoming<M>> {
        let mut state = self.mailbox.state();
        if state.closed {
            return None;
        }
        match state.heap.peek() {
            Some(Reverse(q)) if q.at <= Instant::now() => {
                state.heap.pop().map(|Reverse(q)| q.incoming)
            }
            _ => None,
        }
    }

    async fn close(&self) {
        let mut state = self.mailbox.state();
        state.closed = true;
        state.heap.clear();
        drop(state);
        self.mailbox.notify.notify_one();
    }
}

/// A duration uniform in `[0, max)`; zero when `max` is zero.
fn spread(rng: &mut fastrand::Rng, max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(rng.u64(..nanos))
    }
}
