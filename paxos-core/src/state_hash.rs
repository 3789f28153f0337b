//! Hashing a node's state for the model checker (`sim::check`): two nodes that hash alike
//! behave alike from here on, so the checker may merge the states that hold them.
//!
//! Most of the state derives [`Hash`]. A few types hash by hand, next to their
//! definitions (`Node`, `Setup`, `Acceptors`, `AskAcceptors`, `Peers`, `Outbox`): hash maps
//! are hashed in key order with [`hash_map_sorted`] (two maps with the same entries hash
//! alike whatever order they were filled in), and counters kept only for
//! [`crate::Stats`] are left out (they never change what a node does, and would keep
//! equal states apart).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Hashes `map` in key order.
pub(crate) fn hash_map_sorted<K: Ord + Hash, V: Hash, H: Hasher>(
    map: &HashMap<K, V>,
    state: &mut H,
) {
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries.hash(state);
}
