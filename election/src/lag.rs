//! How far behind the driver runs: how late its timers are handled after they were due,
//! and how long one input (a frame, a command, a timer) keeps it busy. A lease is lost
//! when its renewal goes out too late, so these are the first figures to read when a
//! node under load loses leases; /metrics shows them as histograms
//! (`gen_paxos_driver_timer_lateness_seconds`, `gen_paxos_driver_turn_seconds`).
//!
//! The driver counts into plain arrays (no atomics on its path) and copies them out at
//! each heartbeat, with the core's counters.

use std::time::Duration;

/// The buckets' upper bounds, in seconds.
pub(crate) const BOUNDS: [f64; 12] = [
    0.000_1, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0,
];

/// A histogram of durations over [`BOUNDS`] (and one bucket above them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Histogram {
    /// Observations per bucket (not cumulative); the last is above every bound.
    pub(crate) counts: [u64; BOUNDS.len() + 1],
    pub(crate) sum_nanos: u128,
}

impl Histogram {
    pub(crate) fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS.partition_point(|&b| b < secs);
        self.counts[i] += 1;
        self.sum_nanos += d.as_nanos();
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(crate) fn sum_secs(&self) -> f64 {
        // Lossy above 2^52 ns (52 days of work): a sum for rates, not an exact figure.
        #[allow(clippy::cast_precision_loss)]
        let nanos = self.sum_nanos as f64;
        nanos / 1e9
    }

    /// (upper bound, observations in that bucket and not a lower one), the last bound
    /// `+Inf`: what the Prometheus encoder takes (it adds them up itself).
    pub(crate) fn buckets(&self) -> Vec<(f64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, &n)| (BOUNDS.get(i).copied().unwrap_or(f64::INFINITY), n))
            .collect()
    }
}

/// The driver's lateness, since the node started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Lag {
    /// How long after it was due each timer was handled.
    pub(crate) timer_lateness: Histogram,
    /// How long each input kept the driver busy.
    pub(crate) turns: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let mut h = Histogram::default();
        h.observe(Duration::from_micros(50)); // <= 0.1 ms
        h.observe(Duration::from_micros(100)); // <= 0.1 ms: a bound holds its equal
        h.observe(Duration::from_millis(3)); // <= 5 ms
        h.observe(Duration::from_secs(2)); // above 1 s
        let b = h.buckets();
        assert_eq!(b.len(), BOUNDS.len() + 1);
        assert_eq!(b[0], (0.000_1, 2));
        assert_eq!(b[3], (0.002, 0), "nothing between 1 and 2 ms");
        assert_eq!(b[4], (0.005, 1));
        assert_eq!(b[BOUNDS.len() - 1], (1.0, 0));
        assert_eq!(b[BOUNDS.len()], (f64::INFINITY, 1));
        assert_eq!(h.count(), 4);
        assert!((h.sum_secs() - 2.003_15).abs() < 1e-9, "{}", h.sum_secs());
    }
}
