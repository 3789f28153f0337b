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
    /// Messages queued for peers (not for itself).
    pub(crate) sent: u64,
}

impl Outbox {
    pub(crate) fn new(id: NodeId, members: Vec<NodeId>, max_batch: usize) -> Outbox {
        Outbox {
            id,
            queues: vec![VecDeque::new(); members.len()],
            members,
            dirty: VecDeque::new(),
            local: VecDeque::new(),
            max_batch,
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

    /// The next batch for one peer, at most `max_batch` messages.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        let idx = self.dirty.pop_front()?;
        let queue = &mut self.queues[idx];
        // From the front of a deque: a burst of n messages drains in O(n), not O(n²).
        let take = queue.len().min(self.max_batch);
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
    }
}
