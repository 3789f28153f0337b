//! [`QuicTransport`]: the [`election::Transport`] over QUIC with mutual TLS.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use election::{Delivery, Incoming, Transport};
use paxos_core::NodeId;
use quinn::{ReadExactError, SendDatagramError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, debug_span, info_span, trace};

use crate::client::{ClientRequest, ClientRequests};
use crate::codec::{self, CodecError};
use crate::config::{Config, Settings};
use crate::error::{CertError, Error};
use crate::identity::{self, PeerIdentity};
use crate::peer::{Backoff, BadFrames, Outgoing, Peer};
use crate::stats::{Counters, Stats, bump};
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
}

/// What the transport's tasks share.
pub(crate) struct Shared<M> {
    local_id: NodeId,
    pub(crate) settings: Settings,
    endpoint: quinn::Endpoint,
    peers: HashMap<NodeId, Arc<Peer>>,
    pub(crate) counters: Counters,
    incoming: mpsc::Sender<Incoming<M>>,
    clients: mpsc::Sender<ClientRequest>,
    client_connections: AtomicUsize,
    handshakes: Arc<Semaphore>,
    pub(crate) closing: watch::Sender<bool>,
    runtime: tokio::runtime::Handle,
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
        let peer_addrs: Vec<(NodeId, SocketAddr)> = config
            .peers
            .iter()
            .filter(|(id, _)| **id != local_id)
            .map(|(id, addr)| (*id, *addr))
            .collect();
        let admission = Admission {
            peers: peer_addrs.iter().map(|(id, _)| *id).collect(),
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
            .map(|&(id, addr)| {
                let peer = Peer::new(
                    local_id,
                    id,
                    addr,
                    settings.send_queue_len,
                    settings.connect_timeout,
                );
                (id, Arc::new(peer))
            })
            .collect::<HashMap<_, _>>();
        let (incoming_tx, incoming_rx) = mpsc::channel(settings.recv_queue_len);
        let (clients_tx, clients_rx) = mpsc::channel(settings.client_queue_len);
        let (closing, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            local_id,
            handshakes: Arc::new(Semaphore::new(settings.max_handshakes)),
            settings,
            endpoint,
            peers,
            counters: Counters::default(),
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
        let Some(peer) = shared.peers.get(&to) else {
            bump(&shared.counters.dropped_unknown_peer);
            trace!(%to, "dropped a message for a node that is not a peer");
            return;
        };
        let frame = match codec::encode(&message, shared.settings.max_frame_len) {
            Ok(frame) => frame,
            Err(e) => {
                bump(&shared.counters.dropped_unencodable);
                debug!(%to, error = %e, "dropped a message that cannot be sent");
                return;
            }
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
    let connecting = shared
        .endpoint
        .connect(peer.addr, &tls::server_name(peer.id))?;
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
    tokio::spawn(read_connection(shared.clone(), conn.clone(), peer.clone()).instrument(span));
    Ok(conn)
}

/// Accepts connection attempts, bounding the handshakes in progress.
async fn accept_loop<M>(shared: Arc<Shared<M>>)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    // Stops at the start of closing: `close` waits for this task with the peer drivers, and
    // new connections are not wanted then (otherwise every close took its whole timeout).
    let mut closing = shared.closing.subscribe();
    loop {
        let incoming = tokio::select! {
            incoming = shared.endpoint.accept() => incoming,
            _ = closed(&mut closing) => None,
        };
        let Some(incoming) = incoming else {
            break;
        };
        let Ok(permit) = shared.handshakes.clone().try_acquire_owned() else {
            bump(&shared.counters.rejected_handshakes);
            debug!(remote = %incoming.remote_address(), "too many handshakes in progress: refused");
            incoming.refuse();
            continue;
        };
        let span = debug_span!("handshake", remote = %incoming.remote_address());
        tokio::spawn(handshake(shared.clone(), incoming, permit).instrument(span));
    }
}

/// Completes one incoming handshake and serves the connection if its identity is admitted.
async fn handshake<M>(
    shared: Arc<Shared<M>>,
    incoming: quinn::Incoming,
    permit: OwnedSemaphorePermit,
) where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let remote = incoming.remote_address();
    let result = async {
        let connecting = incoming.accept()?;
        tokio::time::timeout(shared.settings.connect_timeout, connecting)
            .await
            .map_err(|_| Error::Timeout)?
            .map_err(Error::from)
    }
    .await;
    drop(permit);
    let conn = match result {
        Ok(conn) => conn,
        Err(e) => {
            bump(&shared.counters.rejected_handshakes);
            debug!(%remote, error = %e, "refused a connection");
            return;
        }
    };
    if *shared.closing.borrow() {
        conn.close(code::CLOSING, b"closing");
        return;
    }
    match identity::of_connection(&conn) {
        Ok(PeerIdentity::Node(id)) if shared.peers.contains_key(&id) => {
            let Some(peer) = shared.peers.get(&id).cloned() else {
                return;
            };
            bump(&shared.counters.connections_accepted);
            debug!(%remote, peer = %id, "accepted a node connection");
            peer.set_accepted(conn.clone());
            let span = debug_span!("connection", peer = %id, %remote, dialled = false);
            read_connection(shared, conn, peer).instrument(span).await;
        }
        Ok(PeerIdentity::Client) if shared.settings.accept_clients => {
            serve_client(shared, conn).await;
        }
        other => {
            // The TLS verifier refuses these already; this is the second lock on the door.
            bump(&shared.counters.rejected_handshakes);
            debug!(%remote, identity = ?other, "refused a connection that is not admitted");
            conn.close(code::NOT_ADMITTED, b"not admitted");
        }
    }
}

/// Reads datagrams and streams from one node connection until it ends.
async fn read_connection<M>(shared: Arc<Shared<M>>, conn: quinn::Connection, peer: Arc<Peer>)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let rule = Arc::new(BadFrames::new(
        shared.settings.bad_frame_limit,
        shared.settings.bad_frame_window,
    ));
    // No exit on `closing`: this task's handle keeps the connection open while the peer
    // drivers flush their last messages onto it (a Release at shutdown); dropping the last
    // handle would close it at once and lose them. `close` ends the connection after the
    // flush, and that ends this loop.
    loop {
        tokio::select! {
            datagram = conn.read_datagram() => match datagram {
                Ok(bytes) => {
                    if !shared.deliver(&conn, peer.id, &rule, &bytes, false).await {
                        break;
                    }
                }
                Err(e) => {
                    debug!(reason = %e, "connection ended");
                    break;
                }
            },
            stream = conn.accept_uni() => match stream {
                Ok(recv) => {
                    let task = read_stream(shared.clone(), conn.clone(), peer.id, rule.clone(), recv);
                    tokio::spawn(task.in_current_span());
                }
                Err(e) => {
                    debug!(reason = %e, "connection ended");
                    break;
                }
            },
        }
    }
    peer.forget(&conn);
}

/// Reads length-prefixed frames from one stream until it ends.
async fn read_stream<M>(
    shared: Arc<Shared<M>>,
    conn: quinn::Connection,
    from: NodeId,
    rule: Arc<BadFrames>,
    mut recv: quinn::RecvStream,
) where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let max = codec::effective_max(shared.settings.max_frame_len);
    loop {
        let mut header = [0u8; 4];
        match recv.read_exact(&mut header).await {
            Ok(()) => {}
            Err(ReadExactError::FinishedEarly(0)) => {
                // The peer finished its stream: it is closing (or replaced this
                // connection), and everything it sent here has been delivered. Closing now
                // lets it stop at once (see the end of `drive_peer`).
                conn.close(code::CLOSING, b"stream finished");
                return;
            }
            Err(ReadExactError::FinishedEarly(_)) => {
                shared.bad_frame(
                    &conn,
                    &rule,
                    &CodecError::Malformed("truncated length".into()),
                );
                return;
            }
            Err(ReadExactError::ReadError(e)) => {
                trace!(error = %e, "stream ended");
                return;
            }
        }
        let len = u32::from_be_bytes(header) as usize;
        if len > max {
            shared.bad_frame(&conn, &rule, &CodecError::TooLong { len, max });
            // Skip the frame so the stream stays in step; memory stays flat.
            if !skip(&mut recv, len).await {
                return;
            }
            continue;
        }
        let mut frame = vec![0u8; len];
        match recv.read_exact(&mut frame).await {
            Ok(()) => {}
            Err(ReadExactError::FinishedEarly(_)) => {
                shared.bad_frame(
                    &conn,
                    &rule,
                    &CodecError::Malformed("truncated frame".into()),
                );
                return;
            }
            Err(ReadExactError::ReadError(e)) => {
                trace!(error = %e, "stream ended");
                return;
            }
        }
        if !shared.deliver(&conn, from, &rule, &frame, true).await {
            return;
        }
    }
}

async fn skip(recv: &mut quinn::RecvStream, mut remaining: usize) -> bool {
    while remaining > 0 {
        match recv.read_chunk(remaining.min(64 * 1024), true).await {
            Ok(Some(chunk)) => remaining = remaining.saturating_sub(chunk.bytes.len()),
            Ok(None) | Err(_) => return false,
        }
    }
    true
}

impl<M> Shared<M>
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    /// Decodes one frame from `from` and hands it to `recv`. Returns false once nobody
    /// can receive any more.
    async fn deliver(
        &self,
        conn: &quinn::Connection,
        from: NodeId,
        rule: &BadFrames,
        frame: &[u8],
        reliable: bool,
    ) -> bool {
        let message = match codec::decode::<M>(frame, self.settings.max_frame_len) {
            Ok(message) => message,
            Err(e) => {
                self.bad_frame(conn, rule, &e);
                return true;
            }
        };
        // `from` is the identity of the verified certificate of this connection.
        let incoming = Incoming { from, message };
        if reliable {
            // Waiting here pushes back on this stream only (QUIC flow control).
            let mut closing = self.closing.subscribe();
            let sent = tokio::select! {
                sent = self.incoming.send(incoming) => sent.is_ok(),
                _ = closed(&mut closing) => false,
            };
            if !sent {
                return false;
            }
        } else {
            match self.incoming.try_send(incoming) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    bump(&self.counters.dropped_recv_full);
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        bump(&self.counters.received);
        true
    }
}

impl<M> Shared<M> {
    /// Counts a bad frame and applies the bad-frame rule.
    fn bad_frame(&self, conn: &quinn::Connection, rule: &BadFrames, error: &CodecError) {
        if error.is_too_long() {
            bump(&self.counters.oversized_frames);
        } else {
            bump(&self.counters.malformed_frames);
        }
        debug!(error = %error, "dropped a bad frame");
        if rule.record(Instant::now()) && conn.close_reason().is_none() {
            bump(&self.counters.closed_for_bad_frames);
            debug!("closing a connection that keeps sending bad frames");
            conn.close(code::BAD_FRAMES, b"too many bad frames");
        }
    }
}

/// Serves one status-client connection: each bidirectional stream is one request.
async fn serve_client<M>(shared: Arc<Shared<M>>, conn: quinn::Connection)
where
    M: Send + 'static,
{
    let max = shared.settings.max_client_connections;
    if shared.client_connections.fetch_add(1, Ordering::AcqRel) >= max {
        shared.client_connections.fetch_sub(1, Ordering::AcqRel);
        bump(&shared.counters.rejected_handshakes);
        debug!("too many status clients: refused");
        conn.close(code::TOO_MANY_CLIENTS, b"too many clients");
        return;
    }
    let mut closing = shared.closing.subscribe();
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    tokio::spawn(client_request(shared.clone(), send, recv).in_current_span());
                }
                Err(e) => {
                    trace!(reason = %e, "client connection ended");
                    break;
                }
            },
            _ = closed(&mut closing) => break,
        }
    }
    shared.client_connections.fetch_sub(1, Ordering::AcqRel);
}

async fn client_request<M>(
    shared: Arc<Shared<M>>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) where
    M: Send + 'static,
{
    let settings = &shared.settings;
    let max = codec::effective_max(settings.max_frame_len);
    let frame = match tokio::time::timeout(settings.connect_timeout, recv.read_to_end(max)).await {
        Ok(Ok(frame)) => frame,
        _ => {
            bump(&shared.counters.client_requests_refused);
            let _ = send.reset(code::REFUSED);
            return;
        }
    };
    let request = ClientRequest::new(
        frame,
        send,
        settings.max_frame_len,
        settings.max_status_reply_len,
        settings.connect_timeout,
        shared.runtime.clone(),
    );
    // A request nobody takes is dropped, which resets its stream: the client hears "no".
    match shared.clients.try_send(request) {
        Ok(()) => bump(&shared.counters.client_requests),
        Err(_) => bump(&shared.counters.client_requests_refused),
    }
}
