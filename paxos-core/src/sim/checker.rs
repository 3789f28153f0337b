//! The simulator's invariant checker, on simulated real time.

use std::collections::HashMap;

use crate::ballot::Ballot;
use crate::id::{LeaseName, NodeId, Owner};

/// One node's current claim of authority over a lease, in real nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Claim {
    token: Ballot,
    start: u64,
    /// The real time at which the node's local deadline passes.
    end: u64,
}

/// Per-lease history the invariants need.
#[derive(Debug, Default)]
struct LeaseHistory {
    claims: HashMap<usize, Claim>,
    /// The last owner's token and the voters restarted since it was issued.
    last: Option<(Owner, Ballot)>,
    restarted_since: u64,
}

/// Checks, on real time: at most one holder per lease at any instant; tokens increase from
/// one owner to the next (unless a majority restarted in between); every activation is
/// backed by a majority of distinct acceptors.
#[derive(Debug)]
pub(crate) struct Checker {
    /// Every node that is a voter in some host's configuration.
    voters: Vec<NodeId>,
    /// The simulated wall clock at real time zero, in Unix milliseconds.
    wall_epoch_ms: u64,
    leases: HashMap<LeaseName, LeaseHistory>,
    /// Distinct acceptors (host index bits) that accepted each ballot.
    accepted_by: HashMap<(LeaseName, Ballot), u64>,
    pub(crate) violations: Vec<String>,
}

impl Checker {
    pub(crate) fn new(voters: Vec<NodeId>, wall_epoch_ms: u64) -> Self {
        Checker {
            voters,
            wall_epoch_ms,
            leases: HashMap::new(),
            accepted_by: HashMap::new(),
            violations: Vec::new(),
        }
    }

    pub(crate) fn accepted(&mut self, lease: &LeaseName, ballot: Ballot, acceptor: usize) {
        if !self.voters.contains(&ballot.node) {
            self.violations.push(format!(
                "node {} accepted {lease} ballot {ballot} of node {}, which is not a voter",
                other_node(acceptor),
                ballot.node
            ));
        }
        *self.accepted_by.entry((lease.clone(), ballot)).or_default() |= 1 << acceptor;
    }

    /// A node claims authority from `now` until real time `end` (`Elected` or `Renewed`).
    /// A claim whose deadline already passed still holds at the instant it is made.
    /// `majority` is a majority of the claiming node's own voter set.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn claim(
        &mut self,
        now: u64,
        host: usize,
        owner: Owner,
        lease: &LeaseName,
        token: Ballot,
        end: u64,
        majority: usize,
    ) {
        let quorum = self
            .accepted_by
            .get(&(lease.clone(), token))
            .map_or(0, |bits| bits.count_ones() as usize);
        if quorum < majority {
            self.violations.push(format!(
                "t={} node {} activated {lease} with token {token} accepted by only {quorum} distinct acceptors",
                ms(now),
                owner.node
            ));
        }
        let wall_ms = self.wall_ms(now);
        let history = self.leases.entry(lease.clone()).or_default();
        for (&other, c) in &history.claims {
            if other != host && c.end > now && c.start <= now {
                self.violations.push(format!(
                    "t={} two masters of {lease}: node {} (token {}) since t={} until t={}, and node {} (token {token})",
                    ms(now),
                    other_node(other),
                    c.token,
                    ms(c.start),
                    ms(c.end),
                    owner.node
                ));
            }
        }
        if let Some((last_owner, last_token)) = history.last {
            let restarted = history.restarted_since.count_ones() as usize;
            // A counter beyond every wall clock came from a forged ballot just under the
            // bound B1 (honest counters follow the wall clock). Acceptors remember it
            // only in volatile state: once those that heard it lose it, the next token
            // follows the wall clock again. The order of honest tokens is checked.
            let honest = last_token.counter <= wall_ms;
            if last_owner != owner && restarted < majority && token <= last_token && honest {
                self.violations.push(format!(
                    "t={} fencing token went backwards on {lease}: {token} (node {}) after {last_token} (node {})",
                    ms(now),
                    owner.node,
                    last_owner.node
                ));
            }
        }
        history.last = Some((owner, token));
        history.restarted_since = 0;
        history.claims.insert(
            host,
            Claim {
                token,
                start: now,
                end: end.max(now + 1),
            },
        );
    }

    /// The highest wall clock of any host at real time `now`, in Unix milliseconds, with
    /// a second of slack (hosts' wall clocks are within 100 ms of each other).
    fn wall_ms(&self, now: u64) -> u64 {
        self.wall_epoch_ms + now / 1_000_000 + 1_000
    }

    /// A node stopped acting for `lease` (surrendered, crashed).
    pub(crate) fn end_claim(&mut self, now: u64, host: usize, lease: &LeaseName) {
        if let Some(c) = self
            .leases
            .get_mut(lease)
            .and_then(|h| h.claims.get_mut(&host))
        {
            c.end = c.end.min(now);
        }
    }

    pub(crate) fn end_all_claims(&mut self, now: u64, host: usize) {
        for h in self.leases.values_mut() {
            if let Some(c) = h.claims.get_mut(&host) {
                c.end = c.end.min(now);
            }
        }
    }

    pub(crate) fn restarted(&mut self, voter_bit: u64) {
        for h in self.leases.values_mut() {
            h.restarted_since |= voter_bit;
        }
    }

    /// Whether `host` holds `lease` at real time `now`.
    pub(crate) fn holds(&self, now: u64, host: usize, lease: &LeaseName) -> bool {
        self.leases
            .get(lease)
            .and_then(|h| h.claims.get(&host))
            .is_some_and(|c| c.start <= now && now < c.end)
    }

    /// Whether anybody holds `lease` at real time `now`.
    pub(crate) fn has_holder(&self, now: u64, lease: &LeaseName) -> bool {
        self.leases
            .get(lease)
            .is_some_and(|h| h.claims.values().any(|c| c.start <= now && now < c.end))
    }
}

// Hosts are numbered from 0, node ids from 1.
fn other_node(host: usize) -> usize {
    host + 1
}

pub(crate) fn ms(nanos: u64) -> String {
    format!("{:.3}ms", nanos as f64 / 1e6)
}
