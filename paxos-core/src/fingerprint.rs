//! What the nodes of one cluster must agree on, and a digest of it that travels with every
//! batch of messages (the cluster-fingerprint rule, F1–F3 of docs/PROTOCOL.md).
//!
//! Two nodes that disagree on the voter set can form majorities that do not intersect, and
//! two nodes that disagree on the lease duration or `rho` derive different exclusions and
//! quarantines: either breaks exclusivity silently. So every node derives a [`Fingerprint`]
//! of those settings, and a node refuses every message whose sender's fingerprint differs
//! from its own.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::id::NodeId;

/// The version of the lease protocol this crate speaks; part of every fingerprint.
pub const PROTOCOL_VERSION: u16 = 1;

/// The settings every node of a cluster must share.
///
/// Two nodes whose fingerprints differ never count each other's messages, and a node that
/// hears from one of its own voters with a different fingerprint stops acting altogether
/// until it matches again (see [`crate::Node::handle_message`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Fingerprint {
    /// [`PROTOCOL_VERSION`] of the node.
    pub protocol: u16,
    /// The runtime's wire-format version ([`crate::Config::wire_version`]).
    pub wire: u16,
    /// The optional cluster name ([`crate::Config::cluster`]); empty if none.
    pub cluster: String,
    /// The voter set, sorted.
    pub voters: Vec<NodeId>,
    /// The observers, sorted.
    pub observers: Vec<NodeId>,
    /// `D_P`.
    pub lease_duration: Duration,
    /// The clock-rate bound.
    pub rho: f64,
}

/// One field on which two fingerprints differ, with both values written out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Difference {
    /// The field's name (`voters`, `observers`, `lease_duration`, `rho`, `cluster`,
    /// `protocol`, `wire`).
    pub field: &'static str,
    /// This node's value.
    pub ours: String,
    /// The peer's value.
    pub theirs: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: ours {}, theirs {}",
            self.field, self.ours, self.theirs
        )
    }
}

/// Field by field, `rho` by its bits (so equality is an equivalence even for a NaN a peer
/// might send).
impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.protocol == other.protocol
            && self.wire == other.wire
            && self.cluster == other.cluster
            && self.voters == other.voters
            && self.observers == other.observers
            && self.lease_duration == other.lease_duration
            && self.rho.to_bits() == other.rho.to_bits()
    }
}

impl Eq for Fingerprint {}

impl Fingerprint {
    /// The fingerprint of a configuration (lists are sorted here).
    pub fn new(
        cluster: &str,
        wire: u16,
        voters: &[NodeId],
        observers: &[NodeId],
        lease_duration: Duration,
        rho: f64,
    ) -> Self {
        let sorted = |ids: &[NodeId]| {
            let mut v = ids.to_vec();
            v.sort_unstable();
            v
        };
        Fingerprint {
            protocol: PROTOCOL_VERSION,
            wire,
            cluster: cluster.to_string(),
            voters: sorted(voters),
            observers: sorted(observers),
            lease_duration,
            rho,
        }
    }

    /// A 64-bit digest of every field, the same on every platform and build: FNV-1a over
    /// a canonical encoding, then a 64-bit finalizer. It is compared, never trusted: a
    /// peer with the same digest and another configuration would have to be built to
    /// collide on purpose, and a peer that lies about its configuration can lie anyway.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::default();
        h.write(b"gen-paxos fingerprint");
        h.write(&self.protocol.to_le_bytes());
        h.write(&self.wire.to_le_bytes());
        h.write(&(self.cluster.len() as u64).to_le_bytes());
        h.write(self.cluster.as_bytes());
        for ids in [&self.voters, &self.observers] {
            h.write(&(ids.len() as u64).to_le_bytes());
            for id in ids {
                h.write(&id.0.to_le_bytes());
            }
        }
        h.write(&self.lease_duration.as_secs().to_le_bytes());
        h.write(&self.lease_duration.subsec_nanos().to_le_bytes());
        h.write(&self.rho.to_bits().to_le_bytes());
        let mut x = h.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^= x >> 33;
        x
    }

    /// The fields on which `theirs` differs from this one, in a fixed order.
    pub fn differences(&self, theirs: &Fingerprint) -> Vec<Difference> {
        let ids = |v: &[NodeId]| {
            let list: Vec<String> = v.iter().map(ToString::to_string).collect();
            format!("[{}]", list.join(","))
        };
        let mut out = Vec::new();
        let mut diff = |field, ours: String, theirs: String| {
            if ours != theirs {
                out.push(Difference {
                    field,
                    ours,
                    theirs,
                });
            }
        };
        diff("voters", ids(&self.voters), ids(&theirs.voters));
        diff("observers", ids(&self.observers), ids(&theirs.observers));
        diff(
            "lease_duration",
            format!("{:?}", self.lease_duration),
            format!("{:?}", theirs.lease_duration),
        );
        if self.rho.to_bits() != theirs.rho.to_bits() {
            diff("rho", format!("{}", self.rho), format!("{}", theirs.rho));
        }
        diff(
            "cluster",
            format!("{:?}", self.cluster),
            format!("{:?}", theirs.cluster),
        );
        diff(
            "protocol",
            self.protocol.to_string(),
            theirs.protocol.to_string(),
        );
        diff("wire", self.wire.to_string(), theirs.wire.to_string());
        out
    }
}

/// FNV-1a, 64 bits: fixed here so nodes built apart agree.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().copied().map(NodeId).collect()
    }

    fn fp(voters: &[u64]) -> Fingerprint {
        Fingerprint::new("", 1, &ids(voters), &[], Duration::from_secs(2), 0.001)
    }

    #[test]
    fn equal_settings_give_equal_digests_whatever_the_order() {
        assert_eq!(fp(&[1, 2, 3]).digest(), fp(&[3, 1, 2]).digest());
        assert!(fp(&[1, 2, 3]).differences(&fp(&[2, 3, 1])).is_empty());
    }

    #[test]
    fn every_field_changes_the_digest_and_is_named() {
        let base = fp(&[1, 2, 3]);
        let mut variants = Vec::new();
        variants.push(("voters", fp(&[1, 2])));
        let mut v = base.clone();
        v.observers = ids(&[4]);
        variants.push(("observers", v));
        let mut v = base.clone();
        v.lease_duration = Duration::from_millis(2001);
        variants.push(("lease_duration", v));
        let mut v = base.clone();
        v.rho = 0.002;
        variants.push(("rho", v));
        let mut v = base.clone();
        v.cluster = "prod".into();
        variants.push(("cluster", v));
        let mut v = base.clone();
        v.protocol += 1;
        variants.push(("protocol", v));
        let mut v = base.clone();
        v.wire += 1;
        variants.push(("wire", v));
        for (field, other) in variants {
            assert_ne!(base.digest(), other.digest(), "{field}");
            let diffs = base.differences(&other);
            assert_eq!(diffs.len(), 1, "{field}: {diffs:?}");
            assert_eq!(diffs[0].field, field);
        }
        // The same ids moved from voters to observers are a different cluster.
        let a = Fingerprint::new(
            "",
            1,
            &ids(&[1, 2]),
            &ids(&[3]),
            Duration::from_secs(1),
            0.0,
        );
        let b = Fingerprint::new(
            "",
            1,
            &ids(&[1]),
            &ids(&[2, 3]),
            Duration::from_secs(1),
            0.0,
        );
        assert_ne!(a.digest(), b.digest());
        let text = fp(&[1, 2, 3]).differences(&fp(&[3, 4, 5]))[0].to_string();
        assert_eq!(text, "voters: ours [1,2,3], theirs [3,4,5]");
    }

    #[test]
    fn the_digest_is_fixed_across_builds() {
        // Nodes built apart (other compilers, other platforms) must agree: pin one value.
        assert_eq!(fp(&[1, 2, 3]).digest(), fp(&[1, 2, 3]).digest());
        let pinned = fp(&[1, 2, 3]).digest();
        assert_eq!(pinned, 0x5a40_5e4d_6bf6_1c84, "digest changed: {pinned:#x}");
    }
}
