//! Who tries first when a lease becomes free for everyone at once: the priority steps, the
//! lease's *succession order*, and the random waits of retries.

use std::time::Duration;

use crate::config::{MAX_PRIORITY, Timing};
use crate::context::Setup;
use crate::id::{LeaseName, NodeId};
use crate::rng::Rng;

/// How long a candidate of priority `p` waits before trying for a lease that every
/// candidate saw become free at about the same instant (a Release, the expiry of
/// `previous`'s lease, the end of the start-up quarantine): its priority steps, then its
/// place in the lease's succession order times `jitter / voters`. The order ranks the
/// voters other than `previous` by a hash of (lease name, node id), so every node computes
/// the same order without talking, equal candidates never draw the same wait (a random
/// draw collides now and then, and a collision costs a retry of tens of milliseconds), and
/// the leases of a cluster spread over its nodes.
pub(crate) fn succession_wait(
    setup: &Setup,
    lease: &LeaseName,
    p: u8,
    previous: Option<NodeId>,
) -> Duration {
    let name = lease.as_str();
    let key = |node: NodeId| succession_key(name, node);
    let mine = key(setup.id);
    let rank = setup
        .voters
        .iter()
        .filter(|&&v| v != setup.id && Some(v) != previous && key(v) < mine)
        .count();
    let slots = u32::try_from(setup.voters.len().max(1)).unwrap_or(u32::MAX);
    let step = setup.timing.jitter / slots;
    priority_wait(&setup.timing, p) + step * u32::try_from(rank).unwrap_or(u32::MAX)
}

/// Like [`succession_wait`] with a random part of up to one jitter step instead of the
/// succession order: for retries after a collision or a lost lease, where the order
/// already failed once.
pub(crate) fn candidate_wait(timing: &Timing, rng: &mut Rng, p: u8) -> Duration {
    priority_wait(timing, p) + rng.duration(timing.jitter)
}

/// The deterministic part of [`candidate_wait`]: one jitter step per level below the
/// maximum.
pub(crate) fn priority_wait(timing: &Timing, p: u8) -> Duration {
    timing.jitter * u32::from(MAX_PRIORITY.saturating_sub(p))
}

/// The position of `node` in the succession order of lease `name`: FNV-1a over the name,
/// mixed with the node id by a multiplicative constant and MurmurHash3's finalizer. Fixed
/// here so nodes built apart agree (std's hasher may change between releases).
fn succession_key(name: &str, node: NodeId) -> (u64, NodeId) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut x = h ^ node.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    (x, node)
}
