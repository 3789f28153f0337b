//! gen-paxos: lease-based master election built on PaxosLease.
//!
//! A service implements [`Leader`] (the gen_leader-style callbacks: elected, surrendered,
//! calls to the master, broadcasts from it), starts a node with [`QuicNode`], and joins
//! named leases. One node at a time holds each lease; it gets a fencing token
//! ([`LeaseInfo::token`]) to hand to what it writes to, and must stop acting when its
//! [`LeaseGuard`] says the lease is over.
//!
//! ```no_run
//! use std::time::Duration;
//! use gen_paxos::{Candidacy, Leader, LeaseInfo, NodeId, QuicNode, SurrenderInfo, async_trait};
//!
//! struct Db;
//!
//! #[async_trait]
//! impl Leader for Db {
//!     type Message = ();
//!     async fn on_elected(&mut self, lease: &LeaseInfo) -> Option<()> {
//!         println!("master of {} with token {}: start writing", lease.name, lease.token);
//!         None
//!     }
//!     async fn on_surrendered(&mut self, info: SurrenderInfo<()>) {
//!         if info.reason.was_master() {
//!             println!("lease over ({}): stop writing", info.reason);
//!         }
//!     }
//! }
//!
//! # async fn run(id: u64) -> Result<(), Box<dyn std::error::Error>> {
//! // The same list on every node; certificates from `gen-paxos certs --nodes 1,2,3`.
//! let election = QuicNode::new(NodeId(id), "certs")
//!     .voters([(1, "127.0.0.1:7001"), (2, "127.0.0.1:7002"), (3, "127.0.0.1:7003")])
//!     .lease_duration(Duration::from_secs(2))
//!     .start()?;
//! election.join("db-primary", Db, Candidacy::candidate()).await?;
//! tokio::signal::ctrl_c().await?;
//! election.shutdown().await; // resigns: another node takes over in milliseconds
//! # Ok(()) }
//! ```
//!
//! The crates behind it, for other uses: [`core`] (the deterministic, sans-IO protocol and
//! its simulator), [`election`] (the tokio runtime and the `Transport` trait, with an
//! in-memory transport for tests) and [`quic`] (the QUIC transport with mutual TLS and the
//! certificate tooling). The `gen-paxos` command-line tool is this package's binary
//! (feature `cli`, on by default; a library user turns default features off). The
//! feature `test-util` adds `election::memory`, an in-memory transport with fault
//! injection for testing a [`Leader`] without sockets.
#![warn(missing_docs)]

/// The README's Rust examples, compiled by `cargo test --doc` so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use gen_paxos_election::storage;
pub use gen_paxos_election::{
    AppendError, AskError, Ballot, CallError, Candidacy, Config, ConfigError, Election,
    ElectionEvent, ElectionMetrics, Error, Fingerprint, Health, Leader, LeaseGuard, LeaseHandle,
    LeaseInfo, LeaseName, MasterInfo, NoCallbacks, NodeId, PeerConfig, ReadError, Readiness,
    ReplicatedLease, StateMachine, StatusReply, StatusRequest, SurrenderInfo, SurrenderReason,
    async_trait,
};
pub use gen_paxos_quic::{QuicNode, StartError};

/// The deterministic, sans-IO PaxosLease core (crate `gen-paxos-core`).
pub use gen_paxos_core as core;
/// The tokio runtime: the `Leader` trait, the election handle, the `Transport` trait
/// (crate `gen-paxos-election`).
pub use gen_paxos_election as election;
/// The QUIC transport with mutual TLS and the certificate tooling (crate `gen-paxos-quic`).
pub use gen_paxos_quic as quic;
