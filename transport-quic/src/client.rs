//! Status requests: a client holding `client.pem` asks a node one question and gets one
//! answer.
//!
//! A status client's identity is "client", not a node id: it is admitted only by nodes
//! that set [`Settings::accept_clients`], it can never send protocol messages, and it can
//! never pass as a node (its certificate is not valid for server authentication). Each
//! request is one bidirectional QUIC stream: the client writes one frame (see
//! [`crate::codec`]) and finishes; the node answers with one frame and finishes.
//!
//! The node side surfaces requests as [`ClientRequest`]s from
//! [`crate::QuicTransport::client_requests`]; the runtime decodes the question, answers
//! with [`ClientRequest::respond`]. What the question and answer types are is up to the
//! runtime and the CLI.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use gen_paxos_core::NodeId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use crate::certs::{CaCertificate, Identity};
use crate::code::{self, closed};
use crate::codec::{self, CodecError};
use crate::config::Settings;
use crate::error::Error;
use crate::tls;

/// One status request from a client, with the means to answer it. Dropping it without
/// answering refuses the request (the client sees its stream reset).
pub struct ClientRequest {
    frame: Vec<u8>,
    reply: Option<quinn::SendStream>,
    max_frame_len: usize,
    max_reply_len: usize,
    timeout: Duration,
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for ClientRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRequest")
            .field("len", &self.frame.len())
            .finish_non_exhaustive()
    }
}

impl ClientRequest {
    pub(crate) fn new(
        frame: Vec<u8>,
        reply: quinn::SendStream,
        max_frame_len: usize,
        max_reply_len: usize,
        timeout: Duration,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        ClientRequest {
            frame,
            reply: Some(reply),
            max_frame_len,
            max_reply_len,
            timeout,
            runtime,
        }
    }

    /// Decodes the question. A client controls these bytes: handle the error (e.g. by
    /// dropping the request), never unwrap it.
    pub fn decode<Q: DeserializeOwned>(&self) -> Result<Q, CodecError> {
        codec::decode(&self.frame, self.max_frame_len)
    }

    /// Sends `answer` and finishes the stream. Returns at once: the write runs in the
    /// background, bounded by the connect timeout, so a client that does not read cannot
    /// stall the caller. Fails only if `answer` cannot be encoded (then the request is
    /// refused).
    pub fn respond<R: Serialize + ?Sized>(mut self, answer: &R) -> Result<(), CodecError> {
        let frame = codec::encode(answer, self.max_reply_len)?;
        if let Some(mut send) = self.reply.take() {
            let timeout = self.timeout;
            self.runtime.spawn(async move {
                let _ = tokio::time::timeout(timeout, async {
                    send.write_all(&frame).await.ok()?;
                    send.finish().ok()?;
                    send.stopped().await.ok()
                })
                .await;
            });
        }
        Ok(())
    }
}

impl Drop for ClientRequest {
    fn drop(&mut self) {
        if let Some(mut send) = self.reply.take() {
            let _ = send.reset(code::REFUSED);
        }
    }
}

/// The status requests arriving at a node, from [`crate::QuicTransport::client_requests`].
#[derive(Debug)]
pub struct ClientRequests {
    rx: mpsc::Receiver<ClientRequest>,
    closing: watch::Receiver<bool>,
}

impl ClientRequests {
    pub(crate) fn new(rx: mpsc::Receiver<ClientRequest>, closing: watch::Receiver<bool>) -> Self {
        ClientRequests { rx, closing }
    }

    /// The next request; `None` once the transport is closed.
    pub async fn next(&mut self) -> Option<ClientRequest> {
        tokio::select! {
            biased;
            _ = closed(&mut self.closing) => None,
            request = self.rx.recv() => request,
        }
    }
}

/// A status client's connection to one node.
#[derive(Debug)]
pub struct StatusClient {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    max_frame_len: usize,
    max_reply_len: usize,
    timeout: Duration,
}

impl StatusClient {
    /// Connects to node `node` at `addr`, presenting `identity` (normally the client
    /// certificate) and verifying the node against `ca`. Uses `settings` for timeouts and
    /// frame limits.
    ///
    /// Note that a node that refuses the client may let the handshake complete first (TLS
    /// 1.3 client authentication finishes after the client's last flight): the refusal
    /// then shows as an error from [`StatusClient::request`].
    pub async fn connect(
        addr: SocketAddr,
        node: NodeId,
        identity: &Identity,
        ca: &CaCertificate,
        settings: &Settings,
    ) -> Result<StatusClient, Error> {
        settings.validate()?;
        tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        tls::check_own_identity(identity, ca)?;
        let local: SocketAddr = match addr {
            SocketAddr::V4(a) if a.ip().is_loopback() => (Ipv4Addr::LOCALHOST, 0).into(),
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(a) if a.ip().is_loopback() => (Ipv6Addr::LOCALHOST, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let mut endpoint = quinn::Endpoint::client(local)?;
        endpoint.set_default_client_config(tls::client_config(identity, ca, settings)?);
        let connecting = endpoint
            .connect(addr, &crate::identity::server_name(node))
            .map_err(Error::connect)?;
        let conn = tokio::time::timeout(settings.connect_timeout, connecting)
            .await
            .map_err(|_| Error::Timeout)?
            .map_err(Error::connection)?;
        Ok(StatusClient {
            endpoint,
            conn,
            max_frame_len: settings.max_frame_len,
            max_reply_len: settings.max_status_reply_len,
            timeout: settings.connect_timeout,
        })
    }

    /// Sends one question and waits (at most the connect timeout) for its answer.
    pub async fn request<Q, R>(&self, question: &Q) -> Result<R, Error>
    where
        Q: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let frame = codec::encode(question, self.max_frame_len)?;
        let max = codec::effective_max(self.max_reply_len);
        let exchange = async {
            let (mut send, mut recv) = self.conn.open_bi().await.map_err(Error::connection)?;
            send.write_all(&frame)
                .await
                .map_err(|e| Error::Stream(e.to_string()))?;
            send.finish().map_err(|e| Error::Stream(e.to_string()))?;
            let answer = recv
                .read_to_end(max)
                .await
                .map_err(|e| Error::Stream(e.to_string()))?;
            Ok::<_, Error>(codec::decode(&answer, self.max_reply_len)?)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout)?
    }

    /// Closes the connection and waits (briefly) for the close to reach the node.
    pub async fn close(self) {
        self.conn.close(code::CLOSING, b"done");
        let _ = tokio::time::timeout(self.timeout, self.endpoint.wait_idle()).await;
    }
}
