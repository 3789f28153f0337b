//! Does the data directory stay small? Three nodes (in-memory transport, each on its own
//! `DiskStorage` in a temporary directory) keep a replicated map of KEYS keys (default 100)
//! with VALUE-byte values (default 16); the master appends N puts (default 1,000,000) from
//! 256 concurrent writers. Prints the appends per second and, at the end, each node's
//! directory size beside the live data (the map's snapshot). One follower is cut off for
//! the whole run; at the end it is let back in, and the time it takes to hold the same
//! state as the master (by entries or by the master's snapshot) is printed. See
//! docs/STORAGE.md.
//!
//! ```text
//! cargo run --release -p gen-paxos-election --example disk_bound -- [N] [KEYS] [VALUE]
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gen_paxos_election::memory::MemoryNetwork;
use gen_paxos_election::storage::DiskStorage;
use gen_paxos_election::{Candidacy, Config, Election, NoCallbacks, NodeId, StateMachine, Wire};

/// A map: a command is a 4-byte key and the value.
#[derive(Default)]
struct Map(BTreeMap<u32, Vec<u8>>);

impl StateMachine for Map {
    fn apply(&mut self, _index: u64, command: &[u8]) {
        if let (Some(key), Some(value)) = (command.get(..4), command.get(4..)) {
            let key = u32::from_le_bytes(key.try_into().unwrap_or_default());
            self.0.insert(key, value.to_vec());
        }
    }
    fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        out
    }
    fn restore(&mut self, snapshot: &[u8]) {
        self.0.clear();
        let mut rest = snapshot;
        while rest.len() >= 8 {
            let word = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or_default());
            let (k, len) = (word(&rest[..4]), word(&rest[4..8]) as usize);
            let value = rest.get(8..8 + len).unwrap_or_default();
            self.0.insert(k, value.to_vec());
            rest = rest.get(8 + len..).unwrap_or_default();
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> ExitCode {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (n, keys, value_len) = (arg(1, 1_000_000), arg(2, 100).max(1), arg(3, 16));
    let base = std::env::temp_dir().join(format!("gen-paxos-disk-bound-{}", std::process::id()));
    let net: MemoryNetwork<Wire> = MemoryNetwork::new(1);
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let mut leases = Vec::new();
    for &id in &ids {
        let mut config = Config::new(id, ids.clone());
        config.lease_duration = Duration::from_secs(1);
        let storage = match DiskStorage::create(base.join(format!("node-{id}"))) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let election = match Election::start_with_storage(config, net.transport(id), storage) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        match election
            .join_replicated("map", NoCallbacks, Candidacy::candidate(), Map::default())
            .await
        {
            Ok(lease) => leases.push((election, lease)),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let master = loop {
        if let Some((_, lease)) = leases.iter().find(|(_, l)| l.read(|_| ()).is_ok()) {
            break lease.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let behind = leases
        .iter()
        .position(|(_, l)| l.read(|_| ()).is_err())
        .unwrap_or(2);
    net.isolate(ids[behind]);
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writers: Vec<_> = (0..256)
        .map(|_| {
            let (master, next) = (master.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let mut command = ((i % keys) as u32).to_le_bytes().to_vec();
                    command.resize(4 + value_len as usize, (i % 251) as u8);
                    if master.append(command).await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    for w in writers {
        let _ = w.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let applied = master.applied();
    let live = master.read_stale(|m| m.snapshot().len());
    println!(
        "appends={n} keys={keys} value={value_len}B applied_up_to={applied} elapsed={secs:.1}s rate={:.0}/s",
        n as f64 / secs
    );
    // The follower cut off for the whole run comes back: how long until it holds it all?
    let lagging = leases[behind].1.clone();
    let missed = applied.saturating_sub(lagging.applied());
    let healed = Instant::now();
    net.heal();
    while lagging.read_stale(|m| m.0.clone()) != master.read_stale(|m| m.0.clone()) {
        if healed.elapsed() > Duration::from_secs(60) {
            println!("node {}: did not catch up within 60 s", ids[behind]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "node {}: missed {missed} entries, caught up {:.0} ms after it was let back in",
        ids[behind],
        healed.elapsed().as_secs_f64() * 1e3
    );
    for &id in &ids {
        let size = dir_size(&base.join(format!("node-{id}")));
        println!(
            "node {id}: data directory {size} bytes, live data (snapshot) {live} bytes, ratio {:.1}",
            size as f64 / live.max(1) as f64
        );
    }
    for (election, _) in &leases {
        election.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&base);
    ExitCode::SUCCESS
}
