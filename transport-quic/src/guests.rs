//! Guests: nodes of the cluster's CA that are not configured peers.
//!
//! A node configured with another voter set (a half-done reconfiguration, a node started
//! with the wrong peer list) dials the nodes it believes are its peers. Refusing it during
//! the handshake would leave both sides blind to the mismatch; admitted as a guest, its
//! messages reach the runtime under its verified id, and the runtime can answer it with
//! its own configuration (a hello) over the same connection. The runtime admits nothing
//! else from a node outside its configuration.
//!
//! Guests get at most [`crate::Settings::max_guests`] connections and best-effort
//! messages only: datagrams, never a stream.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use gen_paxos_core::NodeId;

use crate::code;

/// The guest connections of one endpoint.
#[derive(Debug)]
pub(crate) struct Guests {
    max: usize,
    conns: Mutex<HashMap<NodeId, quinn::Connection>>,
}

impl Guests {
    pub(crate) fn new(max: usize) -> Self {
        Guests {
            max,
            conns: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<NodeId, quinn::Connection>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `conn` as guest `id`'s connection (replacing an older one of the same id);
    /// false if every guest slot is taken.
    pub(crate) fn insert(&self, id: NodeId, conn: quinn::Connection) -> bool {
        let mut conns = self.lock();
        conns.retain(|_, c| c.close_reason().is_none());
        if !conns.contains_key(&id) && conns.len() >= self.max {
            return false;
        }
        if let Some(old) = conns.insert(id, conn) {
            old.close(code::REPLACED, b"replaced");
        }
        true
    }

    /// Forgets `conn` if it is still guest `id`'s connection.
    pub(crate) fn remove(&self, id: NodeId, conn: &quinn::Connection) {
        let mut conns = self.lock();
        if conns
            .get(&id)
            .is_some_and(|c| c.stable_id() == conn.stable_id())
        {
            conns.remove(&id);
        }
    }

    /// Sends `frame` to guest `id` as a datagram. `None` if `id` is not a guest;
    /// `Some(false)` if the datagram could not be sent.
    pub(crate) fn send(&self, id: NodeId, frame: Bytes) -> Option<bool> {
        let conn = self.lock().get(&id).cloned()?;
        let fits = conn
            .max_datagram_size()
            .is_some_and(|max| frame.len() <= max);
        Some(fits && conn.send_datagram(frame).is_ok())
    }

    pub(crate) fn close_all(&self, reason: &[u8]) {
        for (_, conn) in self.lock().drain() {
            conn.close(code::CLOSING, reason);
        }
    }
}
