//! The node's outgoing messages: one queue per member, batched per transmit, and the
//! messages a node sends itself (handled with the same `now`, rule 7).

use std::collections::VecDeque;

use crate::id::NodeId;
use crate::message::{Envelope, Transmit};

/// Outgoing queues, in member order.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    id: NodeId,
    /// Sorted voters and observers; a member's index is its queue.
    members: Vec<NodeId>,
    queues: Vec<VecDeque<Envelope>>,
    /// Members with queued messages, in the order they got their first.
    dirty: VecDeque<usize>,
    /// Messages to this node itself.
    local: VecDeque<Envelope>,
    max_batch: usize,
    /// Most bytes of lease messages per batch ([`Envelope::size_bound`]).
    max_batch_bytes: usize,
    /// Messages queued for peers (not for itself).
    pub(crate) sent: u64,
}

impl Outbox {
    pub(crate) fn new(
        id: NodeId,
        members: Vec<NodeId>,
        max_batch: usize,
        max_batch_bytes: usize,
    ) -> Outbox {
        Outbox {
            id,
            queues: vec![VecDeque::new(); members.len()],
            members,
            dirty: VecDeque::new(),
            local: VecDeque::new(),
            max_batch,
            max_batch_bytes,
            sent: 0,
        }
    }

    /// Queues `envelope` for `to`: a member, or this node itself. Anyone else is dropped.
    pub(crate) fn send(&mut self, to: NodeId, envelope: Envelope) {
        if to == self.id {
            self.local.push_back(envelope);
            return;
        }
        let Ok(idx) = self.members.binary_search(&to) else {
            return;
        };
        self.sent += 1;
        if self.queues[idx].is_empty() {
            self.dirty.push_back(idx);
        }
        self.queues[idx].push_back(envelope);
    }

    /// Whether this node sent itself messages not handled yet.
    pub(crate) fn has_local(&self) -> bool {
        !self.local.is_empty()
    }

    /// The next message this node sent itself.
    pub(crate) fn pop_local(&mut self) -> Option<Envelope> {
        self.local.pop_front()
    }

    /// The next batch for one peer: at most `max_batch` messages, and lease messages of
    /// at most `max_batch_bytes` (at least one message).
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        let idx = self.dirty.pop_front()?;
        let queue = &mut self.queues[idx];
        let mut bytes = 0;
        let take = queue
            .iter()
            .take(self.max_batch)
            .position(|e| {
                bytes += e.size_bound().unwrap_or(0);
                bytes > self.max_batch_bytes
            })
            .unwrap_or(queue.len().min(self.max_batch))
            .max(1);
        // From the front of a deque: a burst of n messages drains in O(n), not O(n²).
        let messages: Vec<Envelope> = queue.drain(..take).collect();
        if !queue.is_empty() {
            self.dirty.push_back(idx);
        }
        Some(Transmit {
            to: self.members[idx],
            messages,
        })
    }
}

impl std::hash::Hash for Outbox {
    /// The queues, not the `sent` counter (for the model checker, `state_hash.rs`).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        self.members.hash(state);
        self.queues.hash(state);
        self.dirty.hash(state);
        self.local.hash(state);
        self.max_batch.hash(state);
        self.max_batch_bytes.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::Ballot;
    use crate::id::{Incarnation, LeaseName};
    use crate::message::Message;

    fn accept(name: &str) -> Envelope {
        Envelope {
            lease: LeaseName::new(name).expect("valid"),
            message: Message::Accept {
                ballot: Ballot {
                    counter: 1,
                    incarnation: Incarnation(1),
                    node: NodeId(1),
                },
                lease_duration: std::time::Duration::from_secs(2),
            },
        }
    }

    #[test]
    fn batches_stop_at_the_byte_bound_or_the_count_and_carry_at_least_one() {
        let mut out = Outbox::new(NodeId(1), vec![NodeId(1), NodeId(2)], 64, 1_000);
        for i in 0..100 {
            out.send(NodeId(2), accept(&format!("lease-{i:06}")));
        }
        let bound = accept("lease-000000")
            .size_bound()
            .expect("a lease message");
        let mut sizes = Vec::new();
        while let Some(t) = out.poll_transmit() {
            assert!(t.messages.len() * bound <= 1_000);
            sizes.push(t.messages.len());
        }
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert_eq!(sizes[0], 1_000 / bound);
        // A message larger than the bound still goes, alone.
        let mut out = Outbox::new(NodeId(1), vec![NodeId(1), NodeId(2)], 64, 10);
        out.send(NodeId(2), accept("a"));
        out.send(NodeId(2), accept("b"));
        assert_eq!(out.poll_transmit().map(|t| t.messages.len()), Some(1));
        assert_eq!(out.poll_transmit().map(|t| t.messages.len()), Some(1));
        // The count bounds short names.
        let mut out = Outbox::new(NodeId(1), vec![NodeId(1), NodeId(2)], 4, 1_000);
        for name in ["a", "b", "c", "d", "e"] {
            out.send(NodeId(2), accept(name));
        }
        assert_eq!(out.poll_transmit().map(|t| t.messages.len()), Some(4));
    }
}
