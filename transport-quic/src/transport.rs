//! [`QuicTransport`]: the [`election::Transport`] over QUIC with mutual TLS.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use election::{Delivery, Incoming, Transport};
use paxos_core::NodeId;
use quinn::SendDatagramError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, debug_span, info_span, trace};

use crate::accept::accept_loop;
use crate::client::{ClientRequest, ClientRequests};
use crate::codec;
use crate::config::{self, Config, PeerAddr, Settings};
use crate::error::{CertError, Error};
use crate::gate::Gate;
use crate::guests::Guests;
use crate::identity::{self, PeerIdentity};
use crate::peer::{Backoff, Outgoing, Peer};
use crate::receive::read_connection;
use crate::stats::{Counters, Stats, StatsHandle, bump};
use crate::tls::{self, Admission};

/// The QUIC application error codes this crate closes connections and resets streams with.
pub mod code {
    use quinn::VarInt;

    /// The transport is closing (or was dropped).
    pub const CLOSING: VarInt = VarInt::from_u32(0);
    /// A newer connection to the same peer replaced this one.
    pub const REPLACED: VarInt = VarInt::from_u32(1);
    /// The peer broke the bad-frame rule (see the crate docs).
    pub const BAD_FRAMES: VarInt = VarInt::from_u32(2);
    /// The peer's identity is not admitted (checked again after the handshake).
    pub const NOT_ADMITTED: VarInt = VarInt::from_u32(3);
    /// Too many status clients are connected.
    pub const TOO_MANY_CLIENTS: VarInt = VarInt::from_u32(4);
    /// A status request was refused (stream reset).
    pub const REFUSED: VarInt = VarInt::from_u32(5);
    /// A stream to the peer could not be opened in time.
    pub const STALLED: VarInt = VarInt::from_u32(6);
    /// A status client asked nothing for `client_idle_timeout`.
    pub const IDLE: VarInt = VarInt::from_u32(7);
}

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

/// A node's QUIC transport: one quinn endpoint that accepts connections from the other
/// nodes and dials them, with mutual TLS against the cluster CA.
///
/// Create it with [`QuicTransport::bind`] inside a tokio runtime, use it through
/// [`election::Transport`], read counters with [`QuicTransport::stats`]. Dropping it
/// without [`Transport::close`] closes every connection at once, without flushing.
pub struct QuicTransport<M> {
    shared: Arc<Shared<M>>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Incoming<M>>>,
    client_requests: Mutex<Option<mpsc::Receiver<ClientRequest>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl<M> fmt::Debug for QuicTransport<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicTransport")
            .field("local_id", &self.shared.local_id)
            .field("local_addr", &self.shared.endpoint.local_addr().ok())
            .field("peers", &self.shared.peers.keys().collect::<BTreeSet<_>>())
            .finish_non_exhaustive()
    }
}

impl<M> QuicTransport<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    /// Binds `config.listen` and starts accepting connections. Peers are dialled lazily,
    /// on the first message for them. Must be called inside a tokio runtime.
    pub fn bind(config: Config) -> Result<Self, Error> {
        let socket = std::net::UdpSocket::bind(config.listen)?;
        Self::with_socket(config, socket)
    }

    /// Like [`QuicTransport::bind`], on a socket the caller already bound (e.g. to learn
    /// its port before configuring the peers); `config.listen` is ignored.
    pub fn with_socket(config: Config, socket: std::net::UdpSocket) -> Result<Self, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let settings = config.settings.clone();
        settings.validate()?;
        let local_id = config.local_id;
        let found = config.identity.peer_identity()?;
        if found != PeerIdentity::Node(local_id) {
            return Err(Error::IdentityMismatch {
                configured: local_id,
                found: found.to_string(),
            });
        }
        tls::check_own_identity(&config.identity, &config.ca)?;
        let peer_addrs: Vec<(NodeId, PeerAddr)> = config
            .peers
            .iter()
            .filter(|(id, _)| **id != local_id)
            .map(|(id, addr)| (*id, addr.clone()))
            .collect();
        let mut seen: HashMap<&PeerAddr, NodeId> = HashMap::new();
        for (id, addr) in &peer_addrs {
            if let Some(other) = seen.insert(addr, *id) {
                return Err(Error::InvalidSettings(format!(
                    "peers {other} and {id} are both given the address {addr}"
                )));
            }
        }
        let admission = Admission {
            local: local_id,
            peers: peer_addrs.iter().map(|(id, _)| *id).collect(),
            guests: settings.accept_guests,
            clients: settings.accept_clients,
        };
        let server = tls::server_config(&config.identity, &config.ca, admission, &settings)?;
        let client = tls::client_config(&config.identity, &config.ca, &settings)?;
        socket.set_nonblocking(true)?;
        let mut endpoint = {
            let _guard = runtime.enter();
            quinn::Endpoint::new(
                tls::endpoint_config(&config.identity),
                Some(server),
                socket,
                Arc::new(quinn::TokioRuntime),
            )?
        };
        endpoint.set_default_client_config(client);

        let peers = peer_addrs
            .iter()
            .map(|(id, addr)| {
                let peer = Peer::new(
                    local_id,
                    *id,
                    addr.clone(),
                    settings.send_queue_len,
                    settings.connect_timeout,
                );
                (*id, Arc::new(peer))
            })
            .collect::<HashMap<_, _>>();
        // Peers given by name are resolved now for the handshake reservations (again at
        // every dial); one that does not resolve yet is not an error.
        let local = endpoint.local_addr().ok();
        for peer in peers.values() {
            if let PeerAddr::Host { .. } = &peer.addr {
                match peer.addr.resolve_blocking() {
                    Ok(found) => {
                        if let Some(addr) = config::pick_address(&found, local) {
                            peer.set_resolved(addr);
                        }
                    }
                    Err(e) => {
                        debug!(peer = %peer.id, addr = %peer.addr, error = %e, "does not resolve yet")
                    }
                }
            }
        }
        let reserved: Vec<SocketAddr> = peers.values().filter_map(|p| p.resolved()).collect();
        let (incoming_tx, incoming_rx) = mpsc::channel(settings.recv_queue_len);
        let (clients_tx, clients_rx) = mpsc::channel(settings.client_queue_len);
        let (closing, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            local_id,
            gate: Arc::new(Gate::new(reserved, &settings)),
            guests: Guests::new(settings.max_guests),
            settings,
            endpoint,
            peers,
            counters: Arc::new(Counters::default()),
            incoming: incoming_tx,
            clients: clients_tx,
            client_connections: AtomicUsize::new(0),
            closing,
            runtime: runtime.clone(),
        });

        let mut tasks = Vec::with_capacity(shared.peers.len() + 1);
        tasks.push(
            runtime.spawn(
                accept_loop(shared.clone()).instrument(info_span!("accept", node = %local_id)),
            ),
        );
        for peer in shared.peers.values() {
            let span = info_span!("peer", node = %local_id, peer = %peer.id);
            tasks.push(runtime.spawn(drive_peer(shared.clone(), peer.clone()).instrument(span)));
        }
        debug!(node = %local_id, addr = ?shared.endpoint.local_addr().ok(), "transport bound");
        Ok(QuicTransport {
            shared,
            incoming: tokio::sync::Mutex::new(incoming_rx),
            client_requests: Mutex::new(Some(clients_rx)),
            tasks: Mutex::new(tasks),
        })
    }
}

impl<M> QuicTransport<M> {
    /// The UDP address the endpoint is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.shared.endpoint.local_addr()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// A handle on the counters that outlives this value's move into the runtime: for
    /// metrics ([`StatsHandle`] is a Prometheus collector).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.shared.counters.clone())
    }

    /// The stream of status requests from clients (identity "client"); `Some` the first
    /// time only. Clients are admitted only with [`Settings::accept_clients`]; requests
    /// that arrive while nobody holds this stream, or while it is full, are refused.
    pub fn client_requests(&self) -> Option<ClientRequests> {
        let rx = self
            .client_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        Some(ClientRequests::new(rx, self.shared.closing.subscribe()))
    }
}

impl<M> Drop for QuicTransport<M> {
    fn drop(&mut self) {
        self.shared.closing.send_replace(true);
        self.shared.endpoint.close(code::CLOSING, b"dropped");
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

#[async_trait]
impl<M> Transport<M> for QuicTransport<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    fn local_id(&self) -> NodeId {
        self.shared.local_id
    }

    fn send(&self, to: NodeId, message: M, delivery: Delivery) {
        let shared = &self.shared;
        if *shared.closing.borrow() {
            bump(&shared.counters.dropped_closed);
            return;
        }
        let peer = shared.peers.get(&to);
        let frame = match codec::encode(&message, shared.settings.max_frame_len) {
            Ok(frame) => frame,
            Err(e) => {
                bump(&shared.counters.dropped_unencodable);
                debug!(%to, error = %e, "dropped a message that cannot be sent");
                return;
            }
        };
        let Some(peer) = peer else {
            // A guest (a node outside the configuration that dialled us) is answered on
            // its connection, best effort only.
            match shared.guests.send(to, Bytes::from(frame)) {
                Some(true) => bump(&shared.counters.sent_datagrams),
                Some(false) => bump(&shared.counters.dropped_send_failed),
                None => {
                    bump(&shared.counters.dropped_unknown_peer);
                    trace!(%to, "dropped a message for a node that is not a peer");
                }
            }
            return;
        };
        let outgoing = Outgoing {
            frame: Bytes::from(frame),
            delivery,
        };
        if peer.push(outgoing) {
            bump(&shared.counters.dropped_queue_full);
            trace!(%to, "send queue full: dropped the oldest message");
        }
    }

    async fn recv(&self) -> Option<Incoming<M>> {
        let mut closing = self.shared.closing.subscribe();
        if *closing.borrow_and_update() {
            return None;
        }
        let mut incoming = self.incoming.lock().await;
        tokio::select! {
            biased;
            _ = closed(&mut closing) => None,
            message = incoming.recv() => message,
        }
    }

    async fn close(&self) {
        let shared = &self.shared;
        if shared.closing.send_replace(true) {
            return;
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        // Drivers flush what they hold onto live connections and finish their streams
        // (closing a connection drops unsent data), within the close timeout.
        let deadline = tokio::time::Instant::now() + shared.settings.close_timeout;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
        for peer in shared.peers.values() {
            peer.close_all(code::CLOSING, b"closing");
        }
        shared.guests.close_all(b"closing");
        shared.endpoint.close(code::CLOSING, b"closing");
        let _ =
            tokio::time::timeout(shared.settings.close_timeout, shared.endpoint.wait_idle()).await;
        debug!(node = %shared.local_id, "transport closed");
    }
}

/// Completes once the transport is closing. (Never holds the watch lock across an await.)
pub(crate) async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

/// The stream a driver writes reliable frames to, and the connection it belongs to.
struct OutStream {
    connection: usize,
    stream: quinn::SendStream,
}

/// One task per peer: dials when there is something to send and no connection, sends
/// queued messages, backs off between failed dials.
async fn drive_peer<M>(shared: Arc<Shared<M>>, peer: Arc<Peer>)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let settings = &shared.settings;
    let mut closing = shared.closing.subscribe();
    let mut backoff = Backoff::new(
        settings.reconnect_backoff_min,
        settings.reconnect_backoff_max,
    );
    let mut out: Option<OutStream> = None;
    loop {
        if *closing.borrow_and_update() {
            break;
        }
        if !peer.has_queued() {
            tokio::select! {
                _ = peer.wake.notified() => {}
                _ = closed(&mut closing) => {}
            }
            continue;
        }
        let conn = match peer.connection() {
            Some(conn) => conn,
            None => {
                let dialled = tokio::select! {
                    result = dial(&shared, &peer) => result,
                    _ = closed(&mut closing) => break,
                };
                match dialled {
                    Ok(conn) => {
                        backoff.reset();
                        conn
                    }
                    Err(e) => {
                        bump(&shared.counters.dial_failures);
                        let delay = backoff.next_delay();
                        debug!(addr = %peer.addr, error = %e, ?delay, "dial failed");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            // The peer may dial us meanwhile; its connection serves too.
                            _ = peer.connected.notified() => {}
                            _ = closed(&mut closing) => {}
                        }
                        continue;
                    }
                }
            }
        };
        flush(&shared, &peer, &conn, &mut out).await;
    }
    // Closing: hand what is queued to a live connection, then finish the stream. The peer
    // closes the connection once it has read the finished stream to its end (see
    // `read_stream`); closing it from here instead could discard data the peer's QUIC stack
    // had acknowledged but its reader had not taken yet. So wait for that close, bounded by
    // `close`'s deadline (which aborts this task).
    let conn = peer.connection();
    if let Some(conn) = &conn {
        flush(&shared, &peer, conn, &mut out).await;
        if out
            .as_ref()
            .is_none_or(|o| o.connection != conn.stable_id())
        {
            // Nothing reliable went out on this connection: an empty stream says goodbye.
            if let Ok(Ok(stream)) =
                tokio::time::timeout(shared.settings.connect_timeout, conn.open_uni()).await
            {
                out = Some(OutStream {
                    connection: conn.stable_id(),
                    stream,
                });
            }
        }
    }
    while peer.pop().is_some() {
        bump(&shared.counters.dropped_closed);
    }
    if let Some(mut out) = out
        && out.stream.finish().is_ok()
    {
        let _ = out.stream.stopped().await;
    }
    if let Some(conn) = conn {
        conn.closed().await;
    }
}

/// Sends everything queued for `peer` on `conn`; returns when the queue is empty or the
/// connection failed.
async fn flush<M>(
    shared: &Shared<M>,
    peer: &Peer,
    conn: &quinn::Connection,
    out: &mut Option<OutStream>,
) {
    let counters = &shared.counters;
    while let Some(item) = peer.pop() {
        // Best-effort messages go as datagrams when they fit: no stream state, no
        // retransmission, no head-of-line blocking behind a lost packet.
        if item.delivery == Delivery::BestEffort
            && conn
                .max_datagram_size()
                .is_some_and(|max| item.frame.len() <= max)
        {
            match conn.send_datagram(item.frame.clone()) {
                Ok(()) => {
                    bump(&counters.sent_datagrams);
                    continue;
                }
                Err(SendDatagramError::ConnectionLost(e)) => {
                    bump(&counters.dropped_send_failed);
                    debug!(error = %e, "connection lost");
                    return;
                }
                Err(e) => trace!(error = %e, "datagram refused; using the stream"),
            }
        }
        if out
            .as_ref()
            .is_none_or(|o| o.connection != conn.stable_id())
        {
            if let Some(mut old) = out.take() {
                let _ = old.stream.finish();
            }
            match tokio::time::timeout(shared.settings.connect_timeout, conn.open_uni()).await {
                Ok(Ok(stream)) => {
                    *out = Some(OutStream {
                        connection: conn.stable_id(),
                        stream,
                    })
                }
                Ok(Err(e)) => {
                    bump(&counters.dropped_send_failed);
                    debug!(error = %e, "cannot open a stream");
                    return;
                }
                Err(_) => {
                    bump(&counters.dropped_send_failed);
                    debug!("peer grants no stream; closing the connection");
                    conn.close(code::STALLED, b"no stream credit");
                    return;
                }
            }
        }
        let Some(o) = out.as_mut() else {
            continue;
        };
        // Frame lengths are capped far below 4 GiB (codec::MAX_FRAME_LEN_CAP).
        let len = u32::try_from(item.frame.len()).unwrap_or(u32::MAX);
        let mut chunks = [Bytes::copy_from_slice(&len.to_be_bytes()), item.frame];
        match o.stream.write_all_chunks(&mut chunks).await {
            Ok(()) => bump(&counters.sent_stream_frames),
            Err(e) => {
                bump(&counters.dropped_send_failed);
                debug!(error = %e, "stream write failed");
                *out = None;
                if conn.close_reason().is_some() {
                    return;
                }
            }
        }
    }
}

/// Dials `peer` and starts reading from the new connection.
async fn dial<M>(shared: &Arc<Shared<M>>, peer: &Arc<Peer>) -> Result<quinn::Connection, Error>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let found = peer.addr.resolve().await?;
    let addr =
        config::pick_address(&found, shared.endpoint.local_addr().ok()).ok_or_else(|| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} resolves to no address", peer.addr),
            ))
        })?;
    if let Some(old) = peer.set_resolved(addr) {
        debug!(peer = %peer.id, name = %peer.addr, %addr, "resolved to a new address");
        shared.gate.move_peer(old, addr);
    }
    let connecting = shared.endpoint.connect(addr, &tls::server_name(peer.id))?;
    let conn = tokio::time::timeout(shared.settings.connect_timeout, connecting)
        .await
        .map_err(|_| Error::Timeout)??;
    // The verifier pinned the node id during the handshake; reading it back from the
    // verified certificate keeps attribution independent of that code path.
    match identity::of_connection(&conn) {
        Ok(PeerIdentity::Node(id)) if id == peer.id => {}
        other => {
            conn.close(code::NOT_ADMITTED, b"unexpected identity");
            debug!(?other, "dialled node presented an unexpected identity");
            return Err(Error::Cert(CertError::NoIdentity));
        }
    }
    bump(&shared.counters.connections_dialled);
    debug!(addr = %peer.addr, "connected");
    peer.set_dialled(conn.clone());
    let span = debug_span!("connection", peer = %peer.id, remote = %peer.addr, dialled = true);
    let (shared, reading, peer) = (shared.clone(), conn.clone(), peer.clone());
    tokio::spawn(
        async move {
            read_connection(shared, reading.clone(), peer.id).await;
            peer.forget(&reading);
        }
        .instrument(span),
    );
    Ok(conn)
}
