//! Fault tests with real processes: a cluster of `gen-paxos node` processes, faults injected
//! on a schedule (SIGKILL and restart, SIGSTOP/SIGCONT pauses, network partitions in network
//! namespaces with `nft` rules, clock-rate skew through the hidden `--clock-rate-for-tests`
//! option), a fenced workload, a checker over every event line, and a timeline picture.
//!
//! Used by `tests/fault_injection.rs` (the short CI run and the checker's own tests) and
//! `examples/faults.rs` (the soak).
//!
//! **The fenced workload** is an honest approximation, documented here: the node tool only
//! prints events, so each node has a *writer thread in the harness* that plays that node's
//! application. It reads only its own node's event stream (the latest `elected`/`renewed`
//! token and `deadline_ms`, cleared by `surrendered`) and, while that says "master" and the
//! wall clock is more than the surrender margin before the deadline, appends to a shared
//! append-only store with that token. The store rejects a token older than the newest it has
//! accepted (the fencing check). When the harness pauses a node, its writer freezes too; if
//! it was master at that moment it is frozen *between its lease check and its write* and
//! makes that write with the old token when it resumes (the classic GC-pause zombie). A
//! killed node's writer stops at once. The store logs every accepted write to a file; the
//! checker re-reads it: tokens must never go down (no stale write accepted) and every write
//! acknowledged to a writer must be there (no lost write).

mod checker;
mod cluster;
mod events;
mod netns;
mod schedule;
mod summary;
mod timeline;
mod workload;

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

pub use checker::*;
pub use cluster::*;
pub use events::*;
pub use netns::*;
pub use schedule::*;
pub use summary::*;
pub use timeline::*;

/// A fencing token, `(counter, incarnation, node)`, compared lexicographically.
pub type Token = [u64; 3];

/// The `rho` every node runs with (the default of `gen_paxos_election::Config`).
pub const RHO: f64 = 0.001;

/// Wall clock in Unix milliseconds, the same clock the nodes print.
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// `kill`, `pause`, `partition`, `clock-skew`.
    pub kind: &'static str,
    pub desc: String,
    /// The nodes it hit (for the picture).
    pub nodes: Vec<u64>,
    pub start: f64,
    pub end: f64,
    /// From when a master must exist again within the bound: the kill or the stop for
    /// crashes and pauses (a majority is still up), the heal for partitions; `None` for
    /// faults that last the whole run (clock-rate skew within rho).
    pub recover_from: Option<f64>,
}
