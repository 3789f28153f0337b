//! The trial cluster running the key-value store (`node --kv`): who serves it, what each
//! node has applied, and failover after SIGKILL timed to the new master's `ready` line.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rustix::process::Signal;

use super::events::Kind;
use super::{Cluster, random_wait};

/// The store's lease.
const KV: &str = "kv";

/// One failover of the store: SIGKILL of its master until another has its log ready.
#[derive(Debug, Clone)]
pub struct KvFailover {
    /// From the kill to the new master's `ready` line (ms).
    pub total: f64,
    /// From the kill to its `elected` line (ms).
    pub elected: f64,
    /// The wait no protocol can avoid: the killed master's last renewal plus the
    /// acceptors' promise, after the kill (ms).
    pub floor: f64,
    /// Entries the new master holds, all applied, when ready.
    pub entries: u64,
}

impl Cluster {
    /// The client certificates' directory.
    pub fn certs(&self) -> &std::path::Path {
        &self.certs
    }

    /// Node `id`'s address.
    pub fn addr(&self, id: u64) -> Option<&str> {
        self.addrs
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, a)| a.as_str())
    }

    /// Sends `signal` to node `id`; returns when (wall-clock ms).
    pub fn signal(&self, id: u64, signal: Signal) -> Result<f64> {
        self.nodes
            .get(&id)
            .with_context(|| format!("node {id} is not running"))?
            .signal(signal)
    }

    /// `gen-paxos status --json --lease kv` on node `id`: (master, applied, ready).
    pub fn kv_status(&self, id: u64) -> Result<(Option<u64>, u64, bool)> {
        let addr = self.addr(id).context("no such node")?;
        let out = Command::new(&self.setup.bin)
            .args([
                "status",
                "--json",
                "--lease",
                KV,
                "--timeout",
                "2s",
                "--peer",
            ])
            .arg(format!("{id}={addr}"))
            .arg("--certs")
            .arg(&self.certs)
            .output()
            .context("cannot run gen-paxos status")?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "status of node {id}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        let lease = &v["leases"][0];
        Ok((
            lease["master"].as_u64(),
            lease["applied"]
                .as_u64()
                .context("no applied count: not a kv node")?,
            lease["ready"].as_bool().unwrap_or(false),
        ))
    }

    /// The node serving the store now (master, log ready), waiting up to `limit`.
    pub fn kv_master(&self, limit: Duration) -> Result<u64> {
        let until = std::time::Instant::now() + limit;
        loop {
            for id in self.nodes.keys() {
                if let Ok((_, _, true)) = self.kv_status(*id) {
                    return Ok(*id);
                }
            }
            if std::time::Instant::now() >= until {
                bail!("no node serves the kv store within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL of the store's master at a random point of its renewal cycle; it is
    /// restarted at once on its data directory (quarantined, it stays out of the failover).
    pub fn kv_failover(&mut self, rng: &mut fastrand::Rng) -> Result<KvFailover> {
        self.kv_master(Duration::from_secs(10))?;
        std::thread::sleep(random_wait(rng, self.setup.lease / 3));
        let master = self.kv_master(Duration::from_secs(10))?;
        let proc = self.nodes.get_mut(&master).context("master not running")?;
        let kill = proc.signal(Signal::KILL)?;
        proc.wait_exit(Duration::from_secs(5));
        proc.drain(Duration::from_secs(2));
        let last = self
            .log
            .last(|e| {
                e.node == master
                    && e.lease == KV
                    && matches!(e.kind, Kind::Elected | Kind::Renewed)
                    && e.ts <= kill
            })
            .map(|e| e.ts)
            .context("the master's last renewal of kv is unknown")?;
        self.start(master)?;
        let limit = Duration::from_secs(10);
        let ready = self
            .log
            .wait_for(limit, |e| {
                matches!(e.kind, Kind::Ready(_)) && e.node != master && e.ts > kill
            })
            .context("no new kv master ready within 10 s of the kill")?;
        let elected = self
            .log
            .last(|e| {
                e.kind == Kind::Elected && e.lease == KV && e.node == ready.node && e.ts > kill
            })
            .context("a ready master without its elected line")?;
        let Kind::Ready(entries) = ready.kind else {
            bail!("not a ready line: {ready:?}");
        };
        let d_a = self.d_a().as_secs_f64() * 1000.0;
        Ok(KvFailover {
            total: ready.ts - kill,
            elected: elected.ts - kill,
            floor: (last + d_a - kill).max(0.0),
            entries,
        })
    }
}
