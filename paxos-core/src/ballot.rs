//! Ballots, which double as fencing tokens.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{Incarnation, NodeId, Owner};

/// A proposal number: `(counter, incarnation, node)`, compared in that order.
///
/// The ballot of an active lease is its **fencing token**. Ballots are unique per proposer
/// run (the incarnation differs on every process start, T4) and the counter starts at a
/// wall-clock floor and is raised above every ballot seen in a rejection, so tokens keep
/// increasing from one owner to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    /// Raised on every attempt.
    pub counter: u64,
    /// The proposer's process run.
    pub incarnation: Incarnation,
    /// The proposer.
    pub node: NodeId,
}

impl Ballot {
    /// The owner a ballot proposes: its node in its incarnation.
    pub fn owner(&self) -> Owner {
        Owner {
            node: self.node,
            incarnation: self.incarnation,
        }
    }

    /// The token as three integers, compared lexicographically (for JSON and logs).
    pub fn to_array(&self) -> [u64; 3] {
        [self.counter, self.incarnation.0, self.node.0]
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:x}.{}",
            self.counter, self.incarnation.0, self.node.0
        )
    }
}
