//! Identities: nodes, owners and lease names.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A node's identity in the cluster, fixed by configuration (and, over QUIC, bound in the
/// node's certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One run of a node's process. Every process start must use a different value (a counter
/// kept in a state directory, or a random 64-bit value), so that a restarted node is a
/// different lease owner (docs/PROTOCOL.md "Owner identity", T4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Incarnation(pub u64);

/// Who owns a lease: the node *and* the process run. After a restart a node is a different
/// owner, and its ballots may compare below its old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// The node.
    pub node: NodeId,
    /// The process run of that node.
    pub incarnation: Incarnation,
}

/// The name of one independent lease (one election). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LeaseName(Arc<str>);

impl LeaseName {
    /// Longest accepted name, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Makes a lease name. Names are 1 to [`LeaseName::MAX_LEN`] bytes of UTF-8 without
    /// control characters.
    pub fn new(name: impl AsRef<str>) -> Result<Self, crate::Error> {
        let name = name.as_ref();
        if name.is_empty() || name.len() > Self::MAX_LEN || name.chars().any(char::is_control) {
            return Err(crate::Error::InvalidLeaseName(
                name.chars().take(64).collect(),
            ));
        }
        Ok(LeaseName(Arc::from(name)))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a name that arrived from the network is well formed.
    pub(crate) fn is_valid(&self) -> bool {
        !self.0.is_empty() && self.0.len() <= Self::MAX_LEN && !self.0.chars().any(char::is_control)
    }
}

impl fmt::Display for LeaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
