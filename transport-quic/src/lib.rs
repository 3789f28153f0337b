//! The gen-paxos node-to-node transport: QUIC (quinn) with mutual TLS (rustls), and the
//! rcgen tooling that makes the cluster's certificates.
//!
//! Nobody without a certificate from the cluster's CA gets a word in, and a peer's
//! identity is its certificate, not what it claims: every message handed to the runtime
//! carries the [`NodeId`](gen_paxos_core::NodeId) bound in the sender's verified certificate.
//! [`QuicTransport`] implements [`gen_paxos_election::Transport`].
//!
//! A service usually wants a whole node in one call, [`QuicNode`]: the member list, the
//! certificate directory (from `gen-paxos certs`) and the lease duration, given once:
//!
//! ```no_run
//! use std::time::Duration;
//! use gen_paxos_core::NodeId;
//! use gen_paxos_election::{Candidacy, NoCallbacks};
//! use gen_paxos_quic::QuicNode;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let election = QuicNode::new(NodeId(1), "certs")
//!     .voters([(1, "127.0.0.1:7001"), (2, "127.0.0.1:7002"), (3, "127.0.0.1:7003")])
//!     .lease_duration(Duration::from_secs(2))
//!     .start()?;
//! let lease = election.join("db", NoCallbacks, Candidacy::candidate()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! The transport by itself, for other runtimes or messages:
//!
//! ```no_run
//! use gen_paxos_election::{Delivery, Transport};
//! use gen_paxos_core::NodeId;
//! use gen_paxos_quic::{ClusterCa, Config, QuicTransport};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Normally: `write_cluster_certs` once, then `Identity::load` / `CaCertificate::load`.
//! let ca = ClusterCa::generate("example")?;
//! let config = Config::new(
//!     NodeId(1),
//!     "127.0.0.1:7001".parse()?,
//!     ca.issue_node(NodeId(1))?.identity()?,
//!     ca.certificate(),
//! )
//! .with_peer(NodeId(2), "127.0.0.1:7002".parse()?);
//! let transport = QuicTransport::<String>::bind(config)?;
//! transport.send(NodeId(2), "hello".to_string(), Delivery::BestEffort);
//! if let Some(incoming) = transport.recv().await {
//!     println!("{} says {}", incoming.from, incoming.message);
//! }
//! transport.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! And the smallest thing that runs: certificates bind the identity.
//!
//! ```
//! use gen_paxos_core::NodeId;
//! use gen_paxos_quic::{ClusterCa, PeerIdentity};
//!
//! let ca = ClusterCa::generate("example").unwrap();
//! let node = ca.issue_node(NodeId(3)).unwrap().identity().unwrap();
//! assert_eq!(node.peer_identity().unwrap(), PeerIdentity::Node(NodeId(3)));
//! ```
//!
//! # Certificates
//!
//! [`ClusterCa`] creates the cluster CA and issues node certificates (identity URI
//! `gen-paxos://node/<id>` plus DNS name `node-<id>.gen-paxos`, both server and client
//! authentication) and client certificates (`gen-paxos://client`, client authentication
//! only); see [`PeerIdentity`]. [`write_cluster_certs`] writes a whole set to a directory with
//! owner-only private keys and refuses to overwrite without `force`.
//!
//! # Authentication
//!
//! TLS 1.3 only, ring provider passed explicitly, ALPN [`tls::ALPN`], no resumption, no
//! 0-RTT. An accepting node requires a client certificate that chains to the CA and binds
//! a configured peer's id, another node id of the CA as a *guest* (if
//! [`Settings::accept_guests`]: its messages reach `recv` under its id and it can be
//! answered with datagrams, so the runtime can tell a misconfigured node why it is
//! refused), or "client" (if [`Settings::accept_clients`]); its own id is refused during
//! the handshake. A dialling node requires the server's certificate to chain to the CA and
//! bind the id it dialled. No chain may hold more intermediates than the CA's path-length
//! constraint allows. Refusals are logged at debug level and counted in
//! [`Stats::rejected_handshakes`]. [`QuicTransport::bind`] refuses to start with a key
//! that does not match its certificate, a certificate the CA does not vouch for, or two
//! peers at one address.
//!
//! # Handshake admission
//!
//! Every source proves its address with a stateless QUIC retry before anything is kept
//! for it; each configured peer's address then has [`Settings::peer_handshake_slots`] of
//! its own, and everyone else shares [`Settings::max_handshakes`] within
//! [`Settings::max_handshakes_per_ip`], [`Settings::handshake_rate_per_ip`] and
//! [`Settings::handshake_rate`]. A flood of never-finished handshakes keeps no configured
//! peer out. Status clients idle for [`Settings::client_idle_timeout`] are closed.
//!
//! # Wire format
//!
//! A frame is a version byte ([`codec::WIRE_VERSION`]) followed by the bincode 2 encoding
//! of the message; frames are limited to [`Settings::max_frame_len`] (1 MiB by default).
//!
//! - [`Delivery::BestEffort`](gen_paxos_election::Delivery::BestEffort) messages go as one QUIC
//!   datagram each when the frame fits the connection's current maximum datagram size,
//!   and otherwise on the stream below. Lease messages are small, latency-sensitive and
//!   retransmitted by the protocol itself, so a datagram is the right fit: it is sent
//!   at once, never retransmitted, never waits behind a lost packet of another message,
//!   and a lost one costs nothing later. A stream would add retransmission of stale
//!   lease messages and head-of-line blocking, which is exactly what a lease does not want.
//! - [`Delivery::Reliable`](gen_paxos_election::Delivery::Reliable) messages go on one long-lived
//!   unidirectional stream per connection and direction, each frame preceded by its length
//!   (4 bytes, big-endian). Reliable messages on one connection therefore arrive complete
//!   and in order while it lives; if the connection is replaced, later ones take the new
//!   connection.
//!
//! # Connections
//!
//! One quinn endpoint per node serves and dials. A peer is dialled lazily, on the first
//! message for it, and the connection is reused for everything in both directions: a node
//! that already has a connection its peer dialled sends on that one. If both dial at once
//! (the two connections are established within [`Settings::connect_timeout`] of each
//! other), both connections are kept and read from, and both ends send on the one dialled
//! by the lower node id, so they converge. Otherwise the newer connection wins: a peer dials
//! only when it has no live connection to us (it restarted, or its end died), so its new
//! connection replaces both the older accepted one and an older one we dialled, which are
//! closed. Failed dials are retried with capped exponential backoff and jitter
//! ([`Settings::reconnect_backoff_min`] .. [`Settings::reconnect_backoff_max`]); dials
//! and handshakes time out after [`Settings::connect_timeout`]. Keep-alive and idle
//! timeout are settings; [`Settings::for_lease`] derives them from the lease duration.
//!
//! A node that crashes and restarts on the same address with the same key is noticed at
//! once by peers still holding connections to its previous run: the QUIC stateless-reset
//! key and connection-id key are derived from the node's private key, so the new run
//! answers packets for old connections with a reset the peers trust, and they redial
//! instead of waiting out the idle timeout.
//!
//! Nothing queues without bound: each peer has a send queue of
//! [`Settings::send_queue_len`] messages that drops its oldest message when full
//! ([`Stats::dropped_queue_full`]); received messages wait in a queue of
//! [`Settings::recv_queue_len`] (datagrams are dropped when it is full, streams wait,
//! which pushes back on that peer only); handshakes in progress, status clients, streams
//! per connection and flow-control windows are bounded.
//!
//! # Bad input
//!
//! Garbage datagrams never get past quinn's packet parsing; failed handshakes are refused
//! and counted. A frame from an authenticated node that does not decode (unknown version,
//! bad encoding, trailing bytes) or is longer than the limit is dropped and counted
//! ([`Stats::malformed_frames`], [`Stats::oversized_frames`]); an oversized stream frame
//! is skipped without being buffered, so the stream stays usable.
//!
//! **The bad-frame rule:** a connection that delivers more than
//! [`Settings::bad_frame_limit`] bad frames (default 16) within one
//! [`Settings::bad_frame_window`] (default 10 s; windows are fixed, starting at the first
//! bad frame) is closed with application error [`code::BAD_FRAMES`]
//! ([`Stats::closed_for_bad_frames`]). The peer may reconnect; its certificate still
//! admits it.
//!
//! # Status clients
//!
//! A tool holding `client.pem` can ask a node one question at a time with
//! [`StatusClient`]; the runtime answers [`ClientRequest`]s taken from
//! [`QuicTransport::client_requests`]. See [`StatusClient`].
//!
//! # Observability
//!
//! Each peer's driver runs in a `peer` span (fields `node`, `peer`), each connection in a
//! `connection` span; [`QuicTransport::stats`] returns a [`Stats`] snapshot.
#![warn(missing_docs)]

mod accept;
mod certs;
mod client;
pub mod code;
/// The frame codec, shared with the runtime (it lives in [`gen_paxos_election::codec`]).
pub use gen_paxos_election::codec;
mod config;
mod error;
mod gate;
mod guests;
mod identity;
mod node;
mod outgoing;
mod paths;
mod peer;
mod receive;
mod shared;
mod stats;
mod tls;
mod transport;

pub use certs::{
    CA_VALIDITY, CaCertificate, ClusterCa, Identity, IssuedCert, LEAF_VALIDITY, Validity,
    add_client_cert, add_node_certs, node_file_names, write_cluster_certs,
};
pub use client::{ClientRequest, ClientRequests, StatusClient};
pub use codec::CodecError;
pub use config::{Config, PeerAddr, Settings};
pub use error::{Cause, CertError, Error};
pub use identity::{PeerIdentity, URI_PREFIX, server_name};
pub use node::{QuicNode, StartError};
pub use stats::{Stats, StatsHandle};
pub use tls::ALPN;
pub use transport::QuicTransport;
