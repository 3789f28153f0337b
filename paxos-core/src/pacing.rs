//! Pacing of fresh attempts, so joining 100,000 leases does not put 100,000 attempts in
//! flight at once (those over the rate wait in the node's queue, first come first
//! served), and its adaptation to load: when this node's attempts take longer than
//! they should (or go unanswered), fresh acquisitions slow down so the renewals of the
//! leases it holds still get through; when answers come quickly again, they speed up.
//! Renewals are never paced. Pacing decides only *when* an attempt starts, never whether
//! a rule allows it, so it touches liveness, not safety.

use std::time::Duration;

use crate::time::Timestamp;

/// A generic cell rate algorithm over the node's fresh attempts, at a rate that adapts
/// between a hundredth of the configured rate and the configured rate: it starts at a
/// tenth, grows by a hundredth of the ceiling per target interval while the smoothed round trip stays
/// within the target, and halves (at most once per two intervals) while it does not.
#[derive(Debug, Clone, Hash)]
pub(crate) struct Pacer {
    /// The theoretical arrival time of the next attempt.
    tat: Timestamp,
    /// The configured rate (per second) and burst: the ceiling.
    max_rate: u32,
    max_burst: u32,
    /// The rate in force, the gap between two attempts at it, and its burst allowance as
    /// a duration.
    rate: u32,
    gap: Duration,
    burst: Duration,
    /// A smoothed round trip above this says the cluster is behind.
    target: Duration,
    /// The smoothed round trip of this node's attempts (start to majority), weight 1/8
    /// to each new one: one renewal wave queued behind another is not a trend.
    smoothed: Duration,
    /// No change of the rate before this: each change gets time to show its effect.
    next_change: Timestamp,
}

impl Pacer {
    /// `rate` fresh attempts per second at most after `burst`; attempts whose round trip
    /// (start to majority of acceptances) exceeds `target` slow fresh attempts down.
    pub(crate) fn new(rate: u32, burst: u32, target: Duration) -> Pacer {
        let rate = rate.max(1);
        let mut pacer = Pacer {
            tat: Timestamp::ZERO,
            max_rate: rate,
            max_burst: burst.max(1),
            rate,
            gap: Duration::ZERO,
            burst: Duration::ZERO,
            target,
            smoothed: Duration::ZERO,
            next_change: Timestamp::ZERO,
        };
        // Slow start: a tenth of the ceiling until answers show the cluster keeps up.
        pacer.set_rate((rate / 10).max(1));
        pacer
    }

    /// Whether a fresh attempt may start at `now`; if so, it is counted. Nothing is
    /// reserved for a refused one: it waits in the node's queue for
    /// [`Pacer::next_free`], at whatever rate is in force by then.
    pub(crate) fn try_take(&mut self, now: Timestamp) -> bool {
        let t = self.tat.max(now);
        if t.saturating_sub(self.burst) > now {
            return false;
        }
        self.tat = t + self.gap;
        true
    }

    /// When the next fresh attempt may start.
    pub(crate) fn next_free(&self) -> Timestamp {
        self.tat.saturating_sub(self.burst)
    }

    /// Fresh attempts allowed per second now.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// One of this node's attempts (an acquisition or a renewal) reached its majority
    /// `round_trip` after it started, or has waited that long and retransmits. Returns
    /// whether the rate was cut.
    pub(crate) fn observe(&mut self, now: Timestamp, round_trip: Duration) -> bool {
        self.smoothed = if round_trip >= self.smoothed {
            self.smoothed + (round_trip - self.smoothed) / 8
        } else {
            self.smoothed - (self.smoothed - round_trip) / 8
        };
        if self.smoothed > self.target {
            self.slow_down(now)
        } else {
            self.speed_up(now);
            false
        }
    }

    fn slow_down(&mut self, now: Timestamp) -> bool {
        let floor = (self.max_rate / 100).max(1);
        if now < self.next_change || self.rate == floor {
            return false;
        }
        self.set_rate((self.rate / 2).max(floor));
        // Attempts already under way still answer slowly: wait for them to drain.
        self.next_change = now + self.target * 2;
        true
    }

    fn speed_up(&mut self, now: Timestamp) {
        if now < self.next_change || self.rate == self.max_rate {
            return;
        }
        // Additive: each acquisition adds renewals for as long as the lease is held, and
        // they show in the round trips only a renewal interval later; growing by a
        // fraction of the rate overshot and collapsed (BENCHMARKS.md, section 5).
        let rate = self
            .rate
            .saturating_add((self.max_rate / 100).max(1))
            .min(self.max_rate);
        self.set_rate(rate);
        self.next_change = now + self.target;
    }

    /// The rate in force, with a burst scaled down with it (at least a tenth of the
    /// configured burst, so a few leases are never held back).
    fn set_rate(&mut self, rate: u32) {
        self.rate = rate;
        self.gap = Duration::from_secs(1) / rate;
        let scaled = u64::from(self.max_burst) * u64::from(rate) / u64::from(self.max_rate);
        let burst = u32::try_from(scaled)
            .unwrap_or(u32::MAX)
            .max(self.max_burst / 10)
            .max(1);
        self.burst = self.gap * (burst - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn at(ms: u64) -> Timestamp {
        Timestamp::ZERO + MS * u32::try_from(ms).expect("small")
    }

    /// How many attempts `pacer` lets start at once at `now`.
    fn burst_at(pacer: &mut Pacer, now: Timestamp) -> usize {
        (0..100_000).take_while(|_| pacer.try_take(now)).count()
    }

    /// `pacer` after `n` round trips of `rt` from `t` on, one per millisecond.
    fn feed(p: &mut Pacer, t: u64, n: u64, rt: Duration) -> u64 {
        (0..n).filter(|i| p.observe(at(t + i), rt)).count() as u64
    }

    /// A pacer already at its ceiling (quick answers since its slow start).
    fn warmed(rate: u32, burst: u32) -> Pacer {
        let mut p = Pacer::new(rate, burst, 100 * MS);
        p.set_rate(rate);
        p
    }

    #[test]
    fn it_starts_at_a_tenth_and_quick_answers_raise_it_to_the_ceiling() {
        let mut p = Pacer::new(10_000, 1_000, 100 * MS);
        assert_eq!(p.rate(), 1_000);
        assert_eq!(burst_at(&mut p, at(0)), 100);
        let mut t = 0;
        while p.rate() < 10_000 {
            assert_eq!(feed(&mut p, t, 10, 90 * MS), 0, "within the target");
            t += 100;
        }
        assert_eq!(t, 9_000, "a hundredth of the ceiling per interval");
    }

    #[test]
    fn one_slow_answer_is_not_a_trend() {
        let mut p = warmed(10_000, 1_000);
        feed(&mut p, 0, 50, 10 * MS);
        assert!(!p.observe(at(100), 400 * MS), "smoothed: 10 + 390/8 ms");
        assert_eq!(p.rate(), 10_000);
    }

    #[test]
    fn slow_answers_halve_the_rate_once_per_two_intervals_and_quick_ones_restore_it() {
        let mut p = warmed(10_000, 1_000);
        // Answers at 300 ms: the smoothed round trip passes 100 ms after a few.
        assert_eq!(feed(&mut p, 0, 10, 300 * MS), 1, "one cut in a burst");
        assert_eq!(p.rate(), 5_000);
        assert_eq!(feed(&mut p, 10, 150, 300 * MS), 0, "not before 2 intervals");
        assert_eq!(feed(&mut p, 200, 10, 300 * MS), 1);
        assert_eq!(p.rate(), 2_500);
        // Never below a hundredth of the configured rate.
        for i in 0..20 {
            feed(&mut p, 1_000 + i * 300, 1, 300 * MS);
        }
        assert_eq!(p.rate(), 100);
        // Quick answers bring it back, a hundredth of the ceiling per interval, up to the
        // configured rate.
        let mut t = 10_000;
        let mut steps = 0;
        while p.rate() < 10_000 {
            assert_eq!(feed(&mut p, t, 10, MS), 0);
            t += 100;
            steps += 1;
        }
        assert_eq!(p.rate(), 10_000);
        assert_eq!(steps, 99);
    }

    #[test]
    fn the_burst_shrinks_with_the_rate_but_never_below_a_tenth() {
        let mut p = warmed(10_000, 1_000);
        assert_eq!(burst_at(&mut p, at(0)), 1_000);
        let mut p = warmed(10_000, 1_000);
        feed(&mut p, 0, 10, 300 * MS);
        assert_eq!(burst_at(&mut p, at(0)), 500);
        let mut p = warmed(10_000, 1_000);
        for i in 0..20 {
            feed(&mut p, i * 300, 10, 300 * MS);
        }
        assert_eq!(burst_at(&mut p, at(10_000)), 100);
        // Beyond the burst, one attempt per gap (10 ms at 100 per second).
        assert_eq!(p.next_free(), at(10_010));
        assert!(!p.try_take(at(10_009)));
        assert!(p.try_take(at(10_010)));
        assert_eq!(p.next_free(), at(10_020));
    }
}
