//! Deterministic, sans-IO PaxosLease: lease ownership per term for many named leases.
//!
//! `paxos-core` decides which node holds each named lease, following the corrected
//! PaxosLease rules of the project's `docs/PROTOCOL.md` (P1–P7, A1–A4, L1, T1–T4). It reads no
//! clock, opens no socket and spawns no task: every input carries the node's local
//! monotonic time, and everything the node wants done is pulled from it, in the style of
//! `quinn-proto`. The `election` crate wraps it in a tokio runtime; tests and the
//! simulator drive it by hand.
//!
//! Beyond the protocol contract, the core defends against a wrong configuration and a
//! hostile but authenticated peer (the rules are named in the project README's guarantee
//! section): every batch is admitted only with the receiver's own cluster
//! [`Fingerprint`] digest (F1), a node whose voter runs with another fingerprint stops
//! acting (F2), nodes exchange [`Hello`]s to learn each other's fingerprints (F3), ballots
//! far above the wall clock are dropped ([`MAX_BALLOT_LEAD`], B1), observers' ballots are
//! dropped (B2), and acceptor state of names unused for a quarantine is forgotten.
//!
//! # Driving a node by hand
//!
//! ```
//! use std::time::Duration;
//! use gen_paxos_core::{Config, Event, Incarnation, LeaseName, Node, NodeId, Timestamp};
//!
//! // A one-voter cluster, so no network is needed: the node is its own majority. A voter
//! // set of one must be confirmed, or a node started without its peers would elect itself.
//! let mut config = Config::new(NodeId(1), vec![NodeId(1)]);
//! config.single_node = true;
//! config.set_lease_duration(Duration::from_secs(1));
//! let start = Timestamp::ZERO;
//! let mut node = Node::new(config, start, Incarnation(7), 0, 42)?;
//! let lease = LeaseName::new("db-primary")?;
//! node.join(start, lease.clone(), Some(0))?;
//!
//! // Nothing happens during the restart quarantine (A4); then the node elects itself.
//! let mut now = start;
//! let (token, deadline) = loop {
//!     now = node.poll_timeout().expect("a candidate always has a timer");
//!     node.handle_timeout(now);
//!     assert!(node.poll_transmit().is_none(), "nobody else to talk to");
//!     if let Some(Event::Elected { token, deadline, .. }) = node.poll_event() {
//!         break (token, deadline);
//!     }
//! };
//! assert!(now >= node.quarantine_until());
//! assert!(node.is_master(now, &lease));
//! assert_eq!(node.master(&lease).map(|m| m.token), Some(token));
//! // Authority ends a safety margin before the lease deadline, one lease after Prepare.
//! assert!(deadline < now + Duration::from_secs(1));
//! # Ok::<(), gen_paxos_core::Error>(())
//! ```
#![warn(missing_docs)]

mod acceptor;
mod acceptors;
pub mod ask;
mod attempt;
mod ballot;
mod config;
mod context;
mod durable;
mod error;
mod event;
mod fingerprint;
mod id;
mod learner;
mod lease;
pub mod log;
mod message;
mod node;
mod outbox;
mod pacing;
mod peers;
mod proposer;
mod replication;
mod rng;
mod state_hash;
mod stats;
mod succession;
mod time;
mod timers;
mod unsafe_rules;

#[cfg(feature = "sim")]
pub mod sim;

pub use ballot::Ballot;
pub use config::{Config, MAX_PRIORITY, MAX_VOTERS, Timing, acceptor_duration};
pub use durable::{PersistRequest, Record};
pub use error::Error;
pub use event::{Event, Master, SurrenderReason};
pub use fingerprint::{Difference, Fingerprint, PROTOCOL_VERSION};
pub use id::{Incarnation, LeaseName, NodeId, Owner};
pub use message::{Envelope, Hello, LiveLease, Message, Transmit};
pub use node::Node;
pub use stats::Stats;
pub use time::Timestamp;
#[cfg(feature = "unsafe-rules")]
pub use unsafe_rules::UnsafeRule;

/// B1: a ballot whose counter is more than this above the receiving node's wall-clock
/// floor (Unix milliseconds, see [`Node::raise_ballot_floor`]) is dropped and counted
/// ([`Stats::dropped_absurd_ballot`]): 2^42, about 139 years of milliseconds.
///
/// Honest counters start at the wall clock in milliseconds and grow by one per attempt of
/// one lease, so only a forged or corrupted ballot comes near it, and a node whose wall
/// clock is decades behind still takes every honest ballot. Because the bound follows
/// the floor, no sequence of messages can push a counter past about `2^43` within this
/// century, far from the `2^64` at which it would wrap: ballots cannot be exhausted.
pub const MAX_BALLOT_LEAD: u64 = 1 << 42;
