//! The node: every lease's acceptor, proposer and learner, driven by inputs that carry
//! `now`. This file holds the node's state and its public API, and routes each message to
//! the role it is for: `acceptors.rs` and `acceptor.rs` (A1–A4), `proposer.rs` (P1–P7),
//! `learner.rs` (L1), joined per lease in `lease.rs`; `peers.rs` keeps the members'
//! fingerprints (F1–F3). The roles write their outputs through a `Cx` (`context.rs`).

use std::collections::VecDeque;

use crate::acceptors::Acceptors;
use crate::config::{Config, MAX_PRIORITY, Timing};
use crate::context::{Cx, Setup};
use crate::error::Error;
use crate::event::{Event, Master};
use crate::fingerprint::Fingerprint;
use crate::id::{Incarnation, LeaseName, NodeId, Owner};
use crate::lease::LeaseState;
use crate::message::{Envelope, Hello, Transmit};
use crate::outbox::Outbox;
use crate::pacing::{Pacer, Shedding};
use crate::peers::Peers;
use crate::proposer::Hold;
use crate::replication::Replication;
use crate::rng::Rng;
use crate::stats::Stats;
use crate::time::Timestamp;
use crate::timers::Timers;
use crate::unsafe_rules::{Rules, UnsafeRule};

mod admission;
#[cfg(test)]
mod checkpoint_tests;
mod conflict;
mod replication;
mod routing;
mod shedding;

/// One gen-paxos node: acceptor and learner for every lease name, proposer for the leases it
/// stands for.
///
/// Sans-IO: feed it messages ([`Node::handle_message`]), timeouts ([`Node::handle_timeout`])
/// and commands ([`Node::join`], [`Node::resign`], [`Node::shutdown`]), each with the local
/// monotonic time; then pull what it wants done: events first ([`Node::poll_event`]), then
/// transmits ([`Node::poll_transmit`]), then the next wake-up ([`Node::poll_timeout`]).
#[derive(Debug, Clone)]
pub struct Node {
    setup: Setup,
    pacer: Pacer,
    /// The wall-clock floor of ballot counters (T4).
    floor: u64,
    /// The latest wall clock heard (Unix ms): the base of the ballot bound (B1).
    wall: u64,
    quarantine_until: Timestamp,
    fingerprint: Fingerprint,
    peers: Peers,
    acceptors: Acceptors,
    leases: Vec<LeaseState>,
    /// Leases whose fresh acquisition waits for its turn (pacing), first come first served;
    /// an entry whose lease has since planned something else is skipped.
    waiting: VecDeque<usize>,
    timers: Timers,
    outbox: Outbox,
    events: VecDeque<Event>,
    rng: Rng,
    stats: Stats,
    shutting_down: bool,
    /// The replicated logs and per-key consensus (docs/REPLICATION.md).
    replication: Replication,
    /// Whether any lease has a log this node proposes for (else lease events are not
    /// looked at, and nothing of the log runs).
    log_enabled: bool,
    /// Events at the front of `events` already looked at for the log (R1).
    events_checked: usize,
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
        let rules = Rules::of(&config);
        let mut voters = config.voters.clone();
        voters.sort_unstable();
        let mut members: Vec<NodeId> = voters.iter().chain(&config.observers).copied().collect();
        members.sort_unstable();
        let fingerprint = config.fingerprint();
        let peers = Peers::new(
            config.node,
            fingerprint.digest(),
            &members,
            &voters,
            timing.retransmit,
            now,
            rules.breaks(UnsafeRule::NoFingerprint),
        );
        // Swept twice per quarantine; the `early-prune` rule sweeps every retransmission.
        let sweep_every = if rules.breaks(UnsafeRule::EarlyPrune) {
            timing.retransmit
        } else {
            timing.quarantine / 2
        };
        let quarantine_until = if rules.breaks(UnsafeRule::NoQuarantine) {
            now
        } else {
            now + timing.quarantine
        };
        let setup = Setup {
            id: config.node,
            incarnation,
            timing,
            is_voter: voters.binary_search(&config.node).is_ok(),
            majority: voters.len() / 2 + 1,
            voters,
            members: members.clone(),
            one_round_renewals: config.one_round_renewals
                && (!rules.defences_off() || rules.breaks(UnsafeRule::OneRoundOverwrite)),
            rules,
        };
        Ok(Node {
            pacer: Pacer::new(
                config.attempt_rate,
                config.attempt_burst,
                timing.retransmit,
                config.shed_load.then(|| Shedding {
                    over: timing.retransmit * 2,
                    lasting: timing.renew_after,
                    gap: timing.renew_after + timing.retransmit * 2,
                }),
            ),
            floor: ballot_floor,
            wall: ballot_floor,
            quarantine_until,
            fingerprint,
            peers,
            acceptors: Acceptors::new(
                config.max_acceptor_entries,
                timing.quarantine,
                sweep_every,
                rules,
            ),
            leases: Vec::new(),
            waiting: VecDeque::new(),
            timers: Timers::default(),
            outbox: Outbox::new(
                config.node,
                members.clone(),
                config.max_batch,
                config.max_batch_bytes,
            ),
            events: VecDeque::new(),
            rng: Rng::new(seed ^ incarnation.0.rotate_left(17) ^ config.node.0),
            stats: Stats::default(),
            shutting_down: false,
            replication: Replication::new(&setup),
            log_enabled: false,
            events_checked: 0,
            setup,
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.setup.id
    }

    /// This process run's incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.setup.incarnation
    }

    /// The owner identity of this process run.
    pub fn owner(&self) -> Owner {
        self.setup.owner()
    }

    /// The derived protocol timing.
    pub fn timing(&self) -> &Timing {
        &self.setup.timing
    }

    /// The sorted voter set.
    pub fn voters(&self) -> &[NodeId] {
        &self.setup.voters
    }

    /// Voters and observers, sorted.
    pub fn members(&self) -> &[NodeId] {
        &self.setup.members
    }

    /// Whether this node votes (is an acceptor).
    pub fn is_voter(&self) -> bool {
        self.setup.is_voter
    }

    /// Until when this node's acceptor stays silent after start (A4).
    pub fn quarantine_until(&self) -> Timestamp {
        self.quarantine_until
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            messages_sent: self.outbox.sent,
            attempt_rate: u64::from(self.pacer.rate()),
            hold_limit: self.pacer.hold_limit().unwrap_or(0),
            deferred_acquisitions: self.leases.iter().filter(|l| l.proposer.deferred()).count()
                as u64,
            ..self.stats
        }
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
            if !self.setup.is_voter {
                return Err(Error::ObserverCandidate(self.setup.id));
            }
        }
        let idx = match self.acceptors.joined(&lease) {
            Some(idx) => idx,
            None => {
                self.leases.push(LeaseState::new(lease.clone()));
                self.acceptors.set_joined(lease, self.leases.len() - 1);
                self.leases.len() - 1
            }
        };
        self.leases[idx].join(&self.setup, now, priority, self.quarantine_until);
        self.schedule(idx);
        Ok(())
    }

    /// Resigns `lease`: stops acting (a `Surrendered` event with reason `Resigned`), then
    /// releases it (P6) so another candidate takes over in a few message delays. This node
    /// stays a candidate but holds off for one lease duration. Returns whether it was master.
    pub fn resign(&mut self, now: Timestamp, lease: &LeaseName) -> Result<bool, Error> {
        let idx = self
            .acceptors
            .joined(lease)
            .ok_or_else(|| Error::UnknownLease(lease.clone()))?;
        let (l, mut cx) = self.parts(idx);
        let was_master = l.proposer.resign(&mut cx, &l.name, now);
        self.schedule(idx);
        self.flush_local(now);
        Ok(was_master)
    }

    /// Shuts down: surrenders and releases every lease (reason `Shutdown`) and stands for
    /// none again. The acceptor keeps answering until the node is dropped.
    pub fn shutdown(&mut self, now: Timestamp) {
        self.shutting_down = true;
        for idx in 0..self.leases.len() {
            let (l, mut cx) = self.parts(idx);
            l.proposer.shut_down(&mut cx, &l.name);
            self.schedule(idx);
        }
        self.flush_local(now);
    }

    /// Who is master of `lease` as this node sees it: itself (exact deadline), another node
    /// (estimated expiry, L1), or `None`.
    pub fn master(&self, lease: &LeaseName) -> Option<Master> {
        self.leases[self.acceptors.joined(lease)?].master(&self.setup)
    }

    /// Whether this node holds `lease` with authority at `now` (before `d - margin`).
    pub fn is_master(&self, now: Timestamp, lease: &LeaseName) -> bool {
        self.acceptors
            .joined(lease)
            .and_then(|idx| self.leases[idx].proposer.active)
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
        if from == self.setup.id {
            self.stats.dropped_unknown_sender += 1;
            return;
        }
        if !self.hear(now, from, fingerprint, None, !messages.is_empty()) {
            if self.setup.members.binary_search(&from).is_err() {
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
        self.shed_load(now);
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
        if from == self.setup.id {
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
        let hold = Hold {
            conflict: self.peers.in_conflict(),
            shutting_down: self.shutting_down,
        };
        while let Some((at, idx)) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.set(idx, Timestamp::MAX);
            self.lease_timeout(idx, now, hold);
        }
        self.shed_load(now);
        self.admit_waiting(now, hold);
        self.peers.probe(now);
        self.handle_replication_timeout(now);
        self.sweep(now);
        self.flush_local(now);
    }

    /// The next local time at which [`Node::handle_timeout`] has work, if any: a lease's
    /// timer, the turn of a waiting acquisition, or the next probe of a member whose
    /// fingerprint is not known yet.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        // Waiting acquisitions are admitted on the same grid as renewals (one batch).
        let turn = (!self.waiting.is_empty()).then(|| {
            self.pacer
                .next_free(self.stats.held)
                .round_up(self.setup.timing.jitter)
        });
        [
            self.timers.peek().map(|(at, _)| at),
            self.peers.next_probe(),
            turn,
            self.replication_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
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
        self.acceptors.accept_log.get_or_insert_with(Vec::new);
    }

    /// Simulator only: the acceptances this node's acceptor made since the last call (none
    /// unless [`Node::record_accepts`] was called).
    #[cfg(feature = "sim")]
    pub fn take_accept_log(&mut self) -> Vec<(LeaseName, crate::Ballot)> {
        self.acceptors
            .accept_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        self.events_checked = self.events_checked.saturating_sub(1);
        event
    }

    /// The next batch of messages to send to one peer.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.poll_transmit()
    }

    // ---- routing --------------------------------------------------------------------------

    /// The lease at `idx`, a [`Cx`] around it, and the pacing of fresh attempts.
    fn parts(&mut self, idx: usize) -> (&mut LeaseState, Cx<'_>) {
        let ballot_limit = self.ballot_limit();
        let cx = Cx {
            setup: &self.setup,
            out: &mut self.outbox,
            events: &mut self.events,
            stats: &mut self.stats,
            rng: &mut self.rng,
            pacer: &mut self.pacer,
            floor: self.floor,
            ballot_limit,
        };
        (&mut self.leases[idx], cx)
    }

    // ---- plumbing -------------------------------------------------------------------------

    /// Forgets acceptor entries unused for a quarantine, when a sweep is due. Sweeps ride
    /// on inputs (a running node gets some every heartbeat) rather than on a timer of
    /// their own.
    fn sweep(&mut self, now: Timestamp) {
        let early = self.setup.rules.breaks(UnsafeRule::EarlyPrune);
        self.stats.pruned_acceptors += self.acceptors.sweep(now, early) as u64;
    }

    /// Handles messages this node sent itself, with the same `now` (one clock read per
    /// handler, rule 7).
    fn flush_local(&mut self, now: Timestamp) {
        loop {
            while let Some(envelope) = self.outbox.pop_local() {
                self.dispatch(now, self.setup.id, envelope);
            }
            self.replication_after_input(now);
            if !self.outbox.has_local() {
                break;
            }
        }
    }

    /// Moves the lease's timer to its next wake-up (one entry per lease, updated in place).
    fn schedule(&mut self, idx: usize) {
        let at = self.leases[idx].next_wakeup();
        if at != self.timers.get(idx) {
            self.timers.set(idx, at);
        }
    }
}

impl std::hash::Hash for Node {
    /// Everything that decides what the node does next (for the model checker,
    /// `state_hash.rs`): not its counters ([`Node::stats`]), and not its fingerprint, which
    /// its configuration fixes.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.setup.hash(state);
        self.pacer.hash(state);
        self.floor.hash(state);
        self.wall.hash(state);
        self.quarantine_until.hash(state);
        self.peers.hash(state);
        self.acceptors.hash(state);
        self.leases.hash(state);
        // (Which names are joined: as many as there are leases, in the acceptor table.)
        self.leases.len().hash(state);
        self.waiting.hash(state);
        self.timers.hash(state);
        self.outbox.hash(state);
        self.events.hash(state);
        self.rng.hash(state);
        self.shutting_down.hash(state);
        self.replication.hash(state);
        self.log_enabled.hash(state);
        self.events_checked.hash(state);
    }
}
