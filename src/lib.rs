//! gen-paxos: lease-based master election built on PaxosLease.
//!
//! This facade re-exports the workspace's crates: [`core`] (the deterministic protocol),
//! [`election`] (the tokio runtime, the `Leader` trait and the election handle) and
//! [`quic`] (the QUIC transport with mutual TLS).
//!
//! ```
//! use gen_paxos::core::{Config, NodeId};
//! let config = Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
//! assert!(config.timing().is_ok());
//! ```
#![warn(missing_docs)]

pub use election;
pub use paxos_core as core;
pub use transport_quic as quic;
