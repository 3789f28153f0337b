#![warn(missing_docs)]
mod ballot;
mod error;
mod id;
mod time;

pub use ballot::Ballot;
pub use error::Error;
pub use id::{Incarnation, LeaseName, NodeId, Owner};

/// Counters (placeholder).
#[derive(Debug, Default, Clone)]
pub struct Stats;
pub use time::Timestamp;
