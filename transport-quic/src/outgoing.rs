//! The outgoing side: one task per peer that dials when there is something to send,
//! writes queued messages (datagrams, or the reliable stream), and backs off between
//! failed dials.

use std::sync::Arc;

use bytes::Bytes;
use gen_paxos_election::Delivery;
use quinn::SendDatagramError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument, debug, debug_span, trace};

use crate::code::{self, closed};
use crate::config;
use crate::error::{CertError, Error};
use crate::identity::{self, PeerIdentity};
use crate::peer::{Backoff, Peer};
use crate::receive::read_connection;
use crate::shared::Shared;
use crate::stats::bump;

/// The stream a driver writes reliable frames to, and the connection it belongs to.
struct OutStream {
    connection: usize,
    stream: quinn::SendStream,
}

/// One task per peer: dials when there is something to send and no connection, sends
/// queued messages, backs off between failed dials.
pub(crate) async fn drive_peer<M>(shared: Arc<Shared<M>>, peer: Arc<Peer>)
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
    // A dial in progress, in its own task so that it can go on while the peer's own
    // connection serves (below).
    let mut dialling: Option<tokio::task::JoinHandle<Result<quinn::Connection, Error>>> = None;
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
                // A dial sent before the peer was listening waits for QUIC to resend its
                // first packet (a probe timeout, hundreds of milliseconds). If the peer
                // dials us meanwhile it is up, and its connection serves: send on it
                // rather than hold the queue behind the dial (a node started before its
                // peers could not send to them for that long, which with a 20 ms lease
                // let a restarted node win the first failover before the survivors).
                // The dial itself goes on and records its connection when it completes:
                // the peer may have accepted it already and chosen it to send on (both
                // ends prefer the lower id's dial), and abandoning it then closed the
                // connection under the peer, whose messages on it were lost until the
                // close reached it (up to 200 ms in a benchmark's cold starts).
                if dialling.as_ref().is_some_and(|d| d.is_finished()) {
                    // Finished while the peer's connection served: its connection, if
                    // any, is recorded and has died since, or it failed. Dial again.
                    dialling = None;
                }
                let task = dialling.get_or_insert_with(|| {
                    let (shared, peer) = (shared.clone(), peer.clone());
                    tokio::spawn(async move { dial(&shared, &peer).await }.in_current_span())
                });
                let dialled = tokio::select! {
                    result = task => result.unwrap_or_else(|e| Err(Error::Io(std::io::Error::other(e)))),
                    _ = peer.connected.notified() => continue,
                    _ = closed(&mut closing) => break,
                };
                dialling = None;
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
    if let Some(task) = dialling.take() {
        task.abort();
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
        // retransmission, no head-of-line blocking behind a lost packet. When quinn's
        // datagram send buffer is full this waits for room rather than have quinn drop
        // its oldest unsent datagram without a trace (`send_datagram` does): with 100,000
        // leases that silently lost hundreds of frames a second, each a batch of
        // renewals. Meanwhile the peer's queue fills, and drops its oldest when full,
        // counted (`dropped_queue_full`).
        if item.delivery == Delivery::BestEffort
            && conn
                .max_datagram_size()
                .is_some_and(|max| item.frame.len() <= max)
        {
            match conn.send_datagram_wait(item.frame.clone()).await {
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
    let connecting = shared
        .endpoint
        .connect(addr, &identity::server_name(peer.id))
        .map_err(Error::connect)?;
    let conn = tokio::time::timeout(shared.settings.connect_timeout, connecting)
        .await
        .map_err(|_| Error::Timeout)?
        .map_err(Error::connection)?;
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
