//! Every lease name's acceptor on one node, with bounded memory.
//!
//! Any voter can make this node keep acceptor state for a name just by sending a Prepare,
//! and names nobody uses any more would stay forever. So entries are forgotten once they
//! could no longer matter, and their number is capped.
//!
//! **Pruning is a restart of one name's acceptor whose quarantine has already passed.**
//! An entry is forgotten only when it has not promised, accepted or changed for a
//! quarantine `Q` (T3): every attempt that counted one of its answers started before that
//! answer, so its deadline `d` has passed by then (the same bound A4 uses after a process
//! restart), and any lease it activated is over; the accepted lease's exclusion (`D_A =
//! Q`) has run out as well. Forgetting is then indistinguishable from a restart of that
//! acceptor long ago. One value survives pruning: the highest ballot any pruned entry held.
//! A new entry starts having promised it, so a pruned name's old ballots stay refused
//! and fencing tokens keep increasing after a name is pruned by a majority.

use std::collections::HashMap;
use std::time::Duration;

use crate::acceptor::Acceptor;
use crate::ballot::Ballot;
use crate::config::{Timing, acceptor_duration};
use crate::id::{Incarnation, LeaseName, NodeId};
use crate::message::Message;
use crate::stats::Stats;
use crate::time::Timestamp;
use crate::unsafe_rules::{Rules, UnsafeRule};

/// One message's arrival at the acceptors: when, from whom (authenticated), and how the
/// node stands.
#[derive(Debug, Clone, Copy, Hash)]
pub(crate) struct Arrival {
    pub(crate) now: Timestamp,
    pub(crate) from: NodeId,
    /// This node votes.
    pub(crate) voter: bool,
    /// This node is still in its restart quarantine (A4).
    pub(crate) quarantined: bool,
    /// A voter runs with another configuration (F2).
    pub(crate) conflict: bool,
}

impl Arrival {
    /// A1/A2 preconditions: this node votes, the ballot is the sender's own, the restart
    /// quarantine is over (A4), and no voter's fingerprint differs (F2).
    fn may_answer(&self, stats: &mut Stats, ballot: Ballot) -> bool {
        if !self.voter {
            stats.dropped_invalid += 1;
            false
        } else if ballot.node != self.from {
            stats.dropped_spoofed += 1;
            false
        } else if self.quarantined {
            stats.dropped_quarantined += 1;
            false
        } else if self.conflict {
            stats.dropped_conflicted += 1;
            false
        } else {
            true
        }
    }
}

/// The acceptor entries of one node.
#[derive(Debug, Clone)]
pub(crate) struct Acceptors {
    map: HashMap<LeaseName, Acceptor>,
    cap: usize,
    /// `Q`: how long an entry must stay untouched before it may be forgotten.
    idle: Duration,
    /// How often the table is swept.
    sweep_every: Duration,
    next_sweep: Timestamp,
    /// The highest ballot counter of any pruned entry.
    pruned_floor: Option<u64>,
    rules: Rules,
    /// Every acceptance, for the simulator's quorum check; `None` (nothing kept) unless
    /// the simulator asked for it. The `sim` feature is on in any build that also has the
    /// simulator (the `gen-paxos` tool), so a real node must not grow this without bound.
    #[cfg(feature = "sim")]
    pub(crate) accept_log: Option<Vec<(LeaseName, Ballot)>>,
}

impl Acceptors {
    pub(crate) fn new(cap: usize, idle: Duration, sweep_every: Duration, rules: Rules) -> Self {
        Acceptors {
            map: HashMap::new(),
            cap,
            idle,
            sweep_every: sweep_every.max(Duration::from_millis(1)),
            next_sweep: Timestamp::MAX,
            pruned_floor: None,
            rules,
            #[cfg(feature = "sim")]
            accept_log: None,
        }
    }

    /// A4: in the restart quarantine a voter answers nothing, but remembers the ballots
    /// proposers show it as promised (see [`Acceptor::observe_in_quarantine`]).
    pub(crate) fn observe(
        &mut self,
        stats: &mut Stats,
        at: Arrival,
        lease: &LeaseName,
        ballot: Ballot,
    ) {
        if at.voter && at.quarantined && at.from == ballot.node {
            match self.entry(at.now, lease) {
                Some(a) => a.observe_in_quarantine(at.now, ballot),
                None => stats.dropped_over_capacity += 1,
            }
        }
    }

    /// A1: the answer to a Prepare, if this node gives one.
    pub(crate) fn handle_prepare(
        &mut self,
        stats: &mut Stats,
        at: Arrival,
        lease: &LeaseName,
        ballot: Ballot,
    ) -> Option<Message> {
        if !at.may_answer(stats, ballot) {
            return None;
        }
        let Some(acceptor) = self.entry(at.now, lease) else {
            stats.dropped_over_capacity += 1;
            return None;
        };
        Some(acceptor.handle_prepare(at.now, ballot))
    }

    /// A2: the answer to an Accept for a lease of `lease_duration`, if this node gives one.
    pub(crate) fn handle_accept(
        &mut self,
        stats: &mut Stats,
        at: Arrival,
        lease: &LeaseName,
        ballot: Ballot,
        lease_duration: Duration,
        timing: &Timing,
    ) -> Option<Message> {
        if !at.may_answer(stats, ballot) {
            return None;
        }
        // Never exclude for less than the proposer's own lease needs (T2).
        let theirs = acceptor_duration(lease_duration.min(Duration::from_secs(86_400)), timing.rho);
        let exclusion = timing.exclusion.max(theirs);
        let overwrite = self.rules.defences_off();
        let Some(acceptor) = self.entry(at.now, lease) else {
            stats.dropped_over_capacity += 1;
            return None;
        };
        let reply = acceptor.handle_accept(at.now, ballot, exclusion, overwrite);
        #[cfg(feature = "sim")]
        if let (Some(log), Message::Accepted { .. }) = (&mut self.accept_log, &reply) {
            log.push((lease.clone(), ballot));
        }
        Some(reply)
    }

    /// A3: a Release from its owner (checked by the node). Recorded even for a lease this
    /// acceptor has not heard of yet, so the released ballot's own late Prepare or Accept
    /// is refused.
    pub(crate) fn handle_release(
        &mut self,
        stats: &mut Stats,
        at: Arrival,
        lease: &LeaseName,
        ballot: Ballot,
    ) {
        if !at.voter || at.quarantined {
            return;
        }
        let owner_only = self.rules.breaks(UnsafeRule::OwnerOnlyRelease);
        match self.entry(at.now, lease) {
            Some(a) => a.handle_release(at.now, ballot, owner_only),
            None => stats.dropped_over_capacity += 1,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The entry for `lease`, made if needed; `None` when the table is full.
    pub(crate) fn entry(&mut self, now: Timestamp, lease: &LeaseName) -> Option<&mut Acceptor> {
        if !self.map.contains_key(lease) {
            if self.map.len() >= self.cap {
                return None;
            }
            // The floor stands for every pruned ballot: (counter, 0, 0) is at most any real
            // ballot with that counter, so it refuses exactly the lower counters.
            let floor = self.pruned_floor.map(|counter| Ballot {
                counter,
                incarnation: Incarnation(0),
                node: NodeId(0),
            });
            self.map
                .insert(lease.clone(), Acceptor::with_floor(now, floor));
            if self.next_sweep == Timestamp::MAX {
                self.next_sweep = now + self.sweep_every;
            }
        }
        self.map.get_mut(lease)
    }

    /// Forgets the entries untouched for `Q`; returns how many. With `early` (the
    /// `early-prune` unsafe rule) it forgets every entry at once and keeps no floor.
    pub(crate) fn sweep(&mut self, now: Timestamp, early: bool) -> usize {
        if now < self.next_sweep {
            return 0;
        }
        let before = self.map.len();
        let idle = self.idle;
        let mut floor = self.pruned_floor;
        self.map.retain(|_, a| {
            let keep = !early && now < a.touched + idle;
            if !keep && !early {
                floor = floor.max(a.highest().map(|b| b.counter));
            }
            keep
        });
        self.pruned_floor = floor;
        self.next_sweep = if self.map.is_empty() {
            Timestamp::MAX
        } else {
            now + self.sweep_every
        };
        before - self.map.len()
    }
}

impl std::hash::Hash for Acceptors {
    /// The entries in name order (for the model checker, `state_hash.rs`).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        crate::state_hash::hash_map_sorted(&self.map, state);
        self.cap.hash(state);
        self.idle.hash(state);
        self.sweep_every.hash(state);
        self.next_sweep.hash(state);
        self.pruned_floor.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000)
    }
    fn name(i: u32) -> LeaseName {
        LeaseName::new(format!("n{i}")).expect("valid")
    }
    fn b(counter: u64, node: u64) -> Ballot {
        Ballot {
            counter,
            incarnation: Incarnation(1),
            node: NodeId(node),
        }
    }
    const Q: Duration = Duration::from_millis(1000);

    #[test]
    fn untouched_entries_are_pruned_after_q_and_their_ballots_stay_refused() {
        let mut table = Acceptors::new(10, Q, Q / 2, Rules::default());
        let old = name(1);
        let busy = name(2);
        table
            .entry(t(0), &old)
            .map(|a| a.handle_prepare(t(0), b(50, 1)));
        table
            .entry(t(0), &busy)
            .map(|a| a.handle_prepare(t(0), b(7, 2)));
        assert_eq!(table.sweep(t(600), false), 0, "nothing is a quarantine old");
        table
            .entry(t(700), &busy)
            .map(|a| a.handle_prepare(t(700), b(8, 2)));
        assert_eq!(
            table.sweep(t(1100), false),
            1,
            "only the untouched name goes"
        );
        assert_eq!(table.len(), 1);
        // The pruned name comes back: ballots at or below what it had promised are refused.
        let again = table.entry(t(1200), &old).expect("room");
        assert!(matches!(
            again.handle_prepare(t(1200), b(49, 3)),
            Message::Reject { .. }
        ));
        assert!(matches!(
            again.handle_prepare(t(1200), b(50, 3)),
            Message::Promise { .. }
        ));
        // Everything idle goes eventually.
        assert_eq!(table.sweep(t(5000), false), 2);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn the_cap_refuses_new_names_only() {
        let mut table = Acceptors::new(2, Q, Q / 2, Rules::default());
        assert!(table.entry(t(0), &name(1)).is_some());
        assert!(table.entry(t(0), &name(2)).is_some());
        assert!(table.entry(t(0), &name(3)).is_none());
        assert!(
            table.entry(t(0), &name(1)).is_some(),
            "known names still work"
        );
    }
}
