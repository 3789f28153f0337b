//! Reading from a node connection: datagrams and length-prefixed stream frames, decoded,
//! attributed to the connection's verified identity, and handed to `recv`; bad frames are
//! counted under the bad-frame rule.

use std::sync::Arc;
use std::time::Instant;

use gen_paxos_core::NodeId;
use gen_paxos_election::Incoming;
use quinn::ReadExactError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tracing::{Instrument, debug, trace, warn};

use crate::code::{self, closed};
use crate::codec::{self, CodecError};
use crate::peer::BadFrames;
use crate::shared::Shared;
use crate::stats::bump;

/// Reads datagrams and streams from one node connection until it ends; every message is
/// attributed to `from`, the identity of the connection's verified certificate.
pub(crate) async fn read_connection<M>(
    shared: Arc<Shared<M>>,
    conn: quinn::Connection,
    from: NodeId,
) where
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
                    if !shared.deliver(&conn, from, &rule, &bytes, false).await {
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
                    let task = read_stream(shared.clone(), conn.clone(), from, rule.clone(), recv);
                    tokio::spawn(task.in_current_span());
                }
                Err(e) => {
                    debug!(reason = %e, "connection ended");
                    break;
                }
            },
        }
    }
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
        if let CodecError::UnknownVersion(theirs) = error
            && rule.first_version_error()
        {
            warn!(
                theirs,
                ours = codec::WIRE_VERSION,
                "a peer speaks another wire-format version: every frame it sends is dropped (upgrade both to the same release)"
            );
        }
        debug!(error = %error, "dropped a bad frame");
        if rule.record(Instant::now()) && conn.close_reason().is_none() {
            bump(&self.counters.closed_for_bad_frames);
            debug!("closing a connection that keeps sending bad frames");
            conn.close(code::BAD_FRAMES, b"too many bad frames");
        }
    }
}
