//! Helpers shared by the integration tests: certificates, nodes on 127.0.0.1, raw QUIC
//! clients for playing a misbehaving peer.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gen_paxos_core::NodeId;
use gen_paxos_election::{Delivery, Incoming, Transport};
use gen_paxos_quic::{
    CaCertificate, ClusterCa, Config, Identity, IssuedCert, QuicTransport, Settings, Stats,
};
use serde::{Deserialize, Serialize};

/// The message type of the tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    Ping(u64),
    Blob(Vec<u8>),
}

pub type Node = QuicTransport<Msg>;

/// Settings for loopback: short initial RTT, timeouts and backoff.
pub fn settings() -> Settings {
    let mut s = Settings::default();
    s.initial_rtt = Duration::from_millis(10);
    s.connect_timeout = Duration::from_millis(500);
    s.reconnect_backoff_min = Duration::from_millis(10);
    s.reconnect_backoff_max = Duration::from_millis(100);
    s.idle_timeout = Duration::from_secs(3);
    s.keep_alive_interval = Duration::from_millis(500);
    s.close_timeout = Duration::from_millis(300);
    s
}

/// A UDP socket on 127.0.0.1 with a free port.
pub fn socket() -> anyhow::Result<UdpSocket> {
    Ok(UdpSocket::bind("127.0.0.1:0")?)
}

pub fn addr(socket: &UdpSocket) -> anyhow::Result<SocketAddr> {
    Ok(socket.local_addr()?)
}

/// Starts node `id` on `socket` with `identity`, trusting `ca`, knowing `peers`.
pub fn node_with(
    id: u64,
    identity: Identity,
    ca: CaCertificate,
    socket: UdpSocket,
    peers: &[(u64, SocketAddr)],
    settings: Settings,
) -> anyhow::Result<Node> {
    let listen = socket.local_addr()?;
    let mut config = Config::new(NodeId(id), listen, identity, ca).with_settings(settings);
    for &(peer, addr) in peers {
        config = config.with_peer(NodeId(peer), addr);
    }
    QuicTransport::with_socket(config, socket).context("starting a node")
}

/// Starts node `id` with a fresh certificate from `ca`.
pub fn node(
    ca: &ClusterCa,
    id: u64,
    socket: UdpSocket,
    peers: &[(u64, SocketAddr)],
) -> anyhow::Result<Node> {
    node_settings(ca, id, socket, peers, settings())
}

/// Starts node `id` with a fresh certificate from `ca` and `settings`.
pub fn node_settings(
    ca: &ClusterCa,
    id: u64,
    socket: UdpSocket,
    peers: &[(u64, SocketAddr)],
    settings: Settings,
) -> anyhow::Result<Node> {
    let identity = ca.issue_node(NodeId(id))?.identity()?;
    node_with(id, identity, ca.certificate(), socket, peers, settings)
}

/// The next message within `within`, if any.
pub async fn recv_within(node: &Node, within: Duration) -> Option<Incoming<Msg>> {
    tokio::time::timeout(within, node.recv())
        .await
        .ok()
        .flatten()
}

/// Sends `msg` from `from` to `to` until `receiver` gets a message (best-effort messages
/// may be lost, like the protocol's own); returns what arrived.
pub async fn send_until_received(
    from: &Node,
    to: u64,
    receiver: &Node,
    msg: Msg,
    delivery: Delivery,
) -> anyhow::Result<Incoming<Msg>> {
    for _ in 0..20 {
        from.send(NodeId(to), msg.clone(), delivery);
        if let Some(incoming) = recv_within(receiver, Duration::from_millis(250)).await {
            return Ok(incoming);
        }
    }
    anyhow::bail!("{msg:?} never arrived")
}

/// Waits until `cond` holds for the node's stats, or fails after two seconds.
pub async fn stats_eventually(
    node: &Node,
    what: &str,
    cond: impl Fn(&Stats) -> bool,
) -> anyhow::Result<Stats> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let stats = node.stats();
        if cond(&stats) {
            return Ok(stats);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}: {stats:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A raw quinn client presenting `issued` (its whole chain), trusting `ca` with standard
/// name checks (a node's certificate binds `server_name(id)`), connected to node
/// `target_id` at `target`.
pub async fn raw_connect(
    issued: &IssuedCert,
    ca: &CaCertificate,
    target: SocketAddr,
    target_id: u64,
) -> anyhow::Result<(quinn::Endpoint, quinn::Connection)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    crypto.alpn_protocols = vec![gen_paxos_quic::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(quic_transport_config());
    raw_connect_with(config, target, target_id).await
}

/// A raw quinn client with an arbitrary client configuration.
pub async fn raw_connect_with(
    config: quinn::ClientConfig,
    target: SocketAddr,
    target_id: u64,
) -> anyhow::Result<(quinn::Endpoint, quinn::Connection)> {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(config);
    let connecting = endpoint.connect(target, &gen_paxos_quic::server_name(NodeId(target_id)))?;
    let conn = tokio::time::timeout(Duration::from_secs(2), connecting).await??;
    Ok((endpoint, conn))
}

/// The transport parameters of [`settings`], for hand-built client configurations.
pub fn quic_transport_config() -> Arc<quinn::TransportConfig> {
    let mut config = quinn::TransportConfig::default();
    config.initial_rtt(Duration::from_millis(10));
    Arc::new(config)
}

/// A frame as it travels on a node's stream: 4-byte big-endian length, then the frame.
pub fn stream_frame(frame: &[u8]) -> Vec<u8> {
    let mut out = (frame.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(frame);
    out
}

/// A hand-made QUIC server presenting `issued` (any certificate, even one no node would
/// start with) with the gen-paxos ALPN and no client authentication: an impostor to dial.
pub fn raw_server(issued: &gen_paxos_quic::IssuedCert) -> anyhow::Result<quinn::Endpoint> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![gen_paxos_quic::ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    Ok(quinn::Endpoint::server(server, "127.0.0.1:0".parse()?)?)
}
