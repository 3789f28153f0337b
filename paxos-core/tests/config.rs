//! Invalid configurations and commands are refused with a clear error, never a panic.

use std::time::Duration;

use gen_paxos_core::{
    Config, Envelope, Error, Incarnation, LeaseName, Node, NodeId, Timestamp, acceptor_duration,
};

/// Delivers a batch from a node of the same configuration (its fingerprint digest is the
/// receiver's own).
trait Recv {
    fn recv(&mut self, now: Timestamp, from: NodeId, batch: Vec<Envelope>);
}

impl Recv for Node {
    fn recv(&mut self, now: Timestamp, from: NodeId, batch: Vec<Envelope>) {
        let digest = self.fingerprint_digest();
        self.handle_message(now, from, digest, batch);
    }
}

fn voters(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

fn refused(config: Config) -> Error {
    Node::new(config, Timestamp::ZERO, Incarnation(1), 0, 0)
        .expect_err("configuration must be refused")
}

#[test]
fn bad_configurations_are_refused() {
    let ok = Config::new(NodeId(1), voters(3));
    assert!(ok.timing().is_ok());

    assert_eq!(refused(Config::new(NodeId(1), vec![])), Error::NoVoters);
    assert_eq!(
        refused(Config::new(NodeId(9), voters(3))),
        Error::SelfNotMember(NodeId(9))
    );
    assert_eq!(
        refused(Config::new(
            NodeId(1),
            vec![NodeId(1), NodeId(2), NodeId(1)]
        )),
        Error::DuplicateMember(NodeId(1))
    );
    let mut c = ok.clone();
    c.observers = vec![NodeId(2)];
    assert_eq!(refused(c), Error::DuplicateMember(NodeId(2)));
    assert_eq!(
        refused(Config::new(NodeId(1), voters(65))),
        Error::TooManyVoters(65)
    );
    for rho in [1.0, 1.5, -0.1, f64::NAN, f64::INFINITY] {
        let mut c = ok.clone();
        c.rho = rho;
        assert!(matches!(refused(c), Error::InvalidRho(_)), "rho {rho}");
    }
    for lease in [Duration::ZERO, Duration::from_secs(100_000)] {
        let mut c = ok.clone();
        c.lease_duration = lease;
        assert_eq!(refused(c), Error::InvalidLeaseDuration(lease));
    }
    let mut c = ok.clone();
    c.surrender_margin = c.lease_duration;
    assert!(matches!(refused(c), Error::InvalidMargin { .. }));
    for f in [0.0, 1.0, 0.99, f64::NAN] {
        let mut c = ok.clone();
        c.renew_fraction = f;
        assert!(
            matches!(refused(c), Error::InvalidRenewFraction(_)),
            "fraction {f}"
        );
    }
    let mut c = ok.clone();
    c.retransmit_interval = Duration::ZERO;
    assert_eq!(refused(c), Error::ZeroDuration("retransmit interval"));
    let mut c = ok.clone();
    c.attempt_rate = 0;
    assert_eq!(refused(c), Error::ZeroDuration("attempt rate"));
    // Messages are lowercase, one line.
    let text = Error::InvalidRho(2.0).to_string();
    assert!(text.starts_with("rho") && !text.contains('\n'));
}

#[test]
fn timing_follows_t2_and_t3() {
    for (lease_ms, rho) in [(1000, 0.001), (2000, 0.1), (50, 0.0), (1, 0.5)] {
        let lease = Duration::from_millis(lease_ms);
        let mut c = Config::new(NodeId(1), voters(3));
        c.set_lease_duration(lease);
        c.rho = rho;
        let timing = c.timing().expect("valid");
        assert_eq!(timing.exclusion, acceptor_duration(lease, rho));
        // T2: D_P (1 + rho) <= D_A (1 - rho); T3: Q >= D_P (1 + rho) / (1 - rho).
        assert!(lease.as_secs_f64() * (1.0 + rho) <= timing.exclusion.as_secs_f64() * (1.0 - rho));
        assert!(timing.quarantine.as_secs_f64() >= lease.as_secs_f64() * (1.0 + rho) / (1.0 - rho));
        assert!(timing.margin < lease && timing.renew_after < lease - timing.margin);
    }
}

#[test]
fn the_renewal_grid_is_a_twentieth_of_the_lease_within_its_bounds() {
    fn grid(lease: Duration, tweak: impl Fn(&mut Config)) -> Duration {
        let mut c = Config::new(NodeId(1), voters(3));
        c.set_lease_duration(lease);
        tweak(&mut c);
        c.timing().expect("valid").renewal_grid
    }
    let ms = Duration::from_millis;
    assert_eq!(grid(ms(2_000), |_| {}), ms(100));
    assert_eq!(grid(ms(10_000), |_| {}), ms(500));
    // Short leases: 2.5 ms at 50 ms; under 20 ms the jitter's 1 ms floor decides.
    assert_eq!(grid(ms(50), |_| {}), Duration::from_micros(2_500));
    assert_eq!(grid(ms(20), |_| {}), ms(1));
    assert_eq!(grid(ms(10), |_| {}), ms(1));
    // Never shorter than a jitter step...
    assert_eq!(grid(ms(2_000), |c| c.jitter = ms(200)), ms(200));
    // ... and never more than a quarter of the time a renewal has: 2 s, margin 100 ms,
    // renewal at 0.9 of the lease leaves 100 ms.
    assert_eq!(grid(ms(2_000), |c| c.renew_fraction = 0.9), ms(25));
}

#[test]
fn the_renewal_step_batches_about_500_renewals_then_200_and_never_delays_a_few() {
    let ms = Duration::from_millis;
    // 2 s lease: renewal after 666.7 ms, grid 100 ms, jitter 10 ms.
    let mut c = Config::new(NodeId(1), voters(3));
    c.set_lease_duration(ms(2_000));
    let t = c.timing().expect("valid");
    // Too few for a step of the grid to hold 10 renewals (66.7 at 100 ms): the jitter
    // step, not a coarser grid that would only start them later.
    for held in [0, 1, 10, 66] {
        assert_eq!(t.renewal_step(held), ms(10), "{held} held");
    }
    assert_eq!(t.renewal_step(67), ms(100));
    assert_eq!(t.renewal_step(1_333), ms(100));
    // Up to 5,000 held: the step in which about 500 fall due (the grid caps it up to
    // 3,333 held).
    assert_eq!(t.renewal_step(3_333), ms(100));
    let step = t.renewal_step(5_000);
    assert!(step > ms(66) && step < ms(67), "{step:?}");
    // More: the step in which about 200 fall due, so a burst stays that size.
    let step = t.renewal_step(5_001);
    assert!(step > ms(26) && step < ms(27), "{step:?}");
    let step = t.renewal_step(10_000);
    assert!(step > ms(13) && step < ms(14), "{step:?}");
    assert_eq!(
        t.renewal_step(13_334),
        ms(10),
        "one jitter step at the least"
    );
    assert_eq!(t.renewal_step(u64::MAX), ms(10));
    // A 50 ms lease holding one: its 1 ms jitter step, as before the grid.
    c.set_lease_duration(ms(50));
    let t = c.timing().expect("valid");
    assert_eq!(t.renewal_step(1), ms(1));
    // When the time a renewal has cuts the grid below a jitter step, the grid decides in
    // both branches: 2 s, margin 100 ms, renewal at 0.9 leaves 100 ms, a quarter of it.
    c.set_lease_duration(ms(2_000));
    c.renew_fraction = 0.9;
    c.jitter = ms(100);
    let t = c.timing().expect("valid");
    assert_eq!(t.renewal_grid, ms(25));
    assert_eq!(t.renewal_step(1), ms(25));
    assert_eq!(t.renewal_step(1_000_000), ms(25));
}

#[test]
fn bad_commands_are_refused() {
    let mut c = Config::new(NodeId(4), voters(3));
    c.observers = vec![NodeId(4)];
    let mut observer = Node::new(c, Timestamp::ZERO, Incarnation(1), 0, 0).expect("valid");
    let x = LeaseName::new("x").expect("valid");
    assert_eq!(
        observer.join(Timestamp::ZERO, x.clone(), Some(0)),
        Err(Error::ObserverCandidate(NodeId(4)))
    );
    assert!(observer.join(Timestamp::ZERO, x.clone(), None).is_ok());

    let mut voter = Node::new(
        Config::new(NodeId(1), voters(3)),
        Timestamp::ZERO,
        Incarnation(1),
        0,
        0,
    )
    .expect("valid");
    assert_eq!(
        voter.join(Timestamp::ZERO, x.clone(), Some(4)),
        Err(Error::InvalidPriority(4))
    );
    let y = LeaseName::new("y").expect("valid");
    assert_eq!(
        voter.resign(Timestamp::ZERO, &y),
        Err(Error::UnknownLease(y))
    );
    voter.shutdown(Timestamp::ZERO);
    assert_eq!(
        voter.join(Timestamp::ZERO, x, Some(0)),
        Err(Error::ShuttingDown)
    );

    for bad in ["", "a\nb", &"n".repeat(256)] {
        assert!(
            matches!(LeaseName::new(bad), Err(Error::InvalidLeaseName(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn messages_from_strangers_and_spoofers_are_dropped_and_counted() {
    use gen_paxos_core::{Ballot, Message};
    let now = Timestamp::from_nanos(3_000_000_000); // after the quarantine of a 2 s lease
    let mut node = Node::new(
        Config::new(NodeId(1), voters(3)),
        Timestamp::ZERO,
        Incarnation(1),
        0,
        0,
    )
    .expect("valid");
    let x = LeaseName::new("x").expect("valid");
    let prepare = |node_id| Envelope {
        lease: x.clone(),
        message: Message::Prepare {
            ballot: Ballot {
                counter: 5,
                incarnation: Incarnation(9),
                node: NodeId(node_id),
            },
        },
    };
    node.recv(now, NodeId(77), vec![prepare(77)]);
    assert_eq!(node.stats().dropped_unknown_sender, 1);
    // Node 2 speaking for node 3's ballot.
    node.recv(now, NodeId(2), vec![prepare(3)]);
    assert_eq!(node.stats().dropped_spoofed, 1);
    assert!(node.poll_transmit().is_none(), "nothing answered");
    node.recv(now, NodeId(2), vec![prepare(2)]);
    assert!(
        node.poll_transmit().is_some(),
        "a genuine prepare is answered"
    );
}
