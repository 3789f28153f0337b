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

    /// The first multiple of `tick` since the epoch at or after `self` (`self` for a zero
    /// tick; saturating): timers rounded so are due together and their messages leave in
    /// one batch.
    pub(crate) fn round_up(self, tick: Duration) -> Timestamp {
        let t = nanos(tick);
        if t == 0 {
            return self;
        }
        Timestamp(self.0.div_ceil(t).saturating_mul(t))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_up_goes_to_the_next_multiple_of_the_tick() {
        let ms = Duration::from_millis(1);
        let t = Timestamp::from_nanos;
        assert_eq!(t(0).round_up(10 * ms), t(0));
        assert_eq!(t(1).round_up(10 * ms), t(10_000_000));
        assert_eq!(t(10_000_000).round_up(10 * ms), t(10_000_000));
        assert_eq!(t(10_000_001).round_up(10 * ms), t(20_000_000));
        assert_eq!(t(7).round_up(Duration::ZERO), t(7));
        assert_eq!(Timestamp::MAX.round_up(10 * ms), Timestamp::MAX);
    }
}
