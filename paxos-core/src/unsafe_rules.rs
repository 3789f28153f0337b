//! Test-only switches that each break one rule, in one place: the [`UnsafeRule`] a
//! simulation or test names, and the [`Rules`] a node consults. Without the non-default
//! `unsafe-rules` feature the enum is not exported, no configuration can name one, and
//! every [`Rules::breaks`] is `false`.

/// Test-only switches that each break one rule of `docs/PROTOCOL.md` ("Known ways to get it
/// wrong"), so the simulator can prove that its checker finds the resulting violations.
/// Only exported with the non-default `unsafe-rules` feature; never use it in production.
#[cfg_attr(not(feature = "unsafe-rules"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnsafeRule {
    /// Rule 1: the proposer's deadline starts when the prepare quorum arrives. Applied to
    /// the [`UnsafeRule::Baseline`] protocol, since gen-paxos's defences in depth mask it.
    LateTimer,
    /// Rule 2: a restarted acceptor answers at once (no quarantine).
    NoQuarantine,
    /// Rule 3: count responses instead of distinct acceptors.
    CountDuplicates,
    /// Rule 4: a release clears any lease of the same owner.
    OwnerOnlyRelease,
    /// Rule 5: a self-owned lease under another ballot counts as open. Applied to the
    /// [`UnsafeRule::Baseline`] protocol, since gen-paxos's defences in depth mask it.
    StaleOwnerOpen,
    /// Rule 6: the deadline is enforced by timer dispatch order, not checked in P4.
    TimerOrder,
    /// Real clock drift beyond the configured `rho` (a simulator setting).
    ClockRate,
    /// Rule 9: a restarted proposer reuses its incarnation and counter, with no wall-clock
    /// floor (a simulator setting).
    ReuseBallot,
    /// B1 off: ballots of any size are taken and counters wrap (as a release build did
    /// before the bound): one forged ballot near `2^64` stops every election.
    UnboundedBallots,
    /// B2 off: acceptors and learners take an observer's Prepare, Accept, Release and Learn.
    ObserverBallots,
    /// F1/F2 off: fingerprints are not compared, so nodes with different voter sets count
    /// each other (a simulator setting in `SimConfig::split`).
    NoFingerprint,
    /// Acceptor entries are forgotten at every sweep, without the quarantine-long wait.
    EarlyPrune,
    /// Control, expected to stay safe: the bare PaxosLease rules without three defences
    /// in depth: acceptors overwrite live leases of other owners (A2 without its refusal,
    /// which the 2026 contract requires and the 2009 text lacks), ballots follow the wall
    /// clock only from process start, and abandoned attempts are not released. Shows that the violations
    /// of `late-timer` and `stale-owner-open` come from the rule they name.
    Baseline,
    /// P7 without what it rests on: renewals in one round trip (Accept, no Prepare) while
    /// acceptors overwrite live leases of other owners (A2 without its refusal, as on the
    /// [`UnsafeRule::Baseline`] protocol, which renews in two rounds and stays safe).
    OneRoundOverwrite,
    /// Log mistake 1: the master appends without recovery (no Phase 1 at all).
    SkipRecovery,
    /// Log mistake 1: recovery learns the accepted values but re-proposes none of them;
    /// appends go into slots that may already hold a value.
    NoRepair,
    /// Log mistake 2: repair takes the lowest-ballot value reported, not the highest.
    RepairAnyValue,
    /// Log mistake 3: Promise and Accepted leave before their records are durable.
    ReplyBeforePersist,
    /// Log mistake 4: a host that lost its disk answers as a log and `ask` acceptor again
    /// (a simulator setting: crashes lose the disk).
    ForgetfulAcceptor,
    /// Log mistake 6: a restarted proposer forgets its log (and `ask`) counters and reuses
    /// ballots.
    ReuseLogBallot,
    /// Log mistake 7: Accepted messages are counted, not distinct acceptors.
    CountDuplicateAccepts,
    /// Log mistake 8: a replica applies what its acceptor accepted below the commit under
    /// any ballot, not only the committing one.
    ApplyUnchosen,
    /// Log mistake 9: a compaction drops every entry the acceptor accepted, chosen or
    /// not, and its snapshot claims them chosen.
    TruncateUnchosen,
    /// Log mistake 10: `ask` answers a value an acceptor reports accepted, not chosen.
    AskUnchosen,
    /// Log mistake 5: the master answers reads from its own state without the ready
    /// check (before its recovery finished).
    StaleRead,
    /// Log mistake 11: `ask` and `get` answer the decision the first acceptor reports,
    /// without hearing a majority about the instance: after a forget that this node's
    /// acceptor missed, a caller gets the closed instance's value.
    AskOneDecision,
}

#[cfg(feature = "unsafe-rules")]
impl UnsafeRule {
    /// Whether this switch runs on the [`UnsafeRule::Baseline`] protocol.
    pub fn on_baseline(self) -> bool {
        matches!(
            self,
            UnsafeRule::Baseline
                | UnsafeRule::LateTimer
                | UnsafeRule::StaleOwnerOpen
                | UnsafeRule::OneRoundOverwrite
        )
    }
}

#[cfg(feature = "unsafe-rules")]
impl UnsafeRule {
    /// Every switch, with its command-line name.
    pub const ALL: [(&'static str, UnsafeRule); 26] = [
        ("late-timer", UnsafeRule::LateTimer),
        ("no-quarantine", UnsafeRule::NoQuarantine),
        ("count-duplicates", UnsafeRule::CountDuplicates),
        ("owner-only-release", UnsafeRule::OwnerOnlyRelease),
        ("stale-owner-open", UnsafeRule::StaleOwnerOpen),
        ("timer-order", UnsafeRule::TimerOrder),
        ("clock-rate", UnsafeRule::ClockRate),
        ("reuse-ballot", UnsafeRule::ReuseBallot),
        ("unbounded-ballots", UnsafeRule::UnboundedBallots),
        ("observer-ballots", UnsafeRule::ObserverBallots),
        ("no-fingerprint", UnsafeRule::NoFingerprint),
        ("early-prune", UnsafeRule::EarlyPrune),
        ("baseline", UnsafeRule::Baseline),
        ("one-round-overwrite", UnsafeRule::OneRoundOverwrite),
        ("skip-recovery", UnsafeRule::SkipRecovery),
        ("no-repair", UnsafeRule::NoRepair),
        ("repair-any-value", UnsafeRule::RepairAnyValue),
        ("reply-before-persist", UnsafeRule::ReplyBeforePersist),
        ("forgetful-acceptor", UnsafeRule::ForgetfulAcceptor),
        ("reuse-log-ballot", UnsafeRule::ReuseLogBallot),
        ("count-duplicate-accepts", UnsafeRule::CountDuplicateAccepts),
        ("apply-unchosen", UnsafeRule::ApplyUnchosen),
        ("truncate-unchosen", UnsafeRule::TruncateUnchosen),
        ("ask-unchosen", UnsafeRule::AskUnchosen),
        ("stale-read", UnsafeRule::StaleRead),
        ("ask-one-decision", UnsafeRule::AskOneDecision),
    ];

    /// Parses a command-line name such as `late-timer`.
    pub fn from_name(name: &str) -> Option<UnsafeRule> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Which rule, if any, this node breaks on purpose.
#[derive(Debug, Clone, Copy, Default, Hash)]
pub(crate) struct Rules {
    #[cfg(feature = "unsafe-rules")]
    rule: Option<UnsafeRule>,
}

impl Rules {
    /// The switch of `config` (none without the feature).
    pub(crate) fn of(config: &crate::Config) -> Rules {
        #[cfg(feature = "unsafe-rules")]
        {
            Rules {
                rule: config.unsafe_rule,
            }
        }
        #[cfg(not(feature = "unsafe-rules"))]
        {
            let _ = config;
            Rules {}
        }
    }

    /// Whether `rule` is broken in this node (its switch is on).
    #[cfg(feature = "unsafe-rules")]
    pub(crate) fn breaks(self, rule: UnsafeRule) -> bool {
        self.rule == Some(rule)
    }

    /// Whether this node runs without the defences in depth (the
    /// [`UnsafeRule::Baseline`] protocol, also under the switches it masks).
    #[cfg(feature = "unsafe-rules")]
    pub(crate) fn defences_off(self) -> bool {
        self.rule.is_some_and(UnsafeRule::on_baseline)
    }

    /// Whether `rule` is broken in this node: never, without the feature.
    #[cfg(not(feature = "unsafe-rules"))]
    #[inline(always)]
    pub(crate) fn breaks(self, _rule: UnsafeRule) -> bool {
        false
    }

    /// Whether this node runs without the defences in depth: never, without the feature.
    #[cfg(not(feature = "unsafe-rules"))]
    #[inline(always)]
    pub(crate) fn defences_off(self) -> bool {
        false
    }
}
