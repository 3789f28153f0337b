//! Node configuration: protocol timing plus the runtime's own bounds, with defaults,
//! validation and `serde` support (e.g. from a TOML file).

use std::time::Duration;

use gen_paxos_core::NodeId;
use serde::{Deserialize, Serialize};

use crate::codec::{DEFAULT_MAX_FRAME_LEN, MAX_FRAME_LEN_CAP};

/// How one node takes part in the cluster and how its runtime behaves.
///
/// Start from [`Config::new`] (or deserialize one: only `node` and `voters` are required)
/// and change fields; every optional duration defaults to a value derived from
/// `lease_duration`. Durations in files are strings with a unit (`"2s"`, `"150ms"`,
/// `"1.5s"`, `"500us"`, `"1m"`) or integers of milliseconds.
///
/// ```
/// let config: gen_paxos_election::Config = toml::from_str(r#"
///     node = 1
///     voters = [1, 2, 3]
///     lease_duration = "2s"
///     surrender_margin = "150ms"
/// "#)?;
/// config.validate()?;
/// assert_eq!(config.surrender_margin(), std::time::Duration::from_millis(150));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// All nodes of a cluster must agree on `voters`, `observers`, `lease_duration`, `rho` and
/// `cluster_name`: they form the cluster fingerprint ([`Config::fingerprint`]), which
/// travels with every message, and a node refuses every message from a node whose
/// fingerprint differs (and stops acting while one of its voters differs). The voter set
/// is fixed: to change it safely, stop the old cluster and wait out its leases (one
/// acceptor exclusion `D_A` after the last renewal) before starting the new one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// This node.
    pub node: NodeId,
    /// The fixed voter set (every voter is an acceptor for every lease).
    pub voters: Vec<NodeId>,
    /// Learner-only nodes: told who is master, never vote, never stand.
    #[serde(default)]
    pub observers: Vec<NodeId>,
    /// Confirms that a voter set of one node is meant (a single-node cluster). Without it
    /// such a configuration is refused: a node meant to join others but started without
    /// its peers would elect itself and be a second master.
    #[serde(default)]
    pub single_node: bool,
    /// An optional cluster name, part of the cluster fingerprint: nodes configured with
    /// different names refuse each other (at most 255 bytes, no control characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// `D_P`, the lease duration on the owner's clock (default 2 s).
    #[serde(default = "default_lease", with = "crate::duration::required")]
    pub lease_duration: Duration,
    /// Renewal starts when this fraction of the lease has elapsed (default 1/3).
    #[serde(default = "default_renew_fraction")]
    pub renew_fraction: f64,
    /// Maximum clock-rate error of any node (default 0.001, i.e. 0.1%).
    #[serde(default = "default_rho")]
    pub rho: f64,
    /// The master stops acting this long before its lease deadline (default 5% of the
    /// lease). `is_master()`, lease guards and `on_surrendered` all use this bound.
    #[serde(
        default,
        with = "crate::duration::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub surrender_margin: Option<Duration>,
    /// Retransmission interval of unanswered protocol messages (default 5% of the lease).
    #[serde(
        default,
        with = "crate::duration::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub retransmit_interval: Option<Duration>,
    /// Random spread of attempts and step between candidate priorities. Default 0.5% of
    /// the lease, at least 1 ms (10 ms for a 2 s lease): for priorities to decide who wins
    /// a free lease, a step must exceed an attempt's four message delays.
    #[serde(
        default,
        with = "crate::duration::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter: Option<Duration>,
    /// Fresh acquisitions (not renewals) this node starts per second at most, after a
    /// burst of `attempt_burst` (default 10,000/s). Joining many more leases at once than
    /// the cluster can answer within a lease only makes every attempt time out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_rate: Option<u32>,
    /// Fresh acquisitions that may start at once before `attempt_rate` applies (default
    /// 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_burst: Option<u32>,
    /// Renew held leases in one round trip (P7 of docs/PROTOCOL.md; default `true`).
    /// `false` renews with Prepare and Accept, twice the messages per renewal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_round_renewals: Option<bool>,
    /// Shed load when renewals are answered too late to keep everything held: give up an
    /// eighth of the held leases (reason `overload`) and take no more until answers are
    /// quick again (default `true`; see `gen_paxos_core::Config::shed_load`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shed_load: Option<bool>,
    /// Publish an [`crate::ElectionEvent::Renewed`] on `Election::events` for every renewal
    /// (default `true`). With many leases that is an event per renewal through the
    /// channel and a wake-up of every subscriber; `false` leaves them out (the lease views,
    /// guards and the core's counters follow renewals either way). `gen-paxos node
    /// --quiet-renewals` sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_events: Option<bool>,
    /// The coarsest step renewals start on (default 5% of the lease; see
    /// `gen_paxos_core::Config::renewal_grid`): a node holding hundreds or thousands of
    /// leases starts their renewals together on this grid, in fewer datagrams, each up to
    /// one step later (a node holding dozens or fewer uses the jitter step). The
    /// step used is never finer than the jitter nor coarser than a quarter of the time
    /// from the renewal point to the surrender point; `0` keeps renewals on the jitter's
    /// step. Local to the node (not part of the cluster fingerprint).
    #[serde(
        default,
        with = "crate::duration::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub renewal_grid: Option<Duration>,
    /// Longest wait of a `leader_call` for a master and its reply (default one lease).
    #[serde(
        default,
        with = "crate::duration::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub call_timeout: Option<Duration>,
    /// How long a losing candidate waits for the new master's sync payload before
    /// `on_surrendered` runs without it (default 5% of the lease).
    #[serde(
        default,
        with = "crate::duration::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub sync_timeout: Option<Duration>,
    /// Heartbeats go to every peer this often (default a quarter of the lease).
    #[serde(
        default,
        with = "crate::duration::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub heartbeat_interval: Option<Duration>,
    /// A peer not heard from for this long is down (default one lease).
    #[serde(
        default,
        with = "crate::duration::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub peer_timeout: Option<Duration>,
    /// Largest encoded user payload (call, reply, cast, broadcast, sync) in bytes
    /// (default 512 KiB; at most 16 MiB). The transport's frame limit must leave room.
    #[serde(default = "default_max_payload")]
    pub max_payload_len: usize,
    /// A replicated lease snapshots its state machine after this many applied entries
    /// (default 10,000; at least 1), so its log and storage stay small.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// Seed of the protocol's jitter (default: random). Set it for reproducible tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// This process run's incarnation (default: a random 64-bit value, different on every
    /// start). Must never repeat for a node: set it only in tests or from a counter kept
    /// in a state directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<u64>,
    /// The wall clock at start in Unix milliseconds, from which fencing tokens grow
    /// (default: read `SystemTime` once at start; afterwards it advances with the
    /// monotonic clock). Set it for reproducible tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ballot_floor: Option<u64>,
    /// **Test-only.** Scales this node's local clock: the protocol sees `rate` seconds
    /// pass for every real second (default: none, the real monotonic clock). Fault tests
    /// use it to emulate clock-rate error: within `[1 - rho, 1 + rho]` the guarantee holds;
    /// beyond it, it does not (that is how they prove their checker finds overlaps).
    /// Never set it in production. Must be finite and positive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_rate: Option<f64>,
}

fn default_lease() -> Duration {
    Duration::from_secs(2)
}
fn default_renew_fraction() -> f64 {
    1.0 / 3.0
}
fn default_rho() -> f64 {
    0.001
}
fn default_snapshot_every() -> u64 {
    10_000
}
fn default_max_payload() -> usize {
    DEFAULT_MAX_FRAME_LEN / 2
}

/// Why a [`Config`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The protocol settings are inconsistent (see the inner error).
    #[error(transparent)]
    Protocol(#[from] gen_paxos_core::Error),
    /// A duration that must be positive is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// The heartbeat interval is not shorter than the peer timeout.
    #[error("heartbeat interval {heartbeat:?} must be shorter than the peer timeout {timeout:?}")]
    Heartbeat {
        /// The heartbeat interval.
        heartbeat: Duration,
        /// The peer timeout.
        timeout: Duration,
    },
    /// The payload limit is out of range.
    #[error("max payload length must be between 64 bytes and 16 MiB, got {0}")]
    PayloadLimit(usize),
    /// The test-only clock rate is not a finite positive number.
    #[error("clock rate must be a finite number greater than 0, got {0}")]
    ClockRate(f64),
}

impl Config {
    /// Defaults for node `node` of the voter set `voters`: lease 2 s, renewal after a
    /// third, margin 5% of the lease, `rho` 0.1%.
    pub fn new(node: NodeId, voters: Vec<NodeId>) -> Self {
        Config {
            node,
            voters,
            observers: Vec::new(),
            single_node: false,
            cluster_name: None,
            lease_duration: default_lease(),
            renew_fraction: default_renew_fraction(),
            rho: default_rho(),
            surrender_margin: None,
            retransmit_interval: None,
            jitter: None,
            attempt_rate: None,
            attempt_burst: None,
            one_round_renewals: None,
            shed_load: None,
            renewal_events: None,
            renewal_grid: None,
            call_timeout: None,
            sync_timeout: None,
            heartbeat_interval: None,
            peer_timeout: None,
            max_payload_len: default_max_payload(),
            snapshot_every: default_snapshot_every(),
            seed: None,
            incarnation: None,
            ballot_floor: None,
            clock_rate: None,
        }
    }

    /// Adds learner-only nodes.
    pub fn with_observers(mut self, observers: Vec<NodeId>) -> Self {
        self.observers = observers;
        self
    }

    /// Sets the lease duration (the derived defaults follow it).
    pub fn with_lease_duration(mut self, lease: Duration) -> Self {
        self.lease_duration = lease;
        self
    }

    /// The configuration of the protocol core this describes.
    pub(crate) fn core_config(&self) -> gen_paxos_core::Config {
        let mut core = gen_paxos_core::Config::new(self.node, self.voters.clone());
        core.observers = self.observers.clone();
        core.single_node = self.single_node;
        core.cluster = self.cluster_name.clone().unwrap_or_default();
        core.wire_version = u16::from(crate::codec::WIRE_VERSION);
        core.set_lease_duration(self.lease_duration);
        core.rho = self.rho;
        core.renew_fraction = self.renew_fraction;
        if let Some(m) = self.surrender_margin {
            core.surrender_margin = m;
        }
        if let Some(r) = self.retransmit_interval {
            core.retransmit_interval = r;
        }
        if let Some(j) = self.jitter {
            core.jitter = j;
        }
        if let Some(r) = self.attempt_rate {
            core.attempt_rate = r;
        }
        if let Some(b) = self.attempt_burst {
            core.attempt_burst = b;
        }
        if let Some(one) = self.one_round_renewals {
            core.one_round_renewals = one;
        }
        if let Some(shed) = self.shed_load {
            core.shed_load = shed;
        }
        if let Some(grid) = self.renewal_grid {
            core.renewal_grid = grid;
        }
        core
    }

    /// The cluster fingerprint: what every node of the cluster must share.
    pub fn fingerprint(&self) -> gen_paxos_core::Fingerprint {
        self.core_config().fingerprint()
    }

    /// Checks the configuration, with a message saying what is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.core_config().timing()?;
        if self.call_timeout().is_zero() {
            return Err(ConfigError::Zero("call timeout"));
        }
        if self.sync_timeout().is_zero() {
            return Err(ConfigError::Zero("sync timeout"));
        }
        if self.heartbeat_interval().is_zero() {
            return Err(ConfigError::Zero("heartbeat interval"));
        }
        if self.heartbeat_interval() >= self.peer_timeout() {
            return Err(ConfigError::Heartbeat {
                heartbeat: self.heartbeat_interval(),
                timeout: self.peer_timeout(),
            });
        }
        if self.snapshot_every == 0 {
            return Err(ConfigError::Zero("snapshot_every"));
        }
        if !(64..=MAX_FRAME_LEN_CAP).contains(&self.max_payload_len) {
            return Err(ConfigError::PayloadLimit(self.max_payload_len));
        }
        if let Some(rate) = self.clock_rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(ConfigError::ClockRate(rate));
        }
        Ok(())
    }

    /// The surrender margin in force.
    pub fn surrender_margin(&self) -> Duration {
        self.core_config().surrender_margin
    }

    /// The jitter in force: the random spread of attempts and the step between candidate
    /// priorities.
    pub fn jitter(&self) -> Duration {
        self.core_config().jitter
    }

    /// When renewal starts after a lease's Prepare was sent.
    pub fn renew_after(&self) -> Duration {
        self.lease_duration.mul_f64(self.renew_fraction)
    }

    /// `D_A`: how long acceptors exclude other owners after accepting (T2). A crashed
    /// master's successor is elected about this long after the crash.
    pub fn acceptor_duration(&self) -> Duration {
        gen_paxos_core::acceptor_duration(self.lease_duration, self.rho)
    }

    /// The `leader_call` bound in force.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout.unwrap_or(self.lease_duration)
    }

    /// The sync-payload wait in force.
    pub fn sync_timeout(&self) -> Duration {
        self.sync_timeout.unwrap_or(self.lease_duration / 20)
    }

    /// The heartbeat interval in force.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval.unwrap_or(self.lease_duration / 4)
    }

    /// The peer timeout in force.
    pub fn peer_timeout(&self) -> Duration {
        self.peer_timeout.unwrap_or(self.lease_duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_derived_from_the_lease() {
        let config = Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.surrender_margin(), Duration::from_millis(100));
        assert_eq!(config.heartbeat_interval(), Duration::from_millis(500));
        assert!(config.acceptor_duration() > config.lease_duration);
    }

    #[test]
    fn clock_rate_must_be_finite_and_positive() {
        let mut config = Config::new(NodeId(1), vec![NodeId(1)]);
        config.single_node = true;
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            config.clock_rate = Some(bad);
            assert!(matches!(config.validate(), Err(ConfigError::ClockRate(_))));
        }
        config.clock_rate = Some(1.02);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn attempt_pacing_renewal_rounds_and_shedding_reach_the_core_and_a_zero_rate_is_refused() {
        let text = "node = 1\nvoters = [1, 2, 3]\nattempt_rate = 500\nattempt_burst = 20\n";
        let config: Config = toml::from_str(text).expect("parses");
        let core = config.core_config();
        assert_eq!((core.attempt_rate, core.attempt_burst), (500, 20));
        assert!(core.one_round_renewals, "on by default");
        let two: Config =
            toml::from_str(&format!("{text}one_round_renewals = false\n")).expect("parses");
        assert!(!two.core_config().one_round_renewals);
        assert!(core.shed_load, "on by default");
        let keep: Config = toml::from_str(&format!("{text}shed_load = false\n")).expect("parses");
        assert!(!keep.core_config().shed_load);
        let mut zero = config.clone();
        zero.attempt_rate = Some(0);
        assert!(zero.validate().is_err());
    }

    #[test]
    fn the_renewal_grid_reaches_the_core_within_its_bounds_and_leaves_the_fingerprint_alone() {
        let text = "node = 1\nvoters = [1, 2, 3]\nlease_duration = \"2s\"\n";
        let plain: Config = toml::from_str(text).expect("parses");
        let step = |c: &Config, held: u64| {
            let timing = c.core_config().timing().expect("valid");
            (timing.renewal_grid, timing.renewal_step(held))
        };
        // Default: 5% of the lease (100 ms), the step for a node holding 1,000 leases (one
        // holding a single lease renews on the jitter step, 10 ms).
        assert_eq!(
            step(&plain, 1_000),
            (Duration::from_millis(100), Duration::from_millis(100))
        );
        assert_eq!(step(&plain, 1).1, Duration::from_millis(10));
        let coarse: Config =
            toml::from_str(&format!("{text}renewal_grid = \"200ms\"\n")).expect("parses");
        assert_eq!(
            coarse.core_config().renewal_grid,
            Duration::from_millis(200)
        );
        // (A node holding 500: the step in which 500 of its renewals fall due is 667 ms.)
        assert_eq!(
            step(&coarse, 500),
            (Duration::from_millis(200), Duration::from_millis(200))
        );
        // At most a quarter of the renewal's slack: (2 s - 100 ms - 666.67 ms) / 4.
        let huge: Config =
            toml::from_str(&format!("{text}renewal_grid = \"10s\"\n")).expect("parses");
        let (grid, _) = step(&huge, 1);
        assert!(
            grid > Duration::from_millis(308) && grid < Duration::from_millis(309),
            "{grid:?}"
        );
        // Zero: the jitter's step (10 ms), whatever the node holds.
        let fine: Config =
            toml::from_str(&format!("{text}renewal_grid = \"0s\"\n")).expect("parses");
        assert_eq!(
            step(&fine, 1_000),
            (Duration::from_millis(10), Duration::from_millis(10))
        );
        assert_eq!(coarse.fingerprint(), plain.fingerprint());
        assert_eq!(coarse.validate(), Ok(()));
    }
}
