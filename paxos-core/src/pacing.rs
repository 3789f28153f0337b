//! Pacing of fresh attempts, so joining 100,000 leases does not put 100,000 attempts in
//! flight at once (those over the rate wait in the node's queue, first come first
//! served), and its adaptation to load: when this node's attempts take longer than
//! they should (or go unanswered), fresh acquisitions slow down so the renewals of the
//! leases it holds still get through; when answers come quickly again, they speed up.
//! Renewals are never paced. Pacing decides only *when* an attempt starts, never whether
//! a rule allows it, so it touches liveness, not safety.
//!
//! When the leases already held are more than the cluster can renew, slowing acquisitions
//! is not enough: the renewals alone queue up until every one of them is late, and the
//! node loses everything at once. So the pacing also sheds load: once answered attempts
//! wait in queues (their smoothed round trip over the shortest one seen lately) for more
//! than twice the target, without a break for a whole renewal interval (a spike is not
//! overload), it has the node give up an eighth of what it holds (at most
//! once per renewal interval, so each cut shows before the next) and caps what the node
//! holds at what is left; quick answers raise the cap again, slowly. A slow network alone
//! is not load: its round trip is the shortest one too.

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
    /// The smoothed round trip of the attempts that reached their majority only (weight
    /// 1/8): what a retransmission waits for. (A retransmission says only that an answer
    /// took at least that long; counted here, each would lengthen the next wait.)
    answered: Duration,
    /// The shortest answered round trip seen lately (the network's own delay, without
    /// queues), and when it was seen: one older than [`MIN_RTT_WINDOW`] is replaced by the
    /// next answer.
    min_rtt: Duration,
    min_rtt_at: Timestamp,
    /// When to shed; `None`: never.
    shedding: Option<Shedding>,
    /// Since when answers have waited in queues longer than the shedding threshold, without
    /// a break; `None`: they do not now.
    over_since: Option<Timestamp>,
    /// No shedding before this.
    next_shed: Timestamp,
    /// At most this many leases held: set by a shed, raised by quick answers; `None`
    /// until the first shed.
    hold_limit: Option<u64>,
    /// A fresh attempt refused at the hold limit is asked again at this time.
    limit_retry: Timestamp,
}

/// A node holding fewer leases than this sheds none: their renewals are not the load.
pub(crate) const MIN_HELD_TO_SHED: u64 = 16;

/// How long the shortest round trip seen stands for the network's delay.
pub(crate) const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);

/// When the pacing sheds load.
#[derive(Debug, Clone, Copy, Hash)]
pub(crate) struct Shedding {
    /// Shed while answered attempts wait in queues longer than this (their smoothed round
    /// trip over the shortest one seen lately)...
    pub(crate) over: Duration,
    /// ... and have done so, without a break, for at least this long (a renewal interval:
    /// every lease held has been renewed through the queues). A spike of queueing is not
    /// overload: at the edge of capacity, shedding on one started churn (the others took
    /// the leases given up, and their extra work set off the next shed).
    pub(crate) lasting: Duration,
    /// How long a shed takes to show in the round trips (a renewal interval and two
    /// targets): no second shed before.
    pub(crate) gap: Duration,
}

impl Pacer {
    /// `rate` fresh attempts per second at most after `burst`; attempts whose round trip
    /// (start to majority of acceptances) exceeds `target` slow fresh attempts down;
    /// `shedding` says when to shed held leases (`None`: never).
    pub(crate) fn new(
        rate: u32,
        burst: u32,
        target: Duration,
        shedding: Option<Shedding>,
    ) -> Pacer {
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
            answered: Duration::ZERO,
            min_rtt: Duration::MAX,
            min_rtt_at: Timestamp::ZERO,
            shedding,
            over_since: None,
            next_shed: Timestamp::ZERO,
            hold_limit: None,
            limit_retry: Timestamp::ZERO,
        };
        // Slow start: a tenth of the ceiling until answers show the cluster keeps up.
        pacer.set_rate((rate / 10).max(1));
        pacer
    }

    /// Whether a fresh attempt may start at `now`, with `held` leases held; if so, it is
    /// counted. Nothing is reserved for a refused one: it waits in the node's queue for
    /// [`Pacer::next_free`], at whatever rate is in force by then.
    pub(crate) fn try_take(&mut self, now: Timestamp, held: u64) -> bool {
        if self.at_limit(held) {
            self.limit_retry = now + self.target;
            return false;
        }
        let t = self.tat.max(now);
        if t.saturating_sub(self.burst) > now {
            return false;
        }
        self.tat = t + self.gap;
        true
    }

    /// When the next fresh attempt may start, with `held` leases held.
    pub(crate) fn next_free(&self, held: u64) -> Timestamp {
        let t = self.tat.saturating_sub(self.burst);
        if self.at_limit(held) {
            t.max(self.limit_retry)
        } else {
            t
        }
    }

    fn at_limit(&self, held: u64) -> bool {
        self.hold_limit.is_some_and(|limit| held >= limit)
    }

    /// The cap on leases held, if a shed set one.
    pub(crate) fn hold_limit(&self) -> Option<u64> {
        self.hold_limit
    }

    /// How many of the `held` leases to give up now: an eighth of them once answered
    /// attempts have waited in queues longer than the shedding threshold for the lasting
    /// time (at most once per shed gap); the hold limit drops to the rest.
    pub(crate) fn shed(&mut self, now: Timestamp, held: u64) -> u64 {
        let Some(shedding) = self.shedding else {
            return 0;
        };
        let lasting = self
            .over_since
            .is_some_and(|since| now >= since + shedding.lasting);
        if !lasting || now < self.next_shed || held < MIN_HELD_TO_SHED {
            return 0;
        }
        let keep = held - held / 8;
        self.hold_limit = Some(keep);
        self.next_shed = now + shedding.gap;
        held - keep
    }

    /// Fresh attempts allowed per second now.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// One of this node's attempts (an acquisition or a renewal) reached its majority
    /// `round_trip` after it started, its Accept round taking `answered`; or it has
    /// waited `round_trip` and retransmits (`answered` is `None`). `held`: leases held
    /// now. Returns whether the rate was cut.
    pub(crate) fn observe(
        &mut self,
        now: Timestamp,
        round_trip: Duration,
        answered: Option<Duration>,
        held: u64,
    ) -> bool {
        self.smoothed = smooth(self.smoothed, round_trip);
        if let Some(rt) = answered {
            self.answered = smooth(self.answered, rt);
            if rt <= self.min_rtt || now >= self.min_rtt_at + MIN_RTT_WINDOW {
                self.min_rtt = rt;
                self.min_rtt_at = now;
            }
            if let Some(shedding) = self.shedding {
                if self.queued() > shedding.over {
                    self.over_since.get_or_insert(now);
                } else {
                    self.over_since = None;
                }
            }
        }
        if self.smoothed > self.target {
            self.slow_down(now)
        } else {
            self.speed_up(now, held);
            false
        }
    }

    /// How long an attempt waits for answers before sending again: `interval`, or twice
    /// the smoothed round trip of answered attempts if that is longer, at most `cap`.
    /// Under load answers are late rather than lost, and a retransmission sent before
    /// they could come only adds to the queues they wait in.
    pub(crate) fn retransmit_after(&self, interval: Duration, cap: Duration) -> Duration {
        (self.answered * 2).min(cap).max(interval)
    }

    /// How long answers wait in queues: the smoothed round trip of answered Accept rounds
    /// over the shortest one seen lately.
    fn queued(&self) -> Duration {
        self.answered.saturating_sub(self.min_rtt)
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

    fn speed_up(&mut self, now: Timestamp, held: u64) {
        if now < self.next_change {
            return;
        }
        // The hold limit grows by a 64th per target interval (about 17% per second at the
        // default 100 ms; at least 4), only while answers wait in no queue and the node
        // holds nearly as many leases as it allows: a lease taken adds its renewals a
        // renewal interval later, so the cap must not outrun what the round trips can show.
        if let Some(limit) = self.hold_limit
            && self.queued() < self.target
            && held + limit / 16 >= limit
        {
            self.hold_limit = Some(limit.saturating_add((limit / 64).max(4)));
            self.next_change = now + self.target;
        }
        if self.rate == self.max_rate {
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

/// `smoothed` moved an eighth of the way to `sample`.
fn smooth(smoothed: Duration, sample: Duration) -> Duration {
    if sample >= smoothed {
        smoothed + (sample - smoothed) / 8
    } else {
        smoothed - (smoothed - sample) / 8
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
        (0..100_000).take_while(|_| pacer.try_take(now, 0)).count()
    }

    /// `pacer` after `n` round trips of `rt` from `t` on, one per millisecond.
    fn feed(p: &mut Pacer, t: u64, n: u64, rt: Duration) -> u64 {
        (0..n)
            .filter(|i| p.observe(at(t + i), rt, Some(rt), 0))
            .count() as u64
    }

    /// A pacer already at its ceiling (quick answers since its slow start).
    fn warmed(rate: u32, burst: u32) -> Pacer {
        let mut p = Pacer::new(rate, burst, 100 * MS, None);
        p.set_rate(rate);
        p
    }

    #[test]
    fn it_starts_at_a_tenth_and_quick_answers_raise_it_to_the_ceiling() {
        let mut p = Pacer::new(10_000, 1_000, 100 * MS, None);
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
        assert!(
            !p.observe(at(100), 400 * MS, Some(400 * MS), 0),
            "smoothed: 10 + 390/8 ms"
        );
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
        assert_eq!(p.next_free(0), at(10_010));
        assert!(!p.try_take(at(10_009), 0));
        assert!(p.try_take(at(10_010), 0));
        assert_eq!(p.next_free(0), at(10_020));
    }

    // ---- shedding and the retransmission wait ----------------------------------------

    fn shedding() -> Shedding {
        Shedding {
            over: 200 * MS,
            lasting: 670 * MS,
            gap: 870 * MS,
        }
    }

    /// A pacer that has seen `n` answered Accept rounds of `rt`, one per millisecond from
    /// `t`, with `held` leases held.
    fn answers(p: &mut Pacer, t: u64, n: u64, rt: Duration, held: u64) {
        for i in 0..n {
            p.observe(at(t + i), rt, Some(rt), held);
        }
    }

    /// A pacer whose answers have waited in queues (400 ms behind the 2 ms seen first)
    /// since about 100 ms, one per millisecond up to 900 ms.
    fn overloaded() -> Pacer {
        let mut p = Pacer::new(10_000, 1_000, 100 * MS, Some(shedding()));
        answers(&mut p, 0, 50, 2 * MS, 1_000);
        answers(&mut p, 100, 800, 402 * MS, 1_000);
        p
    }

    #[test]
    fn lasting_queues_shed_an_eighth_once_per_gap_and_cap_acquisitions() {
        let mut p = Pacer::new(10_000, 1_000, 100 * MS, Some(shedding()));
        answers(&mut p, 0, 50, 2 * MS, 1_000);
        assert_eq!(p.shed(at(50), 1_000), 0, "quick answers: nothing to shed");
        let mut p = overloaded();
        assert_eq!(p.shed(at(900), 1_000), 125);
        assert_eq!(p.hold_limit(), Some(875));
        assert_eq!(p.shed(at(901), 875), 0, "one shed per gap");
        answers(&mut p, 900, 900, 402 * MS, 875);
        assert_eq!(p.shed(at(900 + 870), 875), 109, "another after the gap");
        assert_eq!(p.hold_limit(), Some(766));
        // At the limit no fresh attempt starts; it is asked again a target later.
        assert!(!p.try_take(at(2_000), 766));
        assert!(p.next_free(766) >= at(2_100));
        assert!(p.try_take(at(2_000), 765));
        // Few leases are not the load.
        assert_eq!(p.shed(at(5_000), MIN_HELD_TO_SHED - 1), 0);
    }

    #[test]
    fn a_spike_of_queueing_is_not_overload() {
        let mut p = Pacer::new(10_000, 1_000, 100 * MS, Some(shedding()));
        answers(&mut p, 0, 50, 2 * MS, 1_000);
        // Queues for half a second: over the threshold, not for a renewal interval.
        answers(&mut p, 100, 500, 402 * MS, 1_000);
        assert_eq!(p.shed(at(600), 1_000), 0, "not yet lasting");
        // A break (quick answers), then queues again: the lasting time starts over.
        answers(&mut p, 600, 100, 2 * MS, 1_000);
        answers(&mut p, 700, 500, 402 * MS, 1_000);
        assert_eq!(p.shed(at(1_200), 1_000), 0, "the break reset it");
        assert_eq!(p.hold_limit(), None);
        answers(&mut p, 1_200, 300, 402 * MS, 1_000);
        assert_eq!(p.shed(at(1_500), 1_000), 125, "lasting now");
    }

    #[test]
    fn a_slow_network_is_not_a_queue_and_shedding_can_be_off() {
        let mut p = Pacer::new(10_000, 1_000, 100 * MS, Some(shedding()));
        answers(&mut p, 0, 1_000, 400 * MS, 1_000);
        assert_eq!(
            p.shed(at(1_000), 1_000),
            0,
            "400 ms is the shortest round trip"
        );
        let mut off = Pacer::new(10_000, 1_000, 100 * MS, None);
        answers(&mut off, 0, 50, 2 * MS, 1_000);
        answers(&mut off, 100, 1_000, 900 * MS, 1_000);
        assert_eq!(off.shed(at(1_100), 1_000), 0);
        assert_eq!(off.hold_limit(), None);
    }

    #[test]
    fn the_limit_grows_only_without_queues_and_only_while_it_binds() {
        let mut p = overloaded();
        assert_eq!(p.shed(at(900), 1_000), 125);
        // Quick answers again, the node at its limit: a 64th per target interval.
        answers(&mut p, 1_000, 400, 2 * MS, 875);
        let grown = p.hold_limit().expect("set");
        assert!(grown > 875, "{grown}");
        for step in 0..20 {
            let limit = p.hold_limit().expect("set");
            answers(&mut p, 2_000 + step * 100, 1, 2 * MS, limit);
        }
        let bound = p.hold_limit().expect("set");
        assert!(bound > grown * 5 / 4, "{grown} -> {bound}");
        // Far below its limit, the node's cap stays where it is.
        for step in 0..20 {
            answers(&mut p, 5_000 + step * 100, 1, 2 * MS, 10);
        }
        assert_eq!(p.hold_limit(), Some(bound));
    }

    #[test]
    fn retransmissions_wait_twice_the_answered_round_trip_within_bounds() {
        let mut p = Pacer::new(10_000, 1_000, 100 * MS, None);
        assert_eq!(p.retransmit_after(100 * MS, 500 * MS), 100 * MS);
        answers(&mut p, 0, 200, 150 * MS, 0);
        let wait = p.retransmit_after(100 * MS, 500 * MS);
        assert!(wait > 280 * MS && wait <= 300 * MS, "{wait:?}");
        answers(&mut p, 1_000, 200, 2_000 * MS, 0);
        assert_eq!(p.retransmit_after(100 * MS, 500 * MS), 500 * MS);
        // Retransmissions (no answer yet) do not lengthen the wait.
        let mut q = Pacer::new(10_000, 1_000, 100 * MS, None);
        for i in 0..200 {
            q.observe(at(i), 900 * MS, None, 0);
        }
        assert_eq!(q.retransmit_after(100 * MS, 500 * MS), 100 * MS);
    }
}
