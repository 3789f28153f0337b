//! Accepting connections: address validation, the handshake gate, and serving what was
//! accepted (a configured peer, a guest node, a status client).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument, debug, debug_span, trace};

use crate::client::ClientRequest;
use crate::code::{self, closed};
use crate::codec;
use crate::error::Error;
use crate::gate::Pass;
use crate::identity::{self, PeerIdentity};
use crate::receive::read_connection;
use crate::shared::Shared;
use crate::stats::bump;

/// Accepts connection attempts. Every source proves its address first (a stateless QUIC
/// retry: nothing is kept for an attempt until its source answers), then the gate decides
/// (see `gate.rs`): configured peers' addresses have slots of their own, everyone else
/// shares a bounded, rate-limited pool with a cap per IP address.
pub(crate) async fn accept_loop<M>(shared: Arc<Shared<M>>)
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
        let remote = incoming.remote_address();
        if !incoming.remote_address_validated() && incoming.may_retry() {
            match incoming.retry() {
                Ok(()) => bump(&shared.counters.retries_sent),
                Err(e) => e.into_incoming().ignore(),
            }
            continue;
        }
        match shared.gate.admit(remote, Instant::now()) {
            Ok(pass) => {
                let span = debug_span!("handshake", %remote);
                tokio::spawn(handshake(shared.clone(), incoming, pass).instrument(span));
            }
            Err(why) => {
                bump(&shared.counters.ignored_handshakes);
                trace!(%remote, ?why, "handshake not started");
                incoming.ignore();
            }
        }
    }
}

/// Completes one incoming handshake and serves the connection if its identity is admitted.
pub(crate) async fn handshake<M>(shared: Arc<Shared<M>>, incoming: quinn::Incoming, pass: Pass)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    let remote = incoming.remote_address();
    let result = async {
        let connecting = incoming.accept().map_err(Error::connection)?;
        tokio::time::timeout(shared.settings.connect_timeout, connecting)
            .await
            .map_err(|_| Error::Timeout)?
            .map_err(Error::connection)
    }
    .await;
    drop(pass);
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
            read_connection(shared, conn.clone(), id)
                .instrument(span)
                .await;
            peer.forget(&conn);
        }
        Ok(PeerIdentity::Node(id)) if shared.settings.accept_guests && id != shared.local_id => {
            serve_guest(shared, conn, id).await;
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

/// Serves a node of the CA that is not a configured peer (see `guests.rs`).
async fn serve_guest<M>(shared: Arc<Shared<M>>, conn: quinn::Connection, id: gen_paxos_core::NodeId)
where
    M: Serialize + DeserializeOwned + Send + 'static,
{
    if !shared.guests.insert(id, conn.clone()) {
        bump(&shared.counters.rejected_handshakes);
        debug!(guest = %id, "too many guests: refused");
        conn.close(code::NOT_ADMITTED, b"too many guests");
        return;
    }
    bump(&shared.counters.guest_connections);
    debug!(guest = %id, remote = %conn.remote_address(), "accepted a guest: a node outside this node's configuration");
    let span = debug_span!("guest", guest = %id);
    read_connection(shared.clone(), conn.clone(), id)
        .instrument(span)
        .await;
    shared.guests.remove(id, &conn);
}

/// Serves one status-client connection: each bidirectional stream is one request.
pub(crate) async fn serve_client<M>(shared: Arc<Shared<M>>, conn: quinn::Connection)
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
    let idle = shared.settings.client_idle_timeout;
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
            // A client that asks nothing for a while gives its slot back (QUIC keep-alives
            // would otherwise hold it for ever).
            () = tokio::time::sleep(idle) => {
                bump(&shared.counters.clients_idle_closed);
                debug!("closing an idle status client");
                conn.close(code::IDLE, b"idle");
                break;
            }
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
    // A client's request is small: frames larger than the default are for peers' snapshots.
    let client_frame_len = settings.max_frame_len.min(codec::DEFAULT_MAX_FRAME_LEN);
    let max = codec::effective_max(client_frame_len);
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
        client_frame_len,
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
