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
use std::collections::hash_map::Entry;
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

/// Every lease name this node knows, in one map: its proposer (the index of the
/// [`crate::lease::LeaseState`], if this node joined the lease) and its acceptor (if this
/// node keeps one for it). One lookup per message finds both: with many leases each
/// lookup is a cache miss, and a message needs both halves (a renewal's Accept is answered
/// by the acceptor and raises the proposer's counter, T4).
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot {
    /// This node's proposer for the name.
    pub(crate) joined: Option<usize>,
    acceptor: Option<Acceptor>,
}

/// The acceptor work one message asks for, decided before the name is looked up (the
/// checks need no state).
#[derive(Debug, Clone, Copy)]
enum Work {
    Prepare(Ballot),
    Accept(Ballot, Duration),
    Release(Ballot),
}

/// The acceptor entries of one node (and, in the same slots, which names it joined).
#[derive(Debug, Clone)]
pub(crate) struct Acceptors {
    map: HashMap<LeaseName, Slot>,
    /// Slots that keep an acceptor (what the cap counts).
    live: usize,
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
            live: 0,
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

    /// The index of this node's proposer for `lease`, if it joined it.
    pub(crate) fn joined(&self, lease: &LeaseName) -> Option<usize> {
        self.map.get(lease).and_then(|s| s.joined)
    }

    /// Records that this node's proposer for `lease` is at `idx`.
    pub(crate) fn set_joined(&mut self, lease: LeaseName, idx: usize) {
        self.map.entry(lease).or_default().joined = Some(idx);
    }

    /// What one message does at the acceptor of `lease`: A4's observation in quarantine,
    /// then A1 (Prepare), A2 (Accept) or A3 (Release). Returns this node's proposer for the
    /// name (if it joined it) and the acceptor's answer (if it gives one), from one lookup.
    pub(crate) fn receive(
        &mut self,
        stats: &mut Stats,
        at: Arrival,
        lease: &LeaseName,
        message: &Message,
        timing: &Timing,
    ) -> (Option<usize>, Option<Message>) {
        // A4: in the restart quarantine a voter answers nothing, but remembers the ballots
        // proposers show it as promised (see [`Acceptor::observe_in_quarantine`]).
        let observe = message
            .ballot_heard()
            .filter(|b| at.voter && at.quarantined && at.from == b.node);
        let work = match *message {
            Message::Prepare { ballot } => at
                .may_answer(stats, ballot)
                .then_some(Work::Prepare(ballot)),
            Message::Accept {
                ballot,
                lease_duration,
            } => at
                .may_answer(stats, ballot)
                .then_some(Work::Accept(ballot, lease_duration)),
            // A3: a Release from its owner (the node counts the others as spoofed).
            // Recorded even for a lease this acceptor has not heard of yet, so the
            // released ballot's own late Prepare or Accept is refused.
            Message::Release { ballot } if ballot.node == at.from => {
                (at.voter && !at.quarantined).then_some(Work::Release(ballot))
            }
            _ => None,
        };
        let rules = self.rules;
        let wants = u64::from(observe.is_some()) + u64::from(work.is_some());
        let slot = if wants > 0 {
            self.slot_with_acceptor(at.now, lease)
        } else {
            self.map.get_mut(lease)
        };
        let Some(slot) = slot else {
            stats.dropped_over_capacity += wants;
            return (None, None);
        };
        let joined = slot.joined;
        let Some(acceptor) = slot.acceptor.as_mut() else {
            stats.dropped_over_capacity += wants;
            return (joined, None);
        };
        if let Some(ballot) = observe {
            acceptor.observe_in_quarantine(at.now, ballot);
        }
        let reply = match work {
            None => None,
            Some(Work::Prepare(ballot)) => Some(acceptor.handle_prepare(at.now, ballot)),
            Some(Work::Accept(ballot, lease_duration)) => {
                // Never exclude for less than the proposer's own lease needs (T2).
                let theirs =
                    acceptor_duration(lease_duration.min(Duration::from_secs(86_400)), timing.rho);
                let exclusion = timing.exclusion.max(theirs);
                let overwrite = rules.defences_off();
                Some(acceptor.handle_accept(at.now, ballot, exclusion, overwrite))
            }
            Some(Work::Release(ballot)) => {
                let owner_only = rules.breaks(UnsafeRule::OwnerOnlyRelease);
                acceptor.handle_release(at.now, ballot, owner_only);
                None
            }
        };
        #[cfg(feature = "sim")]
        if let (Some(log), Some(Message::Accepted { ballot })) = (&mut self.accept_log, &reply) {
            log.push((lease.clone(), *ballot));
        }
        (joined, reply)
    }

    /// How many names this node keeps an acceptor for.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The slot of `lease` with its acceptor made if needed; the acceptor stays `None`
    /// (and an unknown name gets no slot) when the table is full.
    fn slot_with_acceptor(&mut self, now: Timestamp, lease: &LeaseName) -> Option<&mut Slot> {
        let room = self.live < self.cap;
        // The floor stands for every pruned ballot: (counter, 0, 0) is at most any real
        // ballot with that counter, so it refuses exactly the lower counters.
        let floor = self.pruned_floor.map(|counter| Ballot {
            counter,
            incarnation: Incarnation(0),
            node: NodeId(0),
        });
        let slot = match self.map.entry(lease.clone()) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) if room => v.insert(Slot::default()),
            Entry::Vacant(_) => return None,
        };
        if slot.acceptor.is_none() && room {
            slot.acceptor = Some(Acceptor::with_floor(now, floor));
            self.live += 1;
            if self.next_sweep == Timestamp::MAX {
                self.next_sweep = now + self.sweep_every;
            }
        }
        Some(slot)
    }

    /// The acceptor for `lease`, made if needed; `None` when the table is full.
    #[cfg(test)]
    fn entry(&mut self, now: Timestamp, lease: &LeaseName) -> Option<&mut Acceptor> {
        self.slot_with_acceptor(now, lease)
            .and_then(|s| s.acceptor.as_mut())
    }

    /// Forgets the entries untouched for `Q`; returns how many. With `early` (the
    /// `early-prune` unsafe rule) it forgets every entry at once and keeps no floor. A
    /// joined name keeps its slot (without an acceptor).
    pub(crate) fn sweep(&mut self, now: Timestamp, early: bool) -> usize {
        if now < self.next_sweep {
            return 0;
        }
        let before = self.live;
        let idle = self.idle;
        let mut floor = self.pruned_floor;
        let mut live = self.live;
        self.map.retain(|_, slot| {
            if let Some(a) = &slot.acceptor {
                let keep = !early && now < a.touched + idle;
                if !keep {
                    if !early {
                        floor = floor.max(a.highest().map(|b| b.counter));
                    }
                    slot.acceptor = None;
                    live -= 1;
                }
            }
            slot.acceptor.is_some() || slot.joined.is_some()
        });
        self.live = live;
        self.pruned_floor = floor;
        self.next_sweep = if live == 0 {
            Timestamp::MAX
        } else {
            now + self.sweep_every
        };
        before - live
    }
}

impl std::hash::Hash for Acceptors {
    /// The acceptor entries in name order (for the model checker, `state_hash.rs`); which
    /// names are joined is hashed with the leases.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut entries: Vec<(&LeaseName, &Acceptor)> = self
            .map
            .iter()
            .filter_map(|(name, slot)| slot.acceptor.as_ref().map(|a| (name, a)))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries.hash(state);
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
    fn a_joined_name_keeps_its_slot_when_its_acceptor_is_pruned_and_costs_no_room_in_the_cap() {
        let mut table = Acceptors::new(1, Q, Q / 2, Rules::default());
        let mine = name(1);
        table.set_joined(mine.clone(), 7);
        assert_eq!(table.len(), 0, "joining keeps no acceptor");
        // The cap of one still has room for another name's acceptor.
        assert!(table.entry(t(0), &name(2)).is_some());
        assert_eq!(table.len(), 1);
        // Full now: the joined name gets no acceptor, but stays joined.
        assert!(table.entry(t(0), &mine).is_none());
        assert_eq!(table.joined(&mine), Some(7));
        // The other name's acceptor pruned: that name is gone, the joined one still maps to
        // its proposer, and its next acceptor starts from the pruned floor.
        table
            .entry(t(0), &name(2))
            .map(|a| a.handle_prepare(t(0), b(40, 2)));
        assert_eq!(table.sweep(t(2000), false), 1);
        assert_eq!(table.len(), 0);
        assert_eq!(table.joined(&mine), Some(7));
        assert_eq!(table.joined(&name(2)), None);
        let again = table.entry(t(2100), &mine).expect("room again");
        assert!(matches!(
            again.handle_prepare(t(2100), b(39, 3)),
            Message::Reject { .. }
        ));
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
