//! The transport trait: how the election runtime reaches other nodes.
//!
//! A transport moves typed messages between the nodes of one cluster. It authenticates
//! peers: the [`NodeId`] attached to every received message is the verified identity of
//! the sender (for QUIC, the id bound in its certificate), never something the payload
//! claims. The runtime owns one transport per node.

use async_trait::async_trait;
use gen_paxos_core::NodeId;

/// How a message should travel.
///
/// Lease protocol messages tolerate loss, duplication and reordering (the protocol
/// retransmits), so they go [`Delivery::BestEffort`]. Leader calls, their replies and
/// broadcasts from the leader go [`Delivery::Reliable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// May be lost, duplicated or reordered; lowest latency.
    BestEffort,
    /// Delivered in full while the connection to the peer lives, or not at all.
    Reliable,
}

/// A message received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming<M> {
    /// The authenticated sender.
    pub from: NodeId,
    /// The decoded message.
    pub message: M,
}

/// Moves messages of type `M` between the nodes of one cluster.
///
/// Implementations must never block the caller of [`Transport::send`] on the network:
/// queue the message (bounded, dropping the oldest and counting when full) and return.
#[async_trait]
pub trait Transport<M>: Send + Sync + 'static
where
    M: Send + 'static,
{
    /// This node's own id.
    fn local_id(&self) -> NodeId;

    /// Queues `message` for `to`. Unknown peers and full queues drop the message (counted);
    /// this never fails and never waits.
    fn send(&self, to: NodeId, message: M, delivery: Delivery);

    /// Waits for the next message from any peer. Returns `None` once the transport is closed.
    async fn recv(&self) -> Option<Incoming<M>>;

    /// A message that is already waiting, without waiting for one; `None` if none is.
    ///
    /// The driver takes the messages that queued up while it was busy this way and
    /// answers them together, in fewer and fuller datagrams: under load its work per
    /// message falls instead of its queue growing. The default says nothing is waiting
    /// (every message then gets a turn of its own).
    fn try_recv(&self) -> Option<Incoming<M>> {
        None
    }

    /// Closes the transport: flushes what can be flushed within a short bound, then stops.
    async fn close(&self);
}
