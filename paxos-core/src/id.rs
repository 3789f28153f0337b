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
#[derive(Debug, Clone, PartialOrd, Ord, Serialize)]
pub struct LeaseName(Arc<str>);

/// A name decoded from the text in one allocation: serde's own `Arc<str>` builds a
/// `Box<str>` first and copies it into the `Arc` (two allocations and a copy for every
/// message of every frame, 5% of a node holding 10,000 leases in a profile). The text is
/// not checked here: the core drops a message whose name is not well formed.
impl<'de> Deserialize<'de> for LeaseName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = LeaseName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a lease name")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<LeaseName, E> {
                Ok(LeaseName(Arc::from(text)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// Two clones of one name compare equal without reading the text: the runtime looks its
/// leases up by the names the core's events carry, which are clones of the names it joined
/// with, and with many leases reading the text is a cache miss. (`Arc<str>` itself has no
/// such shortcut: std's applies to sized types only.)
impl PartialEq for LeaseName {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for LeaseName {}

impl std::hash::Hash for LeaseName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// A name is looked up by its text: it hashes, compares and orders as its `str` does.
impl std::borrow::Borrow<str> for LeaseName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for LeaseName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

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

#[cfg(test)]
mod tests {
    use super::LeaseName;
    use std::collections::HashMap;

    #[test]
    fn names_are_equal_by_text_whether_or_not_they_share_an_allocation() {
        let a = LeaseName::new("orders").expect("valid");
        let clone = a.clone();
        let twin = LeaseName::new("orders").expect("valid");
        let other = LeaseName::new("orderz").expect("valid");
        assert_eq!(a, clone);
        assert_eq!(a, twin, "a separate allocation with the same text");
        assert_ne!(a, other);
        let mut map = HashMap::new();
        map.insert(a, 1);
        assert_eq!(map.get(&twin), Some(&1), "hashes follow the text");
        assert_eq!(map.get(&clone), Some(&1));
        assert_eq!(map.get(&other), None);
    }
}
