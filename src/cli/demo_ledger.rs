//! The demo's replicated-state scene: a ledger (a count and a sum of entries) kept by a
//! lease's replicated log, its master appending, and the next master recovering it.

use std::time::Duration;

use anyhow::{Result, bail};
use gen_paxos_election::{Candidacy, Election, NoCallbacks, NodeId, ReplicatedLease, StateMachine};
use tokio::time::Instant;

pub const LEDGER: &str = "ledger";

/// Entries applied, and the sum of their values.
#[derive(Debug, Default)]
pub struct Ledger {
    pub entries: u64,
    pub sum: u64,
}

impl StateMachine for Ledger {
    fn apply(&mut self, _index: u64, command: &[u8]) {
        self.entries += 1;
        self.sum += command.try_into().map(u64::from_le_bytes).unwrap_or(0);
    }
    fn snapshot(&self) -> Vec<u8> {
        [self.entries.to_le_bytes(), self.sum.to_le_bytes()].concat()
    }
    fn restore(&mut self, snapshot: &[u8]) {
        let word = |i: usize| {
            snapshot
                .get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        (self.entries, self.sum) = (word(0), word(1));
    }
}

pub type Handle = ReplicatedLease<(), Ledger>;

/// Every node joins the ledger; `prefer` stands with the highest priority.
pub async fn join(nodes: &[(NodeId, &Election)], prefer: NodeId) -> Result<Vec<(NodeId, Handle)>> {
    let mut handles = Vec::new();
    for (id, election) in nodes {
        let priority = if *id == prefer { 3 } else { 0 };
        let lease = election
            .join_replicated(
                LEDGER,
                NoCallbacks,
                Candidacy::with_priority(priority),
                Ledger::default(),
            )
            .await?;
        handles.push((*id, lease));
    }
    Ok(handles)
}

/// The node whose ledger serves lease reads (master, log recovered), other than `not`.
pub async fn ready(
    handles: &[(NodeId, Handle)],
    not: Option<NodeId>,
    within: Duration,
) -> Result<(Instant, NodeId, u64)> {
    let end = Instant::now() + within;
    loop {
        for (id, h) in handles.iter().filter(|(id, _)| Some(*id) != not) {
            if let Ok(entries) = h.read(|l| l.entries) {
                return Ok((Instant::now(), *id, entries));
            }
        }
        if Instant::now() > end {
            bail!("no ledger master ready within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
