//! An exhaustive, bounded model checker over the real [`Node`](crate::Node) (feature `sim`).
//!
//! Where the simulator ([`crate::sim::run`]) draws one random history per seed, the checker
//! walks **every** history of a small cluster up to a bound, running the code that ships:
//! each host is a `paxos_core::Node`, cloned at every branch, and each step is one input
//! to one node. A state is the nodes' own state (hashed canonically: `state_hash.rs`), the
//! messages in flight, real time, and what the properties need to remember. Equal states
//! reached by different paths merge, so the search visits each distinct state once per
//! remaining depth.
//!
//! # The model
//!
//! - **Hosts** run a `Node` each, one lease (`lease-0`), every voter a candidate (priorities
//!   from [`CheckConfig::priorities`]). Real time is discrete; each host's monotonic clock
//!   runs at a fixed rate, `1 - rho` or `1 + rho` (every assignment is an initial state;
//!   beyond `rho` for the `clock-rate` switch).
//! - **Steps** ([`Action`]): deliver a message in flight ([`Action::Deliver`]); deliver it
//!   and keep it in flight, so it can arrive again, also after the addressee restarted
//!   ([`Action::Duplicate`], a budget); fire a host's timer, moving real time to when it is
//!   due if that is later ([`Action::Fire`]: the other hosts' timers may fall behind, which
//!   is how a paused or stalled process looks); let real time pass ([`Action::Tick`], a
//!   budget); crash a host, losing all its volatile state ([`Action::Crash`], a budget) and
//!   restart it with a fresh incarnation ([`Action::Restart`]); resign the lease
//!   ([`Action::Resign`], a budget). Messages are never lost by an action of their own: a
//!   message that is never delivered is lost, and the search covers every history in which
//!   it is not (a drop action would only add states, not histories of the nodes). Hellos
//!   (fingerprint exchange) arrive at once: they carry configuration, not lease state.
//! - **Properties**, checked at every step, as the simulator checks them: at most one host
//!   holds authority over the lease at any real instant (from its `Elected`/`Renewed` event
//!   to the earlier of its `Surrendered` event, its crash and the real instant its local
//!   deadline passes); the fencing token increases from one owner to the next unless a
//!   majority of voters restarted in between; every activation is backed by a majority of
//!   distinct acceptors that accepted its ballot.
//! - **No symmetry reduction**: ballots break ties by node id and the hosts' clocks differ,
//!   so renaming hosts is not a symmetry of the protocol; merging equal states is the only
//!   reduction.
//!
//! A counterexample is printed step by step ([`Counterexample::trace`]) and as a test that
//! replays it ([`Counterexample::as_test`], with [`replay`]).
//!
//! ```
//! use gen_paxos_core::sim::check::{CheckConfig, check};
//! let mut config = CheckConfig::new(3);
//! config.depth = 6;
//! let report = check(&config);
//! assert!(report.counterexample.is_none());
//! assert!(report.states > 100);
//! ```

mod ask;
mod describe;
mod explorer;
mod fingerprint;
mod log;
mod opening;
mod properties;
mod search;
mod visited;
mod world;

use std::time::Duration;

pub use explorer::{Explorer, ExplorerState};
pub use search::{CheckReport, Counterexample, check};
pub use world::Action;

#[cfg(feature = "unsafe-rules")]
use crate::UnsafeRule;

/// What to check: the cluster, its configuration, and the bound.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// How many voters (hosts).
    pub voters: usize,
    /// Each voter's candidacy priority (0 to 3); `None` joins as a learner only. Missing
    /// entries are 0.
    pub priorities: Vec<Option<u8>>,
    /// The configured clock-rate bound.
    pub rho: f64,
    /// `D_P`.
    pub lease_duration: Duration,
    /// The retransmission interval within an attempt (fewer retransmissions, fewer
    /// states; safety may not depend on it).
    pub retransmit: Duration,
    /// How far one [`Action::Tick`] moves real time.
    pub tick: Duration,
    /// The longest history explored, in steps.
    pub depth: u32,
    /// How many [`Action::Crash`]es a history may contain.
    pub crashes: u8,
    /// How many [`Action::Duplicate`]s a history may contain.
    pub duplicates: u8,
    /// How many [`Action::Tick`]s a history may contain.
    pub ticks: u8,
    /// How many [`Action::Resign`]s a history may contain.
    pub resigns: u8,
    /// How many [`Action::Fire`]s a history may contain (`None`: any number). A budget
    /// lets a search reach deeper histories made of deliveries.
    pub fires: Option<u8>,
    /// Every host's clock rate is `1 + rho * u` for each `u` here, in every combination
    /// (each combination is an initial state).
    pub clock_choices: Vec<f64>,
    /// One initial clock assignment instead of every combination: host `i` runs at
    /// `1 + rho * clock[i]`.
    pub clock: Option<Vec<f64>>,
    /// At most this many messages in flight on each link (from one host to another):
    /// sending one more loses the oldest. `None`: unbounded, every message stays in
    /// flight until delivered. A capacity restricts the network (the search covers fewer
    /// histories), so a violation found with one is real, while a clean result holds for
    /// that network only.
    pub link_capacity: Option<usize>,
    /// Links that are down, both ways, as pairs of node ids (from 1): every lease, log
    /// and `ask` message sent on one is lost (hellos still pass: they carry
    /// configuration). A cut restricts the network, as a link capacity does: a violation
    /// found with one is real, a clean result holds for that network only.
    pub cut: Vec<(u64, u64)>,
    /// Check the fencing-token order (on by default). Off, only exclusivity and quorum
    /// backing are checked: a search then looks past token regressions for two masters.
    pub token_order: bool,
    /// The history starts with these steps, each the first enabled step whose one-line
    /// description (as a trace prints it, such as `node 1 timer fires` or `deliver node 2
    /// -> node 1: Log`) contains the text; the search is exhaustive from the state they
    /// reach, and [`CheckConfig::depth`] counts the steps after them. An opening narrows
    /// the search as a cut does: a violation found with one is real, a clean result
    /// holds for the histories that start with it.
    pub opening: Vec<String>,
    /// Stop after this many distinct states (`None`: when the bound is exhausted).
    pub max_states: Option<u64>,
    /// Run the replicated log on the lease and `ask` on `key-0`, with storage per host,
    /// client steps and the log's properties (see the module `log.rs`).
    pub log: bool,
    /// With the log: how many [`Action::Append`]s a history may contain.
    pub appends: u8,
    /// With the log: how many [`Action::Ask`]s a history may contain.
    pub asks: u8,
    /// With the log: how many [`Action::Get`]s a history may contain.
    pub gets: u8,
    /// With the log: how many [`Action::Forget`]s a history may contain.
    pub forgets: u8,
    /// With the log: how many [`Action::Compact`]s a history may contain.
    pub compactions: u8,
    /// With the log: every write is synced in the step that made it (no
    /// [`Action::Sync`], and a crash loses nothing written). Fewer steps per history,
    /// but the writes a crash loses are not covered.
    pub instant_sync: bool,
    /// Break one protocol rule on purpose.
    #[cfg(feature = "unsafe-rules")]
    pub unsafe_rule: Option<UnsafeRule>,
}

impl CheckConfig {
    /// `voters` candidates of priority 0, `rho` 0.001, lease 1 s with a retransmission
    /// every 250 ms, clocks at both edges of `rho`, depth 12, one crash, one duplicate, one
    /// tick of 250 ms, one resignation.
    pub fn new(voters: usize) -> Self {
        CheckConfig {
            voters,
            priorities: Vec::new(),
            rho: 0.001,
            lease_duration: Duration::from_secs(1),
            retransmit: Duration::from_millis(250),
            tick: Duration::from_millis(250),
            depth: 12,
            crashes: 1,
            duplicates: 1,
            ticks: 1,
            resigns: 1,
            fires: None,
            clock_choices: vec![-1.0, 1.0],
            clock: None,
            token_order: true,
            link_capacity: None,
            cut: Vec::new(),
            opening: Vec::new(),
            max_states: None,
            log: false,
            appends: 1,
            asks: 0,
            gets: 0,
            forgets: 0,
            compactions: 0,
            instant_sync: false,
            #[cfg(feature = "unsafe-rules")]
            unsafe_rule: None,
        }
    }

    fn unsafe_is(&self, _rule: &str) -> bool {
        #[cfg(feature = "unsafe-rules")]
        {
            self.unsafe_rule.is_some_and(|r| r.name() == _rule)
        }
        #[cfg(not(feature = "unsafe-rules"))]
        {
            false
        }
    }

    fn on_baseline(&self) -> bool {
        #[cfg(feature = "unsafe-rules")]
        {
            self.unsafe_rule.is_some_and(UnsafeRule::on_baseline)
        }
        #[cfg(not(feature = "unsafe-rules"))]
        {
            false
        }
    }

    /// How far clocks drift from real time: `rho`, or 20% for the `clock-rate` switch.
    fn drift(&self) -> f64 {
        if self.unsafe_is("clock-rate") {
            (self.rho * 100.0).max(0.2)
        } else {
            self.rho
        }
    }
}

/// Replays `actions` from the initial state whose clock rates are `1 + rho * u` for the
/// `clock` choices (one per host; see [`Counterexample::clock`]). Returns the violation
/// the history ends in, if any, or an error if an action is not enabled where it is taken
/// (the code changed since the history was recorded).
pub fn replay(
    config: &CheckConfig,
    clock: &[f64],
    actions: &[Action],
) -> Result<Option<String>, String> {
    let ctx = world::Context::new(config, clock)?;
    let mut world = ctx.initial();
    for (i, action) in actions.iter().enumerate() {
        if world.violation.is_some() {
            return Err(format!(
                "step {i}: the history already ended in a violation"
            ));
        }
        if !ctx.enabled(&world).contains(action) {
            return Err(format!("step {i}: {action:?} is not enabled"));
        }
        ctx.apply(&mut world, action);
    }
    Ok(world.violation)
}
