//! Local time as supplied by the caller.

use std::ops::Add;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point on one node's **monotonic** clock, in nanoseconds since an arbitrary local epoch.
///
/// paxos-core never reads a clock: every input carries a `Timestamp`. Timestamps of
/// different nodes are not comparable. Arithmetic saturates and comparisons come before any
/// subtraction, so nothing wraps (docs/PROTOCOL.md "Timing").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The local epoch.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The far future; never reached.
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// A timestamp `nanos` nanoseconds after the local epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// Nanoseconds since the local epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// A timestamp `since_epoch` after the local epoch (saturating).
    pub fn from_duration(since_epoch: Duration) -> Self {
        Timestamp(u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The time since the local epoch.
    pub fn as_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self - earlier`, or zero when `earlier` is not earlier.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        if self > earlier {
            Duration::from_nanos(self.0 - earlier.0)
        } else {
            Duration::ZERO
        }
    }

    /// `self - d`, or the epoch.
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(nanos(d)))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// Saturating addition.
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(nanos(d)))
    }
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
