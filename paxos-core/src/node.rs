//! The node: every lease's acceptor, proposer and learner, driven by inputs that carry `now`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::acceptors::Acceptors;
use crate::ballot::Ballot;
use crate::config::{Config, MAX_PRIORITY, Timing, acceptor_duration};
use crate::error::Error;
use crate::event::{Event, Master, SurrenderReason};
use crate::fingerprint::Fingerprint;
use crate::id::{Incarnation, LeaseName, NodeId, Owner};
use crate::lease::{Active, Attempt, LeaseState, Remote};
use crate::message::{Envelope, Hello, LiveLease, Message, Transmit};
use crate::peers::Peers;
use crate::rng::Rng;
use crate::time::Timestamp;
use crate::timers::Timers;

/// Counters of what a node did and dropped. Bad input from the network is counted here,
/// never returned as an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Protocol messages handled (from peers and from itself).
    pub messages_received: u64,
    /// Protocol messages queued for peers.
    pub messages_sent: u64,
    /// Batches dropped because the sender is not a configured member.
    pub dropped_unknown_sender: u64,
    /// Messages dropped because their ballot names another node than the sender.
    pub dropped_spoofed: u64,
    /// Messages dropped as malformed (bad lease name, a voter message from an observer...).
    pub dropped_invalid: u64,
    /// Batches and hellos whose sender's fingerprint differs from this node's (F1).
    pub dropped_mismatched: u64,
    /// Messages carrying a ballot whose counter is more than [`crate::MAX_BALLOT_LEAD`]
    /// above this node's wall-clock floor (B1).
    pub dropped_absurd_ballot: u64,
    /// Acceptor messages ignored while a voter's fingerprint differs (F2).
    pub dropped_conflicted: u64,
    /// Messages for a new lease name dropped because the acceptor table is full.
    pub dropped_over_capacity: u64,
    /// Acceptor entries forgotten after a quarantine without use.
    pub pruned_acceptors: u64,
    /// Times this node stopped acting because a voter's fingerprint differs (F2).
    pub conflicts: u64,
    /// Acceptor messages ignored during the restart quarantine (A4).
    pub dropped_quarantined: u64,
    /// Responses to attempts that are over (P5: ignored).
    pub stale_responses: u64,
    /// Attempts started (P1).
    pub attempts: u64,
    /// Fresh attempts postponed by the attempt rate ([`crate::Config::attempt_rate`]).
    pub paced_attempts: u64,
    /// Times this node became master.
    pub elections: u64,
    /// Successful renewals.
    pub renewals: u64,
    /// Renewal attempts that ended without renewing (the old deadline stood; the node
    /// retries until its surrender point).
    pub renewals_failed: u64,
}

/// Why an attempt ended without activating (P5).
#[derive(Debug, Clone, Copy)]
enum Abandon {
    /// An acceptor reported a live lease this attempt may not override.
    Blocked(Duration),
    /// An acceptor had promised a higher ballot.
    Rejected,
    /// The attempt reached its deadline `d`.
    TimedOut,
}

/// One gen-paxos node: acceptor and learner for every lease name, proposer for the leases it
/// stands for.
///
/// Sans-IO: feed it messages ([`Node::handle_message`]), timeouts ([`Node::handle_timeout`])
/// and commands ([`Node::join`], [`Node::resign`], [`Node::shutdown`]), each with the local
/// monotonic time; then pull what it wants done: events first ([`Node::poll_event`]), then
/// transmits ([`Node::poll_transmit`]), then the next wake-up ([`Node::poll_timeout`]).
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    incarnation: Incarnation,
    timing: Timing,
    max_batch: usize,
    /// Pacing of fresh attempts: the theoretical arrival time of the next one, the gap
    /// between two at the configured rate, and the burst allowance as a duration.
    pace_tat: Timestamp,
    pace_gap: Duration,
    pace_burst: Duration,
    #[cfg(feature = "unsafe-rules")]
    unsafe_rule: Option<crate::UnsafeRule>,
    /// Sorted voters; a voter's index is its bit in promise/accept sets.
    voters: Vec<NodeId>,
    /// Sorted voters and observers; a member's index is its outbox.
    members: Vec<NodeId>,
    is_voter: bool,
    majority: usize,
    /// The wall-clock floor of ballot counters (T4).
    floor: u64,
    /// The latest wall clock heard (Unix ms): the base of the ballot bound (B1).
    wall: u64,
    quarantine_until: Timestamp,
    fingerprint: Fingerprint,
    peers: Peers,
    acceptors: Acceptors,
    leases: Vec<LeaseState>,
    by_name: HashMap<LeaseName, usize>,
    timers: Timers,
    outbox: Vec<VecDeque<Envelope>>,
    dirty: VecDeque<usize>,
    local: VecDeque<Envelope>,
    events: VecDeque<Event>,
    rng: Rng,
    stats: Stats,
    shutting_down: bool,
    /// Every acceptance by this node's acceptor, for the simulator's quorum check; `None`
    /// (nothing kept) unless the simulator asked for it. The `sim` feature is on in any
    /// build that also has the simulator (the `gen-paxos` tool), so a real node must not
    /// grow this without bound.
    #[cfg(feature = "sim")]
    accept_log: Option<Vec<(LeaseName, Ballot)>>,
}

impl Node {
    /// Starts a node at local time `now`.
    ///
    /// `incarnation` must differ on every process start; `ballot_floor` should be the wall
    /// clock in milliseconds since the Unix epoch, so fencing tokens keep increasing across
    /// restarts (T4); `seed` drives the jitter. The node's acceptor stays silent until
    /// `now + Q` (A4).
    pub fn new(
        config: Config,
        now: Timestamp,
        incarnation: Incarnation,
        ballot_floor: u64,
        seed: u64,
    ) -> Result<Node, Error> {
        let timing = config.timing()?;
        let mut voters = config.voters.clone();
        voters.sort_unstable();
        let mut members: Vec<NodeId> = voters.iter().chain(&config.observers).copied().collect();
        members.sort_unstable();
        let is_voter = voters.binary_search(&config.node).is_ok();
        let majority = voters.len() / 2 + 1;
        #[cfg(feature = "unsafe-rules")]
        let rule = |r: crate::UnsafeRule| config.unsafe_rule == Some(r);
        #[cfg(not(feature = "unsafe-rules"))]
        let rule = |_: ()| false;
        #[cfg(feature = "unsafe-rules")]
        let (no_quarantine, no_fingerprint, early_prune) = (
            rule(crate::UnsafeRule::NoQuarantine),
            rule(crate::UnsafeRule::NoFingerprint),
            rule(crate::UnsafeRule::EarlyPrune),
        );
        #[cfg(not(feature = "unsafe-rules"))]
        let (no_quarantine, no_fingerprint, early_prune) = (rule(()), rule(()), rule(()));
        let fingerprint = config.fingerprint();
        let peers = Peers::new(
            config.node,
            fingerprint.digest(),
            &members,
            &voters,
            timing.retransmit,
            now,
            no_fingerprint,
        );
        // Swept twice per quarantine; the `early-prune` rule sweeps every retransmission.
        let sweep_every = if early_prune {
            timing.retransmit
        } else {
            timing.quarantine / 2
        };
        Ok(Node {
            id: config.node,
            incarnation,
            timing,
            max_batch: config.max_batch,
            pace_tat: Timestamp::ZERO,
            pace_gap: Duration::from_secs(1) / config.attempt_rate,
            pace_burst: Duration::from_secs(1) / config.attempt_rate
                * config.attempt_burst.saturating_sub(1),
            #[cfg(feature = "unsafe-rules")]
            unsafe_rule: config.unsafe_rule,
            outbox: vec![VecDeque::new(); members.len()],
            voters,
            members,
            is_voter,
            majority,
            floor: ballot_floor,
            wall: ballot_floor,
            quarantine_until: if no_quarantine {
                now
            } else {
                now + timing.quarantine
            },
            fingerprint,
            peers,
            acceptors: Acceptors::new(config.max_acceptor_entries, timing.quarantine, sweep_every),
            leases: Vec::new(),
            by_name: HashMap::new(),
            timers: Timers::default(),
            dirty: VecDeque::new(),
            local: VecDeque::new(),
            events: VecDeque::new(),
            rng: Rng::new(seed ^ incarnation.0.rotate_left(17) ^ config.node.0),
            stats: Stats::default(),
            shutting_down: false,
            #[cfg(feature = "sim")]
            accept_log: None,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This process run's incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The owner identity of this process run.
    pub fn owner(&self) -> Owner {
        Owner {
            node: self.id,
            incarnation: self.incarnation,
        }
    }

    /// The derived protocol timing.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The sorted voter set.
    pub fn voters(&self) -> &[NodeId] {
        &self.voters
    }

    /// Voters and observers, sorted.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// Whether this node votes (is an acceptor).
    pub fn is_voter(&self) -> bool {
        self.is_voter
    }

    /// Until when this node's acceptor stays silent after start (A4).
    pub fn quarantine_until(&self) -> Timestamp {
        self.quarantine_until
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Names of the leases joined on this node.
    pub fn leases(&self) -> impl Iterator<Item = &LeaseName> {
        self.leases.iter().map(|l| &l.name)
    }

    /// Raises the ballot counter to at least `floor` (T4). Call it with the wall clock in
    /// milliseconds since the Unix epoch before each input: ballots then follow real time
    /// even between nodes that never heard of each other's ballots, so fencing tokens keep
    /// increasing across handovers whose quorums overlapped only in a restarted acceptor.
    /// A wall clock that steps back only slows that growth; it is never used for deadlines.
    /// The floor is also the base of the ballot bound (B1, [`crate::MAX_BALLOT_LEAD`]).
    pub fn raise_ballot_floor(&mut self, floor: u64) {
        self.floor = self.floor.max(floor);
        self.wall = self.wall.max(floor);
    }

    /// Simulator only: tells the node the wall clock for the ballot bound (B1) without
    /// raising its ballot counters, as a runtime following T4 only at process start would
    /// (the simulator's `baseline` and `reuse-ballot` switches).
    #[cfg(feature = "sim")]
    pub fn observe_wall_clock(&mut self, unix_ms: u64) {
        self.wall = self.wall.max(unix_ms);
    }

    /// The fingerprint of this node's configuration (what every node must share).
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The digest of [`Node::fingerprint`]: the runtime puts it in every frame it sends,
    /// and passes the sender's to [`Node::handle_message`] and [`Node::handle_hello`].
    pub fn fingerprint_digest(&self) -> u64 {
        self.peers.digest()
    }

    /// Every other member with the fingerprint digest last heard from it (`None`: never
    /// heard yet). A digest other than [`Node::fingerprint_digest`] means its messages are
    /// refused.
    pub fn peer_fingerprints(&self) -> impl Iterator<Item = (NodeId, Option<u64>)> + '_ {
        self.peers.view()
    }

    /// Whether this node has stopped acting because one of its voters was last heard with
    /// another fingerprint (F2): it holds no lease, starts no attempt and answers no
    /// Prepare or Accept until every voter it hears from matches again.
    pub fn in_conflict(&self) -> bool {
        self.peers.in_conflict()
    }

    /// How many lease names this node keeps acceptor state for.
    pub fn acceptor_entries(&self) -> usize {
        self.acceptors.len()
    }

    /// Joins the election for `lease`: as a candidate with `priority` (0 to 3, higher is
    /// preferred: it waits less before trying for a free lease), or as a learner only with
    /// `None`. Joining again changes the candidacy.
    pub fn join(
        &mut self,
        now: Timestamp,
        lease: LeaseName,
        priority: Option<u8>,
    ) -> Result<(), Error> {
        if self.shutting_down {
            return Err(Error::ShuttingDown);
        }
        if let Some(p) = priority {
            if p > MAX_PRIORITY {
                return Err(Error::InvalidPriority(p));
            }
            if !self.is_voter {
                return Err(Error::ObserverCandidate(self.id));
            }
        }
        let idx = match self.by_name.get(&lease) {
            Some(&idx) => idx,
            None => {
                self.leases.push(LeaseState::new(lease.clone()));
                self.by_name.insert(lease, self.leases.len() - 1);
                self.leases.len() - 1
            }
        };
        self.leases[idx].priority = priority;
        if let Some(p) = priority {
            let l = &self.leases[idx];
            if l.active.is_none() && l.attempt.is_none() && l.master.is_none() {
                let at = if now < self.quarantine_until {
                    // Every node of a cluster started together leaves its quarantine at
                    // about the same time: the succession order keeps their first attempts
                    // apart.
                    self.quarantine_until + self.succession_wait(idx, p, None)
                } else {
                    // A join at run time answers the application, not an event every
                    // candidate saw at once (an expiry, a release): only the priority
                    // steps, no random part, so a free lease is acquired in one round
                    // trip. Two equal candidates joining in the same instant collide once
                    // and retry after a random wait.
                    now + self.priority_wait(p)
                };
                self.leases[idx].next_attempt = at;
            }
        }
        self.schedule(idx);
        Ok(())
    }

    /// Resigns `lease`: stops acting (a `Surrendered` event with reason `Resigned`), then
    /// releases it (P6) so another candidate takes over in a few message delays. This node
    /// stays a candidate but holds off for one lease duration. Returns whether it was master.
    pub fn resign(&mut self, now: Timestamp, lease: &LeaseName) -> Result<bool, Error> {
        let idx = *self
            .by_name
            .get(lease)
            .ok_or_else(|| Error::UnknownLease(lease.clone()))?;
        let was_master = self.give_up(idx, SurrenderReason::Resigned);
        if self.leases[idx].priority.is_some() {
            self.leases[idx].next_attempt = now + self.timing.lease;
        }
        self.schedule(idx);
        self.flush_local(now);
        Ok(was_master)
    }

    /// Shuts down: surrenders and releases every lease (reason `Shutdown`) and stands for
    /// none again. The acceptor keeps answering until the node is dropped.
    pub fn shutdown(&mut self, now: Timestamp) {
        self.shutting_down = true;
        for idx in 0..self.leases.len() {
            self.give_up(idx, SurrenderReason::Shutdown);
            self.leases[idx].priority = None;
            self.leases[idx].next_attempt = Timestamp::MAX;
            self.schedule(idx);
        }
        self.flush_local(now);
    }

    /// Who is master of `lease` as this node sees it: itself (exact deadline), another node
    /// (estimated expiry, L1), or `None`.
    pub fn master(&self, lease: &LeaseName) -> Option<Master> {
        let l = &self.leases[*self.by_name.get(lease)?];
        if let Some(a) = &l.active {
            return Some(self.own_master(a));
        }
        l.master.map(|m| Master {
            node: m.owner.node,
            token: m.ballot,
            expires: m.expires.saturating_sub(self.timing.margin),
            exact: false,
        })
    }

    /// Whether this node holds `lease` with authority at `now` (before `d - margin`).
    pub fn is_master(&self, now: Timestamp, lease: &LeaseName) -> bool {
        self.by_name
            .get(lease)
            .and_then(|&idx| self.leases[idx].active)
            .is_some_and(|a| now < a.surrender_at)
    }

    /// Handles a batch of messages from `from`, the authenticated sender, whose frame
    /// carried the fingerprint digest `fingerprint`.
    ///
    /// F1: a batch whose digest differs from [`Node::fingerprint_digest`] is dropped whole
    /// and counted; if it held messages, the sender is answered with a hello (see
    /// [`Node::poll_hello`]) so it learns why. A batch from a node outside the
    /// configuration is dropped too. An empty batch is how the runtime reports any other
    /// frame from a peer (a heartbeat): it only records the sender's fingerprint.
    pub fn handle_message(
        &mut self,
        now: Timestamp,
        from: NodeId,
        fingerprint: u64,
        messages: Vec<Envelope>,
    ) {
        if from == self.id {
            self.stats.dropped_unknown_sender += 1;
            return;
        }
        if !self.hear(now, from, fingerprint, None, !messages.is_empty()) {
            if self.members.binary_search(&from).is_err() {
                self.stats.dropped_unknown_sender += 1;
            } else {
                self.stats.dropped_mismatched += 1;
            }
            self.flush_local(now);
            return;
        }
        for envelope in messages {
            self.dispatch(now, from, envelope);
        }
        self.sweep(now);
        self.flush_local(now);
    }

    /// Handles a hello from `from`: its fingerprint digest, and whether it asks for this
    /// node's hello back. The runtime compares the full fingerprints for its log; the core
    /// needs only the digest.
    pub fn handle_hello(
        &mut self,
        now: Timestamp,
        from: NodeId,
        fingerprint: u64,
        wants_reply: bool,
    ) {
        if from == self.id {
            return;
        }
        if fingerprint != self.peers.digest() {
            self.stats.dropped_mismatched += 1;
        }
        self.hear(now, from, fingerprint, Some(wants_reply), false);
        self.flush_local(now);
    }

    /// Handles every timer due at `now`. Deadlines are checked against stored state, so a
    /// late or early call is harmless (rule 6).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some((at, idx)) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.set(idx, Timestamp::MAX);
            self.tick(now, idx);
            self.schedule(idx);
        }
        self.peers.probe(now);
        self.sweep(now);
        self.flush_local(now);
    }

    /// The next local time at which [`Node::handle_timeout`] has work, if any: a lease's
    /// timer, or the next probe of a member whose fingerprint is not known yet.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match (self.timers.peek(), self.peers.next_probe()) {
            (Some((at, _)), Some(probe)) => Some(at.min(probe)),
            (Some((at, _)), None) => Some(at),
            (None, probe) => probe,
        }
    }

    /// Forgets acceptor entries unused for a quarantine, when a sweep is due. Sweeps ride
    /// on inputs (a running node gets some every heartbeat) rather than on a timer of
    /// their own.
    fn sweep(&mut self, now: Timestamp) {
        let early = self.unsafe_rule_is(UnsafeRuleKind::EarlyPrune);
        self.stats.pruned_acceptors += self.acceptors.sweep(now, early) as u64;
    }

    /// The next hello to send: the runtime sends [`Node::fingerprint`] to `to` (a member,
    /// or a node outside the configuration that talked to this one), marked as a probe if
    /// asked. Pull hellos with the transmits.
    pub fn poll_hello(&mut self) -> Option<Hello> {
        self.peers.poll_hello()
    }

    /// Simulator only: from now on, keep every acceptance for [`Node::take_accept_log`].
    #[cfg(feature = "sim")]
    pub fn record_accepts(&mut self) {
        self.accept_log.get_or_insert_with(Vec::new);
    }

    /// Simulator only: the acceptances this node's acceptor made since the last call (none
    /// unless [`Node::record_accepts`] was called).
    #[cfg(feature = "sim")]
    pub fn take_accept_log(&mut self) -> Vec<(LeaseName, Ballot)> {
        self.accept_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next batch of messages to send to one peer.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let idx = self.dirty.pop_front()?;
        let queue = &mut self.outbox[idx];
        // From the front of a deque: a burst of n messages drains in O(n), not O(n²).
        let take = queue.len().min(self.max_batch);
        let messages: Vec<Envelope> = queue.drain(..take).collect();
        if !queue.is_empty() {
            self.dirty.push_back(idx);
        }
        Some(Transmit {
            to: self.members[idx],
            messages,
        })
    }

    // ---- dispatch -------------------------------------------------------------------------

    fn dispatch(&mut self, now: Timestamp, from: NodeId, envelope: Envelope) {
        self.stats.messages_received += 1;
        let Envelope { lease, message } = envelope;
        if !lease.is_valid() {
            self.stats.dropped_invalid += 1;
            return;
        }
        // B2: observers never propose and never own a lease: what would speak for one of
        // their ballots is dropped.
        if from != self.id
            && message.voters_only()
            && self.voters.binary_search(&from).is_err()
            && !self.unsafe_rule_is(UnsafeRuleKind::ObserverBallots)
        {
            self.stats.dropped_invalid += 1;
            return;
        }
        // B1: a ballot far above the wall clock is forged or corrupt. Following it would
        // push this lease's counters towards overflow, so it is not even looked at.
        let limit = self.ballot_limit();
        if !self.unsafe_rule_is(UnsafeRuleKind::UnboundedBallots)
            && message
                .ballots()
                .iter()
                .flatten()
                .any(|b| b.counter > limit)
        {
            self.stats.dropped_absurd_ballot += 1;
            return;
        }
        if let Some(ballot) = message.ballot_heard() {
            // T4, strengthened: never propose at or below a ballot seen for this lease.
            self.raise_counter(&lease, ballot.counter);
            if self.is_voter && !self.out_of_quarantine(now) && from == ballot.node {
                match self.acceptors.entry(now, &lease) {
                    Some(a) => a.observe_in_quarantine(now, ballot),
                    None => self.stats.dropped_over_capacity += 1,
                }
            }
        }
        match message {
            Message::Prepare { ballot } => {
                if self.acceptor_may_answer(now, from, ballot) {
                    let Some(acceptor) = self.acceptors.entry(now, &lease) else {
                        self.stats.dropped_over_capacity += 1;
                        return;
                    };
                    let reply = acceptor.handle_prepare(now, ballot);
                    self.send(from, &lease, reply);
                }
            }
            Message::Accept {
                ballot,
                lease_duration,
            } => {
                if self.acceptor_may_answer(now, from, ballot) {
                    // Never exclude for less than the proposer's own lease needs (T2).
                    let theirs = acceptor_duration(
                        lease_duration.min(Duration::from_secs(86_400)),
                        self.timing.rho,
                    );
                    let exclusion = self.timing.exclusion.max(theirs);
                    let overwrite = self.unsafe_rule_is(UnsafeRuleKind::Baseline);
                    let Some(acceptor) = self.acceptors.entry(now, &lease) else {
                        self.stats.dropped_over_capacity += 1;
                        return;
                    };
                    let reply = acceptor.handle_accept(now, ballot, exclusion, overwrite);
                    #[cfg(feature = "sim")]
                    if let (Some(log), Message::Accepted { .. }) = (&mut self.accept_log, &reply) {
                        log.push((lease.clone(), ballot));
                    }
                    self.send(from, &lease, reply);
                }
            }
            Message::Release { ballot } => {
                if ballot.node != from {
                    self.stats.dropped_spoofed += 1;
                    return;
                }
                if self.is_voter && self.out_of_quarantine(now) {
                    let owner_only = self.unsafe_rule_is(UnsafeRuleKind::OwnerOnlyRelease);
                    // Recorded even for a lease this acceptor has not heard of yet, so the
                    // released ballot's own late Prepare or Accept is refused.
                    match self.acceptors.entry(now, &lease) {
                        Some(a) => a.handle_release(now, ballot, owner_only),
                        None => self.stats.dropped_over_capacity += 1,
                    }
                }
                if let Some(&idx) = self.by_name.get(&lease) {
                    self.learn_release(now, idx, ballot);
                    // The released lease may be what a refusing voter held against this
                    // node's attempt: ask the refusers again now, not at the next
                    // retransmission.
                    self.resend_to(idx, |att| att.refused);
                    self.schedule(idx);
                }
            }
            Message::Learn { ballot, remaining } => {
                if ballot.node != from {
                    self.stats.dropped_spoofed += 1;
                    return;
                }
                if let Some(&idx) = self.by_name.get(&lease) {
                    self.learn(now, idx, ballot, remaining);
                    self.schedule(idx);
                }
            }
            Message::Promise {
                ballot,
                lease: live,
            } => {
                if let Some((idx, voter)) = self.response_target(&lease, from, ballot) {
                    self.on_promise(now, idx, voter, ballot, live);
                    self.schedule(idx);
                }
            }
            Message::Accepted { ballot } => {
                if let Some((idx, voter)) = self.response_target(&lease, from, ballot) {
                    self.on_accepted(now, idx, voter, ballot);
                    self.schedule(idx);
                }
            }
            Message::Reject { ballot, promised } => {
                // T4: never propose at or below a ballot seen in a rejection again.
                self.raise_counter(&lease, promised.counter);
                if let Some((idx, voter)) = self.response_target(&lease, from, ballot) {
                    let minority = self.voters.len() - self.majority;
                    match self.leases[idx]
                        .attempt
                        .as_mut()
                        .filter(|a| a.ballot == ballot)
                    {
                        Some(att) => {
                            // A refusal counts as a lost reply; give up once no majority is
                            // left, or at once if a higher ballot pre-empted this one: its
                            // proposer is about to win, and holding on (with our own acceptor
                            // excluding it) would only stall both attempts until `d`. A
                            // rejection carrying our own ballot means a live lease elsewhere
                            // and leaves the attempt to its other acceptors.
                            att.refused |= 1 << voter;
                            let preempted = promised > ballot;
                            if preempted || att.refused.count_ones() as usize > minority {
                                self.abandon(now, idx, Abandon::Rejected);
                                self.schedule(idx);
                            }
                        }
                        None => self.stats.stale_responses += 1,
                    }
                }
            }
        }
    }

    fn out_of_quarantine(&self, now: Timestamp) -> bool {
        now >= self.quarantine_until
    }

    /// A1/A2 preconditions: this node votes, the ballot is the sender's own, the restart
    /// quarantine is over (A4), and no voter's fingerprint differs (F2).
    fn acceptor_may_answer(&mut self, now: Timestamp, from: NodeId, ballot: Ballot) -> bool {
        if !self.is_voter {
            self.stats.dropped_invalid += 1;
            false
        } else if ballot.node != from {
            self.stats.dropped_spoofed += 1;
            false
        } else if !self.out_of_quarantine(now) {
            self.stats.dropped_quarantined += 1;
            false
        } else if self.peers.in_conflict() {
            self.stats.dropped_conflicted += 1;
            false
        } else {
            true
        }
    }

    /// The highest ballot counter this node takes from anyone (B1).
    fn ballot_limit(&self) -> u64 {
        self.wall.saturating_add(crate::MAX_BALLOT_LEAD)
    }

    /// T4 for one lease: its next ballot goes above `counter`. Only joined leases propose,
    /// so only they keep a counter.
    fn raise_counter(&mut self, lease: &LeaseName, counter: u64) {
        if let Some(&idx) = self.by_name.get(lease) {
            let l = &mut self.leases[idx];
            l.counter = l.counter.max(counter);
        }
    }

    /// Records what `from` said about its fingerprint and applies F2 when the set of
    /// mismatched voters empties or fills. Returns whether its messages are admitted.
    fn hear(
        &mut self,
        now: Timestamp,
        from: NodeId,
        digest: u64,
        hello: Option<bool>,
        nonempty: bool,
    ) -> bool {
        let heard = self.peers.hear(now, from, digest, hello, nonempty);
        match heard.conflict {
            Some(true) => self.enter_conflict(),
            Some(false) => self.leave_conflict(now),
            None => {}
        }
        heard.admitted
    }

    /// F2: a voter runs with another configuration, so the majorities this node counts may
    /// not intersect the ones it counts. Stop acting: surrender and release every lease,
    /// abandon every attempt, and (in `acceptor_may_answer`) answer no Prepare or Accept.
    fn enter_conflict(&mut self) {
        self.stats.conflicts += 1;
        for idx in 0..self.leases.len() {
            self.give_up(idx, SurrenderReason::ConfigMismatch);
            self.leases[idx].next_attempt = Timestamp::MAX;
            self.leases[idx].paced_slot = None;
            self.schedule(idx);
        }
    }

    /// Every voter heard from matches again: candidates try again after a random wait.
    fn leave_conflict(&mut self, now: Timestamp) {
        for idx in 0..self.leases.len() {
            if let Some(p) = self.leases[idx].priority {
                let wait = self.candidate_wait(p);
                let lease = &mut self.leases[idx];
                if lease.attempt.is_none() && lease.active.is_none() {
                    lease.next_attempt = lease.next_attempt.min(now + wait);
                    self.schedule(idx);
                }
            }
        }
    }

    /// The lease and voter index an acceptor's response is for, if it answers one of this
    /// run's ballots from a voter.
    fn response_target(
        &mut self,
        lease: &LeaseName,
        from: NodeId,
        ballot: Ballot,
    ) -> Option<(usize, usize)> {
        let Ok(voter) = self.voters.binary_search(&from) else {
            self.stats.dropped_invalid += 1;
            return None;
        };
        if ballot.owner() != self.owner() {
            self.stats.stale_responses += 1;
            return None;
        }
        match self.by_name.get(lease) {
            Some(&idx) => Some((idx, voter)),
            None => {
                self.stats.stale_responses += 1;
                None
            }
        }
    }

    // ---- proposer -------------------------------------------------------------------------

    /// P1: a fresh ballot, `d := now + D_P` stored with the attempt, Prepare to all voters.
    fn start_attempt(&mut self, now: Timestamp, idx: usize, renewal_base: Option<Ballot>) {
        let counter = self.next_counter(idx);
        self.leases[idx].counter = counter;
        let ballot = Ballot {
            counter,
            incarnation: self.incarnation,
            node: self.id,
        };
        self.stats.attempts += 1;
        let lease = &mut self.leases[idx];
        lease.attempt = Some(Attempt {
            ballot,
            deadline: now + self.timing.lease,
            renewal_base,
            accepting: false,
            promised: 0,
            accepted: 0,
            refused: 0,
            blocked_for: Duration::ZERO,
            responses: 0,
            started: now,
            next_retransmit: now + self.timing.retransmit,
        });
        lease.next_attempt = Timestamp::MAX;
        let name = lease.name.clone();
        self.send_to_voters(&name, &Message::Prepare { ballot });
    }

    /// P2/P3.
    fn on_promise(
        &mut self,
        now: Timestamp,
        idx: usize,
        voter: usize,
        ballot: Ballot,
        live: Option<LiveLease>,
    ) {
        let owner = self.owner();
        let stale_owner_open = self.unsafe_rule_is(UnsafeRuleKind::StaleOwnerOpen);
        let count_duplicates = self.unsafe_rule_is(UnsafeRuleKind::CountDuplicates);
        let late_timer = self.unsafe_rule_is(UnsafeRuleKind::LateTimer);
        let majority = self.majority;
        let lease = &mut self.leases[idx];
        let Some(att) = lease
            .attempt
            .as_mut()
            .filter(|a| a.ballot == ballot && !a.accepting)
        else {
            self.stats.stale_responses += 1;
            return;
        };
        if let Some(l) = live {
            // P2: only "no live lease", or the exact lease this attempt renews, is open.
            // A self-owned lease under another ballot blocks too (rule 5). A blocking
            // promise is not counted, exactly as if it had been lost; the attempt ends once
            // the refusals leave no majority.
            let open = att.renewal_base == Some(l.ballot)
                || (stale_owner_open && l.ballot.owner() == owner);
            if !open {
                att.refused |= 1 << voter;
                att.blocked_for = att.blocked_for.max(l.remaining);
                if att.refused.count_ones() as usize > self.voters.len() - majority {
                    let wait = att.blocked_for;
                    self.abandon(now, idx, Abandon::Blocked(wait));
                }
                return;
            }
        }
        if att.vote(voter, count_duplicates) < majority {
            return;
        }
        if late_timer {
            // Unsafe rule 1: the deadline restarts when the quorum arrives.
            att.deadline = now + self.timing.lease;
        }
        if now < att.deadline {
            att.accepting = true;
            att.responses = 0;
            att.next_retransmit = now + self.timing.retransmit;
            let name = lease.name.clone();
            let accept = Message::Accept {
                ballot,
                lease_duration: self.timing.lease,
            };
            self.send_to_voters(&name, &accept);
        } else {
            self.abandon(now, idx, Abandon::TimedOut);
        }
    }

    /// P4: a majority of distinct acceptors accepted and `now < d` (checked here, rule 6).
    fn on_accepted(&mut self, now: Timestamp, idx: usize, voter: usize, ballot: Ballot) {
        let count_duplicates = self.unsafe_rule_is(UnsafeRuleKind::CountDuplicates);
        let timer_order = self.unsafe_rule_is(UnsafeRuleKind::TimerOrder);
        let majority = self.majority;
        let Some(att) = self.leases[idx]
            .attempt
            .as_mut()
            .filter(|a| a.ballot == ballot && a.accepting)
        else {
            self.stats.stale_responses += 1;
            return;
        };
        if att.vote(voter, count_duplicates) < majority {
            return;
        }
        let surrender_at = att.deadline.saturating_sub(self.timing.margin);
        // Unsafe rule 6 trusts the (late) timer to have ended the attempt.
        if timer_order || (now < att.deadline && now < surrender_at) {
            self.activate(now, idx);
        } else {
            self.abandon(now, idx, Abandon::TimedOut);
        }
    }

    fn activate(&mut self, now: Timestamp, idx: usize) {
        let Some(att) = self.leases[idx].attempt.take() else {
            return;
        };
        let renew_at = att.started + self.timing.renew_after;
        let active = Active {
            ballot: att.ballot,
            deadline: att.deadline,
            surrender_at: att.deadline.saturating_sub(self.timing.margin),
        };
        if let Some(old) = self.leases[idx].active.filter(|a| now >= a.surrender_at) {
            // The old lease lapsed while the timer had not run yet: say so before anything new.
            self.leases[idx].active = None;
            let name = self.leases[idx].name.clone();
            self.surrender_event(&name, old.ballot, SurrenderReason::Expired);
        }
        let lease = &mut self.leases[idx];
        let renewal =
            matches!((&lease.active, att.renewal_base), (Some(a), Some(base)) if a.ballot == base);
        lease.active = Some(active);
        lease.master = None;
        lease.next_attempt = renew_at;
        let name = lease.name.clone();
        if renewal {
            self.stats.renewals += 1;
            self.events.push_back(Event::Renewed {
                lease: name.clone(),
                token: active.ballot,
                deadline: active.surrender_at,
            });
        } else {
            self.stats.elections += 1;
            self.events.push_back(Event::Elected {
                lease: name.clone(),
                token: active.ballot,
                deadline: active.surrender_at,
            });
            self.events.push_back(Event::MasterChanged {
                lease: name.clone(),
                master: Some(self.own_master(&active)),
            });
        }
        let learn = Message::Learn {
            ballot: active.ballot,
            remaining: active.deadline.saturating_duration_since(now),
        };
        self.send_to_members(&name, &learn, false);
    }

    /// P5: back to idle, with the next attempt scheduled. A failed renewal extends nothing.
    fn abandon(&mut self, now: Timestamp, idx: usize, why: Abandon) {
        let jitter = self.timing.jitter;
        let retransmit = self.timing.retransmit;
        let spread = self.rng.duration(jitter);
        let wait = self.leases[idx]
            .priority
            .map(|p| self.candidate_wait(p))
            .unwrap_or_default();
        let not_before = self.leases[idx]
            .master
            .filter(|m| now < m.expires)
            .map(|m| m.expires + self.timing.exclusion.saturating_sub(self.timing.lease) + wait);
        let baseline = self.unsafe_rule_is(UnsafeRuleKind::Baseline);
        let lease = &mut self.leases[idx];
        if lease
            .attempt
            .as_ref()
            .is_some_and(|a| a.renewal_base.is_some())
        {
            self.stats.renewals_failed += 1;
        }
        let lease = &mut self.leases[idx];
        let no_lease = lease.active.is_none() && !baseline;
        if let Some(att) = lease
            .attempt
            .take()
            .filter(|a| a.accepting && a.renewal_base.is_none() && no_lease)
        {
            // Some acceptors may hold this never-activated ballot and would exclude everyone
            // (this node's fresh attempts too, rule 5) for D_A. Nobody acted under it, so
            // release exactly it (A3). Never a renewal's ballot: an acceptor that accepted
            // it no longer holds the active lease, and releasing it would end the active
            // lease's exclusion there while the owner still acts.
            let name = lease.name.clone();
            self.send_to_members(&name, &Message::Release { ballot: att.ballot }, true);
        }
        let lease = &mut self.leases[idx];
        lease.next_attempt = if lease.active.is_some() {
            // Keep renewing until the surrender point; the old deadline stands.
            match why {
                Abandon::Blocked(_) => now + retransmit,
                Abandon::Rejected | Abandon::TimedOut => now + jitter + spread,
            }
        } else {
            match why {
                // Try again just after the blocking acceptor's exclusion runs out.
                Abandon::Blocked(remaining) => now + remaining + spread + wait,
                // Someone with a higher ballot is trying: give it time to finish (its Learn
                // reschedules us) rather than duelling with it.
                Abandon::Rejected => now + jitter * 4 + self.rng.duration(retransmit) + wait,
                Abandon::TimedOut => now + spread + wait,
            }
            // Never before a known master's lease is over (L1: the hint times attempts).
            .max(not_before.unwrap_or(Timestamp::ZERO))
        };
    }

    /// Surrenders (if active) and releases the active lease and any attempt (P6: the
    /// `Surrendered` event is queued before the `Release` transmits).
    fn give_up(&mut self, idx: usize, reason: SurrenderReason) -> bool {
        let lease = &mut self.leases[idx];
        let active = lease.active.take();
        let attempt = lease.attempt.take();
        let name = lease.name.clone();
        if let Some(a) = &active {
            self.surrender_event(&name, a.ballot, reason);
        }
        for ballot in active
            .map(|a| a.ballot)
            .into_iter()
            .chain(attempt.map(|a| a.ballot))
        {
            self.send_to_members(&name, &Message::Release { ballot }, true);
        }
        active.is_some()
    }

    fn surrender_event(&mut self, name: &LeaseName, token: Ballot, reason: SurrenderReason) {
        self.events.push_back(Event::Surrendered {
            lease: name.clone(),
            token,
            reason,
        });
        self.events.push_back(Event::MasterChanged {
            lease: name.clone(),
            master: None,
        });
    }

    /// Timer work for one lease, each deadline compared with stored state.
    fn tick(&mut self, now: Timestamp, idx: usize) {
        // Authority ends at d - margin whatever else is pending.
        if let Some(a) = self.leases[idx].active.filter(|a| now >= a.surrender_at) {
            self.leases[idx].active = None;
            let name = self.leases[idx].name.clone();
            self.surrender_event(&name, a.ballot, SurrenderReason::Expired);
            if let Some(p) = self.leases[idx].priority {
                // The acceptors exclude others (and this node's fresh attempts) until about
                // D_A after they accepted; try again then.
                let after =
                    self.timing.margin + self.timing.exclusion.saturating_sub(self.timing.lease);
                self.leases[idx].next_attempt = now + after + self.candidate_wait(p);
            }
        }
        if self.leases[idx]
            .attempt
            .as_ref()
            .is_some_and(|a| now >= a.deadline)
        {
            self.abandon(now, idx, Abandon::TimedOut);
        }
        if self.peers.in_conflict() {
            // F2: no attempt until every voter heard from matches (`leave_conflict`).
            self.leases[idx].next_attempt = Timestamp::MAX;
        }
        let lease = &self.leases[idx];
        let excess = self.next_counter(idx).saturating_sub(self.ballot_limit());
        if lease.attempt.is_none()
            && lease.stands()
            && now >= lease.next_attempt
            && !self.shutting_down
            && excess > 0
            && !self.unsafe_rule_is(UnsafeRuleKind::UnboundedBallots)
        {
            // B1: a ballot over the bound would be dropped everywhere. Only a pushed
            // counter gets here (a forged ballot just under the bound); the floor
            // catches up one per millisecond.
            self.leases[idx].next_attempt = now + Duration::from_millis(excess);
        }
        let lease = &self.leases[idx];
        if lease.attempt.is_none()
            && lease.stands()
            && now >= lease.next_attempt
            && !self.shutting_down
        {
            let base = lease.active.map(|a| a.ballot);
            let reserved = lease.paced_slot == Some(lease.next_attempt);
            self.leases[idx].paced_slot = None;
            let slot = if base.is_none() && !reserved {
                self.pace(now)
            } else {
                None
            };
            match slot {
                // Renewals and reserved slots go now; other fresh attempts over the rate
                // wait for the slot reserved for them.
                Some(slot) => {
                    self.leases[idx].next_attempt = slot;
                    self.leases[idx].paced_slot = Some(slot);
                    self.stats.paced_attempts += 1;
                }
                None => self.start_attempt(now, idx, base),
            }
        }
        if let Some(m) = self.leases[idx].master.filter(|m| now >= m.expires) {
            let _ = m;
            self.leases[idx].master = None;
            let name = self.leases[idx].name.clone();
            self.events.push_back(Event::MasterChanged {
                lease: name,
                master: None,
            });
        }
        self.retransmit(now, idx);
    }

    /// The counter of the lease's next ballot: above every ballot seen for it and the
    /// wall-clock floor (T4). Saturating: with the ballot bound (B1) it stays centuries
    /// away from the top, and the `unbounded-ballots` rule shows what wrapping did.
    fn next_counter(&self, idx: usize) -> u64 {
        let base = self.leases[idx].counter.max(self.floor);
        if self.unsafe_rule_is(UnsafeRuleKind::UnboundedBallots) {
            base.wrapping_add(1)
        } else {
            base.saturating_add(1)
        }
    }

    /// Re-sends Prepare / Accept to the voters that have not answered this attempt yet.
    fn retransmit(&mut self, now: Timestamp, idx: usize) {
        let interval = self.timing.retransmit;
        let Some(att) = self.leases[idx]
            .attempt
            .as_mut()
            .filter(|a| now >= a.next_retransmit)
        else {
            return;
        };
        att.next_retransmit = now + interval;
        self.resend_to(idx, |att| {
            !if att.accepting {
                att.accepted
            } else {
                att.promised
            }
        });
    }

    /// Sends the attempt's current message (Prepare or Accept) again to the voters in the
    /// set `to` picks.
    fn resend_to(&mut self, idx: usize, to: impl Fn(&Attempt) -> u64) {
        let Some(att) = self.leases[idx].attempt.as_ref() else {
            return;
        };
        let targets = to(att);
        let message = if att.accepting {
            Message::Accept {
                ballot: att.ballot,
                lease_duration: self.timing.lease,
            }
        } else {
            Message::Prepare { ballot: att.ballot }
        };
        let name = self.leases[idx].name.clone();
        for i in 0..self.voters.len() {
            if targets & (1 << i) != 0 {
                self.send(self.voters[i], &name, message.clone());
            }
        }
    }

    // ---- learner --------------------------------------------------------------------------

    /// L1: another node activated; remember it as a hint and plan the next attempt for
    /// about when the acceptors' exclusion of it runs out.
    fn learn(&mut self, now: Timestamp, idx: usize, ballot: Ballot, remaining: Duration) {
        let owner = ballot.owner();
        if owner == self.owner() {
            return;
        }
        if self.leases[idx]
            .released
            .is_some_and(|r| r.owner() == owner && ballot <= r)
        {
            // Its owner already released it (the Release overtook this Learn).
            self.stats.stale_responses += 1;
            return;
        }
        if let Some(a) = self.leases[idx].active {
            if ballot > a.ballot {
                // Another owner holds a newer lease: whatever this node believed, stop now.
                self.leases[idx].active = None;
                let name = self.leases[idx].name.clone();
                self.surrender_event(&name, a.ballot, SurrenderReason::Lost);
            } else {
                self.stats.stale_responses += 1;
                return;
            }
        }
        let expires = now + remaining.min(self.timing.lease);
        let lease = &self.leases[idx];
        let (newer, changed) = match lease.master {
            None => (true, true),
            Some(m) => (ballot >= m.ballot || now >= m.expires, m.owner != owner),
        };
        if !newer {
            self.stats.stale_responses += 1;
            return;
        }
        self.leases[idx].master = Some(Remote {
            owner,
            ballot,
            expires,
        });
        if changed {
            let master = self.master(&self.leases[idx].name.clone());
            self.events.push_back(Event::MasterChanged {
                lease: self.leases[idx].name.clone(),
                master,
            });
        }
        if let Some(p) = self.leases[idx].priority {
            // A fresh acquisition now would only be blocked, and its higher ballot would
            // disturb the master's renewals: drop it (P5) and wait for the lease to end.
            if self.leases[idx]
                .attempt
                .as_ref()
                .is_some_and(|a| a.renewal_base.is_none())
            {
                self.leases[idx].attempt = None;
            }
            if self.leases[idx].attempt.is_none() {
                let after = self.timing.exclusion.saturating_sub(self.timing.lease);
                let wait = self.succession_wait(idx, p, Some(ballot.node));
                self.leases[idx].next_attempt = expires + after + wait;
            }
        }
    }

    /// A master released its lease: forget it and, if standing, try at once.
    fn learn_release(&mut self, now: Timestamp, idx: usize, ballot: Ballot) {
        if ballot.owner() != self.owner() {
            // One slot, kept for other owners' Learns (this node never learns from itself).
            let released = &mut self.leases[idx].released;
            *released = (*released).max(Some(ballot));
        }
        let lease = &self.leases[idx];
        let Some(m) = lease
            .master
            .filter(|m| m.owner == ballot.owner() && ballot >= m.ballot)
        else {
            return;
        };
        let _ = m;
        self.leases[idx].master = None;
        self.events.push_back(Event::MasterChanged {
            lease: self.leases[idx].name.clone(),
            master: None,
        });
        let lease = &self.leases[idx];
        if let Some(p) = lease
            .priority
            .filter(|_| lease.attempt.is_none() && lease.active.is_none())
        {
            let at = now + self.succession_wait(idx, p, Some(ballot.node));
            self.leases[idx].next_attempt = at;
        }
    }

    // ---- plumbing -------------------------------------------------------------------------

    fn own_master(&self, a: &Active) -> Master {
        Master {
            node: self.id,
            token: a.ballot,
            expires: a.surrender_at,
            exact: true,
        }
    }

    /// Like [`Self::succession_wait`] with a random part of up to one jitter step instead of
    /// the succession order: for retries after a collision or a lost lease, where the order
    /// already failed once.
    fn candidate_wait(&mut self, p: u8) -> Duration {
        self.priority_wait(p) + self.rng.duration(self.timing.jitter)
    }

    /// Pacing of fresh attempts (a generic cell rate algorithm): `None` if one may start at
    /// `now`, else the later start slot reserved for it. Called only where an attempt is
    /// about to start; a renewal or an already reserved slot never reaches the limit.
    fn pace(&mut self, now: Timestamp) -> Option<Timestamp> {
        let t = self.pace_tat.max(now);
        self.pace_tat = t + self.pace_gap;
        let slot = t.saturating_sub(self.pace_burst);
        (slot > now).then_some(slot)
    }

    /// How long a candidate of priority `p` waits before trying for a lease that every
    /// candidate saw become free at about the same instant (a Release, the expiry of
    /// `previous`'s lease, the end of the start-up quarantine): its priority steps, then
    /// its place in the lease's *succession order* times `jitter / voters`. The order ranks
    /// the voters other than `previous` by a hash of (lease name, node id), so every node
    /// computes the same order without talking, equal candidates never draw the same wait
    /// (a random draw collides now and then, and a collision costs a retry of tens of
    /// milliseconds), and the leases of a cluster spread over its nodes.
    fn succession_wait(&self, idx: usize, p: u8, previous: Option<NodeId>) -> Duration {
        let name = self.leases[idx].name.as_str();
        let key = |node: NodeId| succession_key(name, node);
        let mine = key(self.id);
        let rank = self
            .voters
            .iter()
            .filter(|&&v| v != self.id && Some(v) != previous && key(v) < mine)
            .count();
        let slots = u32::try_from(self.voters.len().max(1)).unwrap_or(u32::MAX);
        let step = self.timing.jitter / slots;
        self.priority_wait(p) + step * u32::try_from(rank).unwrap_or(u32::MAX)
    }

    /// The deterministic part of [`Self::candidate_wait`]: one jitter step per level below
    /// the maximum.
    fn priority_wait(&self, p: u8) -> Duration {
        self.timing.jitter * u32::from(MAX_PRIORITY.saturating_sub(p))
    }

    fn send(&mut self, to: NodeId, lease: &LeaseName, message: Message) {
        let envelope = Envelope {
            lease: lease.clone(),
            message,
        };
        if to == self.id {
            self.local.push_back(envelope);
            return;
        }
        let Ok(idx) = self.members.binary_search(&to) else {
            return;
        };
        self.stats.messages_sent += 1;
        if self.outbox[idx].is_empty() {
            self.dirty.push_back(idx);
        }
        self.outbox[idx].push_back(envelope);
    }

    fn send_to_voters(&mut self, lease: &LeaseName, message: &Message) {
        for i in 0..self.voters.len() {
            self.send(self.voters[i], lease, message.clone());
        }
    }

    fn send_to_members(&mut self, lease: &LeaseName, message: &Message, include_self: bool) {
        for i in 0..self.members.len() {
            let to = self.members[i];
            if include_self || to != self.id {
                self.send(to, lease, message.clone());
            }
        }
    }

    /// Handles messages this node sent itself, with the same `now` (one clock read per
    /// handler, rule 7).
    fn flush_local(&mut self, now: Timestamp) {
        while let Some(envelope) = self.local.pop_front() {
            self.dispatch(now, self.id, envelope);
        }
    }

    /// Moves the lease's timer to its next wake-up (one entry per lease, updated in place).
    fn schedule(&mut self, idx: usize) {
        let at = self.leases[idx].next_wakeup();
        if at != self.timers.get(idx) {
            self.timers.set(idx, at);
        }
    }

    #[cfg(feature = "unsafe-rules")]
    fn unsafe_rule_is(&self, kind: UnsafeRuleKind) -> bool {
        use crate::UnsafeRule as UnsafeRuleAlias;
        matches!(
            (self.unsafe_rule, kind),
            (Some(UnsafeRuleAlias::LateTimer), UnsafeRuleKind::LateTimer)
                | (
                    Some(UnsafeRuleAlias::CountDuplicates),
                    UnsafeRuleKind::CountDuplicates
                )
                | (
                    Some(UnsafeRuleAlias::OwnerOnlyRelease),
                    UnsafeRuleKind::OwnerOnlyRelease
                )
                | (
                    Some(UnsafeRuleAlias::StaleOwnerOpen),
                    UnsafeRuleKind::StaleOwnerOpen
                )
                | (
                    Some(UnsafeRuleAlias::TimerOrder),
                    UnsafeRuleKind::TimerOrder
                )
                | (
                    Some(UnsafeRuleAlias::UnboundedBallots),
                    UnsafeRuleKind::UnboundedBallots
                )
                | (
                    Some(UnsafeRuleAlias::ObserverBallots),
                    UnsafeRuleKind::ObserverBallots
                )
                | (
                    Some(UnsafeRuleAlias::EarlyPrune),
                    UnsafeRuleKind::EarlyPrune
                )
        ) || (self.unsafe_rule.is_some_and(UnsafeRuleAlias::on_baseline)
            && kind == UnsafeRuleKind::Baseline)
    }

    #[cfg(not(feature = "unsafe-rules"))]
    #[inline(always)]
    fn unsafe_rule_is(&self, _kind: UnsafeRuleKind) -> bool {
        false
    }
}

/// The rules the core itself can weaken (compiled to constant `false` without the feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnsafeRuleKind {
    LateTimer,
    CountDuplicates,
    OwnerOnlyRelease,
    StaleOwnerOpen,
    TimerOrder,
    /// The defences in depth are off (acceptors overwrite live leases; abandoned attempts
    /// are not released).
    Baseline,
    /// B1 off: no ballot bound, counters wrap.
    UnboundedBallots,
    /// B2 off: observers' Prepare, Accept, Release and Learn are taken.
    ObserverBallots,
    /// Acceptor entries are forgotten without waiting a quarantine.
    EarlyPrune,
}

/// The position of `node` in the succession order of lease `name`: FNV-1a over the name,
/// mixed with the node id by a multiplicative constant and MurmurHash3's finalizer. Fixed
/// here so nodes built apart agree (std's hasher may change between releases).
fn succession_key(name: &str, node: NodeId) -> (u64, NodeId) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut x = h ^ node.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    (x, node)
}
