//! Saying so when the node is overloaded: the core slows its fresh acquisitions down when
//! its attempts come back late (the renewals of the leases it holds go first); the driver
//! turns that into a warning, at most one per [`WARN_EVERY`], with what is held back and
//! why, and when leases were shed. The figures are on /metrics too
//! (`gen_paxos_attempt_rate`, `gen_paxos_acquisitions_deferred`,
//! `gen_paxos_attempt_rate_cuts_total`, `gen_paxos_hold_limit`,
//! `gen_paxos_leases_shed_total`).

use std::time::Duration;

use gen_paxos_core::Stats;
use tokio::time::Instant;
use tracing::warn;

/// The shortest time between two overload warnings.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// What the last warning saw.
#[derive(Debug, Default)]
pub(crate) struct OverloadReport {
    cuts_seen: u64,
    shed_seen: u64,
    last_warning: Option<Instant>,
}

impl OverloadReport {
    /// Looks at the core's counters (at each heartbeat); warns if the attempt rate was cut
    /// since the last look and no warning went out within [`WARN_EVERY`]. Returns whether
    /// it warned.
    pub(crate) fn check(&mut self, now: Instant, stats: &Stats) -> bool {
        let shed = stats.shed > self.shed_seen;
        let cut = stats.attempt_rate_cuts > self.cuts_seen || shed;
        self.cuts_seen = stats.attempt_rate_cuts;
        self.shed_seen = stats.shed;
        let quiet = self
            .last_warning
            .is_some_and(|t| now.saturating_duration_since(t) < WARN_EVERY);
        if !cut || quiet {
            return false;
        }
        self.last_warning = Some(now);
        if shed {
            warn!(
                held = stats.held,
                hold_limit = stats.hold_limit,
                shed = stats.shed,
                deferred = stats.deferred_acquisitions,
                retransmissions = stats.retransmissions,
                "overloaded: renewals are answered too late to keep every lease this node \
                 holds, so it gave some up (reason `overload`) and takes no more than \
                 hold_limit until answers are quick again"
            );
            return true;
        }
        warn!(
            attempt_rate = stats.attempt_rate,
            deferred = stats.deferred_acquisitions,
            retransmissions = stats.retransmissions,
            "overloaded: this node's attempts are answered late, so fresh acquisitions are \
             slowed down and wait their turn; renewals of the leases it holds go first"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_warns_once_per_interval_and_no_cut_never_warns() {
        let t0 = Instant::now();
        let mut r = OverloadReport::default();
        let mut s = Stats::default();
        assert!(!r.check(t0, &s), "no cut yet");
        s.attempt_rate_cuts = 1;
        assert!(r.check(t0, &s));
        s.attempt_rate_cuts = 2;
        assert!(!r.check(t0 + Duration::from_secs(1), &s), "too soon");
        s.attempt_rate_cuts = 3;
        assert!(r.check(t0 + WARN_EVERY + Duration::from_secs(1), &s));
        assert!(
            !r.check(t0 + WARN_EVERY * 3, &s),
            "no new cut since the last look"
        );
    }

    #[test]
    fn leases_shed_warn_too_even_without_a_rate_cut() {
        let t0 = Instant::now();
        let mut r = OverloadReport::default();
        let mut s = Stats::default();
        assert!(!r.check(t0, &s));
        s.held = 875;
        s.hold_limit = 875;
        s.shed = 125;
        assert!(r.check(t0, &s), "a shed is news");
        assert!(!r.check(t0 + WARN_EVERY * 2, &s), "the same shed, seen");
        s.shed = 234;
        assert!(r.check(t0 + WARN_EVERY * 3, &s));
    }
}
