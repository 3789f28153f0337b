//! Pacing of fresh attempts, so joining 100,000 leases does not put 100,000 attempts in
//! flight at once.

use std::time::Duration;

use crate::time::Timestamp;

/// A generic cell rate algorithm over the node's fresh attempts: `rate` per second after
/// a burst of `burst`.
#[derive(Debug, Clone, Hash)]
pub(crate) struct Pacer {
    /// The theoretical arrival time of the next attempt.
    tat: Timestamp,
    /// The gap between two attempts at the configured rate.
    gap: Duration,
    /// The burst allowance, as a duration.
    burst: Duration,
}

impl Pacer {
    pub(crate) fn new(rate: u32, burst: u32) -> Pacer {
        let gap = Duration::from_secs(1) / rate;
        Pacer {
            tat: Timestamp::ZERO,
            gap,
            burst: gap * burst.saturating_sub(1),
        }
    }

    /// `None` if an attempt may start at `now`, else the later start slot reserved for
    /// it. Called only where an attempt is about to start; a renewal or an already
    /// reserved slot never reaches the limit.
    pub(crate) fn slot(&mut self, now: Timestamp) -> Option<Timestamp> {
        let t = self.tat.max(now);
        self.tat = t + self.gap;
        let slot = t.saturating_sub(self.burst);
        (slot > now).then_some(slot)
    }
}
