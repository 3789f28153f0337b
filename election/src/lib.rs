//! gen-paxos runtime: lease-based master election with an Erlang gen_leader-style API.
//!
//! A service implements [`Leader`], starts a node with [`Election::start`] and joins any
//! number of named leases. At every moment it knows whether it is the single writer of a
//! lease — [`LeaseHandle::is_master`], or a [`LeaseGuard`] checked right before acting —
//! with a fencing token ([`LeaseGuard::token`]) to prove it to resources that can reject
//! stale writers. Underneath, [`gen_paxos_core`] runs PaxosLease; this crate owns the clock,
//! the transport and the callbacks.
//!
//! # Implementing `Leader`
//!
//! ```
//! use gen_paxos_election::memory::MemoryNetwork;
//! use gen_paxos_election::{
//!     Candidacy, Config, Election, Leader, LeaseInfo, NodeId, SurrenderInfo, async_trait,
//! };
//! use serde::{Deserialize, Serialize};
//!
//! /// What the nodes of this service say to each other.
//! #[derive(Debug, Serialize, Deserialize)]
//! enum Msg {
//!     Increment,
//!     Value(u64),
//! }
//!
//! /// A counter only the master may change.
//! struct Counter {
//!     value: u64,
//! }
//!
//! #[async_trait]
//! impl Leader for Counter {
//!     type Message = Msg;
//!
//!     async fn on_elected(&mut self, lease: &LeaseInfo) -> Option<Msg> {
//!         println!("master of {} with fencing token {}", lease.name, lease.token);
//!         // The sync payload: the losing candidates get it in `on_surrendered`.
//!         Some(Msg::Value(self.value))
//!     }
//!
//!     async fn on_surrendered(&mut self, info: SurrenderInfo<Msg>) {
//!         println!("not master of {}: {}", info.lease, info.reason);
//!         if let Some(Msg::Value(value)) = info.sync {
//!             self.value = value;
//!         }
//!     }
//!
//!     async fn handle_leader_call(&mut self, _from: NodeId, request: Msg) -> Option<Msg> {
//!         match request {
//!             Msg::Increment => {
//!                 self.value += 1;
//!                 Some(Msg::Value(self.value))
//!             }
//!             Msg::Value(_) => None,
//!         }
//!     }
//! }
//!
//! // Paused time: the election's timers run on tokio's virtual clock.
//! #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let voters = vec![NodeId(1), NodeId(2), NodeId(3)];
//!     // In production: `gen_paxos_quic::QuicTransport::<gen_paxos_election::Wire>::bind(...)`.
//!     let network = MemoryNetwork::new(42);
//!     let mut leases = Vec::new();
//!     for &id in &voters {
//!         let node = Election::start(Config::new(id, voters.clone()), network.transport(id))?;
//!         let lease = node.join("counter", Counter { value: 0 }, Candidacy::candidate());
//!         leases.push(lease.await?);
//!     }
//!
//!     // The first election follows the restart quarantine (one acceptor duration).
//!     leases[0].watch().wait_for(|master| master.is_some()).await?;
//!     // Any node may call the master.
//!     let reply = leases[2].call(Msg::Increment).await?;
//!     assert!(matches!(reply, Msg::Value(1)));
//!     let master = leases[0].master().ok_or("no master")?;
//!     let masters = leases.iter().filter(|l| l.is_master()).count();
//!     assert_eq!(masters, 1);
//!     assert!(leases.iter().any(|l| l.election().id() == master.node && l.is_master()));
//!
//!     for lease in &leases {
//!         lease.election().shutdown().await;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # How it runs
//!
//! - **One driver task per node** owns the [`gen_paxos_core::Node`], the [`Transport`] and
//!   the clock (tokio's [`Instant`](tokio::time::Instant), so tests run on paused time).
//!   After every input it applies the core's events — updating the state that
//!   [`LeaseGuard::is_valid`], `is_master` and `master` read, queueing callbacks,
//!   publishing [`ElectionEvent`]s — and only then sends the core's messages, so a
//!   Release never leaves before the application was told to stop (P6).
//! - **One callback task per lease** runs that lease's `Leader` callbacks one at a time,
//!   fed by a channel: the driver never awaits user code, so a slow callback cannot delay
//!   renewal, and a panicking one only ends this node's candidacy for its own lease.
//! - **Surrender before the deadline.** The core ends authority at `d - margin`
//!   (`surrender_margin`) on a timer; guards and `is_master` compare the same deadline
//!   with the clock themselves, so they turn false on time even if the driver is late.
//!   `on_surrendered` is queued at that moment; it runs then unless another callback of the
//!   same lease is still running, which is why code acting as master checks its guard.
//! - **Renewal** starts when `renew_fraction` (1/3) of the lease has elapsed and retries
//!   until the surrender point. Waiting candidates try again when the learned lease runs
//!   out, or at once after a Release ([`Election::resign`], shutdown, a dropped handle).
//! - **Calls** go to the master the node knows; they wait for one if none is known, and
//!   fail with a [`CallError`] after `call_timeout` or as soon as the master changes.
//! - **Liveness** of peers (for [`Leader::on_peer_down`], [`Election::alive`],
//!   [`Election::down`]) comes from heartbeats every `heartbeat_interval`; a peer silent
//!   for `peer_timeout` is down. It is advisory: the lease never depends on it.
//!
//! # Membership
//!
//! The voter set is fixed by configuration and must be the same on every node. To change
//! it, stop the cluster and wait out the old leases (one acceptor duration `D_A`,
//! [`Config::acceptor_duration`]) before starting with the new set.
//!
//! Nodes check that they agree: every [`Wire`] message carries the sender's cluster
//! fingerprint digest ([`Config::fingerprint`]: voters, observers, lease duration, `rho`,
//! versions, [`Config::cluster_name`]), a message with another digest is refused whole,
//! and a node that hears one of its voters with another fingerprint stops acting until
//! they match ([`Election::in_conflict`], [`ElectionEvent::ConfigMismatch`], the
//! `config-mismatch` surrender reason). Refusals are logged at error level once per peer
//! and fingerprint, naming the fields that differ; [`Election::peer_configs`] and the
//! status reply list them. A voter set of one must be confirmed ([`Config::single_node`]).
//!
//! # Transports and the wire format
//!
//! The runtime speaks [`Wire`] messages through any [`Transport<Wire>`](Transport):
//! `transport-quic`'s `QuicTransport` in production, `memory::MemoryTransport` (feature
//! `test-util`) in tests. User payloads are encoded to bytes with [`codec`], the one module
//! that knows bincode, which transports use for their frames as well.
#![warn(missing_docs)]

mod callbacks;
pub mod codec;
mod config;
mod driver;
mod duration;
mod error;
mod event_line;
mod events;
mod handle;
mod lag;
mod leader;
#[cfg(feature = "test-util")]
pub mod memory;
pub mod metrics;
mod peer_configs;
mod replicated;
mod shared;
mod state_machine;
mod status;
pub mod storage;
pub mod transport;
mod view;
mod wire;

pub use async_trait::async_trait;
pub use codec::CodecError;
pub use config::{Config, ConfigError};
pub use duration::{DurationError, parse_duration};
pub use error::{CallError, Error};
pub use event_line::{EventLine, LineEvent};
pub use events::ElectionEvent;
pub use gen_paxos_core::{Ballot, Fingerprint, LeaseName, NodeId, SurrenderReason};
pub use handle::{Candidacy, Election, LeaseHandle};
pub use leader::{Leader, LeaseInfo, NoCallbacks, SurrenderInfo};
pub use metrics::{ElectionMetrics, Health, Readiness};
pub use peer_configs::PeerConfig;
pub use replicated::{AppendError, AskError, ReadError, ReplicatedLease, StateMachine};
pub use status::{LeaseStatus, Load, StatusReply, StatusRequest};
pub use transport::{Delivery, Incoming, Transport};
pub use view::{LeaseGuard, MasterInfo};
pub use wire::Wire;
