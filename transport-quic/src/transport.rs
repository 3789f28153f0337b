//! [`QuicTransport`]: the [`gen_paxos_election::Transport`] over QUIC with mutual TLS.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use gen_paxos_core::NodeId;
use gen_paxos_election::{Delivery, Incoming, Transport};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, info, info_span, trace, warn};

use crate::accept::accept_loop;
use crate::client::{ClientRequest, ClientRequests};
use crate::code::{self, closed};
use crate::codec;
use crate::config::{self, Config, PeerAddr};
use crate::error::Error;
use crate::gate::Gate;
use crate::guests::Guests;
use crate::identity::PeerIdentity;
use crate::outgoing::drive_peer;
use crate::peer::{Outgoing, Peer};
use crate::shared::Shared;
use crate::stats::{Counters, Stats, StatsHandle, bump};
use crate::tls::{self, Admission};

/// A node's QUIC transport: one quinn endpoint that accepts connections from the other
/// nodes and dials them, with mutual TLS against the cluster CA.
///
/// Create it with [`QuicTransport::bind`] inside a tokio runtime, use it through
/// [`gen_paxos_election::Transport`], read counters with [`QuicTransport::stats`]. Dropping it
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
        socket_buffers(&socket, settings.recv_buffer_size);
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
        StatsHandle {
            counters: self.shared.counters.clone(),
            peers: self.shared.peers.clone(),
        }
    }

    /// The stream of status requests from clients (identity "client"); `Some` the first
    /// time only. Clients are admitted only with [`crate::Settings::accept_clients`]; requests
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

    fn try_recv(&self) -> Option<Incoming<M>> {
        if *self.shared.closing.borrow() {
            return None;
        }
        // Held by a waiting `recv` only while the driver is not asking here (one driver).
        self.incoming.try_lock().ok()?.try_recv().ok()
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

/// Asks the kernel for a receive buffer of `want` bytes on `socket` and logs what it gave
/// (Linux caps the request at `net.core.rmem_max` and reports twice what it grants). A
/// buffer already larger is kept: where `rmem_max` is below the default, asking would
/// shrink it.
fn socket_buffers(socket: &std::net::UdpSocket, want: usize) {
    let sock = socket2::SockRef::from(socket);
    let before = sock.recv_buffer_size().unwrap_or(0);
    if before >= want {
        return;
    }
    if let Err(e) = sock.set_recv_buffer_size(want) {
        warn!(error = %e, want, "cannot set the UDP receive buffer");
    }
    match sock.recv_buffer_size() {
        Ok(got) if got < before => {
            // Back to the size it had (Linux reports twice what it was asked for).
            let _ = sock.set_recv_buffer_size(before / 2);
        }
        Ok(got) if got < want => info!(
            got,
            want,
            "the kernel gave the UDP socket a smaller receive buffer than asked: with many \
             leases raise net.core.rmem_max (docs/deploy.md)"
        ),
        Ok(got) => debug!(got, "UDP receive buffer"),
        Err(e) => debug!(error = %e, "cannot read the UDP receive buffer size"),
    }
}

#[cfg(test)]
mod tests {
    use super::socket_buffers;

    #[test]
    fn the_receive_buffer_is_raised_as_far_as_the_kernel_allows() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let before = socket2::SockRef::from(&socket)
            .recv_buffer_size()
            .expect("read");
        let want = 4 << 20;
        socket_buffers(&socket, want);
        let got = socket2::SockRef::from(&socket)
            .recv_buffer_size()
            .expect("read");
        // Linux grants min(want, net.core.rmem_max) and reports twice that.
        let Some(max) = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        else {
            assert!(got >= before);
            return;
        };
        assert_eq!(got, (2 * want.min(max)).max(before), "rmem_max {max}");
    }
}
