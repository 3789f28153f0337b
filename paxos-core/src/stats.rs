//! What a node counts: work done, and bad input dropped.

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
    /// Fresh acquisitions allowed per second now: [`crate::Config::attempt_rate`] while
    /// this node's attempts are answered quickly, down to a hundredth of it while they
    /// are not (overload: the renewals of held leases go first).
    pub attempt_rate: u64,
    /// Times the attempt rate was halved because an attempt took longer than the
    /// retransmission interval to reach its majority, or had to retransmit.
    pub attempt_rate_cuts: u64,
    /// Leases whose fresh acquisition waits now in the queue for its turn.
    pub deferred_acquisitions: u64,
    /// Times an attempt sent its Prepare or Accept again to the voters that had not
    /// answered (each waits twice as long as the one before, up to eight intervals).
    pub retransmissions: u64,
    /// Times this node became master.
    pub elections: u64,
    /// Leases this node holds now.
    pub held: u64,
    /// The most leases this node takes while its renewals are answered late: set when it
    /// sheds load, raised as answers come quickly again; 0 while it has never shed.
    pub hold_limit: u64,
    /// Leases given up to shed load (surrendered with reason `overload`).
    pub shed: u64,
    /// Successful renewals.
    pub renewals: u64,
    /// Renewal attempts that ended without renewing (the old deadline stood; the node
    /// retries until its surrender point).
    pub renewals_failed: u64,
}
