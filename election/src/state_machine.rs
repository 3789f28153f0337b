//! The state machine of a replicated lease, and what the driver and the handles share
//! about it: the driver applies, snapshots and restores through the same lock the handles
//! read under.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The state a replicated lease keeps the same on every node.
///
/// Its methods run on the node's driver task, between protocol steps: keep them quick
/// (an apply that takes milliseconds delays the node's renewals by as much).
pub trait StateMachine: Send + 'static {
    /// Applies the command chosen at `index`. Indices grow (by one, except where a
    /// recovering master filled a hole with nothing); each is applied once, in order.
    fn apply(&mut self, index: u64, command: &[u8]);

    /// The state after every command applied so far, as bytes (the log is cut below it).
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the state with `snapshot`, one that [`StateMachine::snapshot`] made on some
    /// node (this one after a restart, or a peer this node fell behind).
    fn restore(&mut self, snapshot: &[u8]);
}

/// What the driver and the handles share about one replicated lease.
#[derive(Debug, Default)]
pub(crate) struct ReplicaShared {
    /// The node's core said ready at its last input (R2; cleared when the tenure ends).
    pub(crate) ready: AtomicBool,
    /// Every index below this is applied.
    pub(crate) applied: AtomicU64,
}

/// The driver's side of a state machine: it applies, snapshots and restores through the
/// same lock the handles read under.
pub(crate) trait Applier: Send {
    fn apply(&self, index: u64, command: &[u8]);
    fn snapshot(&self) -> Vec<u8>;
    fn restore(&self, snapshot: &[u8]);
}

impl<S: StateMachine> Applier for Arc<Mutex<S>> {
    fn apply(&self, index: u64, command: &[u8]) {
        lock(self).apply(index, command);
    }

    fn snapshot(&self) -> Vec<u8> {
        lock(self).snapshot()
    }

    fn restore(&self, snapshot: &[u8]) {
        lock(self).restore(snapshot);
    }
}

pub(crate) fn lock<S>(state: &Mutex<S>) -> MutexGuard<'_, S> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
