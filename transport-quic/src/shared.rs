//! What the transport's tasks share: the endpoint, the peers, the queues to the
//! application, the handshake gate, the guests and the closing signal.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use gen_paxos_core::NodeId;
use gen_paxos_election::Incoming;
use tokio::sync::{mpsc, watch};

use crate::client::ClientRequest;
use crate::config::Settings;
use crate::gate::Gate;
use crate::guests::Guests;
use crate::peer::Peer;
use crate::stats::Counters;

/// What the transport's tasks share.
pub(crate) struct Shared<M> {
    pub(crate) local_id: NodeId,
    pub(crate) settings: Settings,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) peers: HashMap<NodeId, Arc<Peer>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) incoming: mpsc::Sender<Incoming<M>>,
    pub(crate) clients: mpsc::Sender<ClientRequest>,
    pub(crate) client_connections: AtomicUsize,
    pub(crate) gate: Arc<Gate>,
    pub(crate) guests: Guests,
    pub(crate) closing: watch::Sender<bool>,
    pub(crate) runtime: tokio::runtime::Handle,
}
