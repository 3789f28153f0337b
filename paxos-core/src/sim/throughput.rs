//! The replicated log's core throughput, with no network and no disk: three `Node`s in
//! one thread, every batch delivered at once, every write confirmed at once, one master
//! appending in batches and every replica snapshotting now and then. The caller times
//! [`LogBench::run`] (the `log_speed` example with the wall clock, the benchmark harness
//! with the thread's CPU time); this module reads no clock.

use std::time::Duration;

use crate::Config;
use crate::event::Event;
use crate::id::{Incarnation, LeaseName, NodeId};
use crate::log::LogEvent;
use crate::node::Node;
use crate::time::Timestamp;

/// Three nodes with a ready master for one log.
#[derive(Debug)]
pub struct LogBench {
    nodes: Vec<Node>,
    master: usize,
    lease: LeaseName,
    now: Timestamp,
}

impl LogBench {
    /// Elects a master and lets it recover (simulated time steps until one is ready; then
    /// time stands still, so the lease holds for the whole run).
    pub fn new() -> Result<LogBench, String> {
        let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let lease = LeaseName::new("log").map_err(|e| e.to_string())?;
        let mut nodes = Vec::new();
        for &id in &ids {
            let mut c = Config::new(id, ids.clone());
            c.set_lease_duration(Duration::from_secs(2));
            let mut n = Node::new(c, Timestamp::ZERO, Incarnation(id.0), 1, id.0)
                .map_err(|e| e.to_string())?;
            n.enable_log(&lease).map_err(|e| e.to_string())?;
            n.join(Timestamp::ZERO, lease.clone(), Some(3))
                .map_err(|e| e.to_string())?;
            nodes.push(n);
        }
        let mut now = Timestamp::ZERO;
        loop {
            now = now + Duration::from_millis(10);
            for n in &mut nodes {
                n.handle_timeout(now);
            }
            pump(&mut nodes, now);
            if let Some(master) = nodes.iter().position(|n| n.is_ready(now, &lease)) {
                return Ok(LogBench {
                    nodes,
                    master,
                    lease,
                    now,
                });
            }
            if now > Timestamp::from_nanos(60_000_000_000) {
                return Err("no ready master after 60 s of simulated time".into());
            }
        }
    }

    /// Appends `appends` values of `bytes` bytes, `batch` at a time
    /// ([`Node::append_batch`]), and moves every message and write until each is
    /// acknowledged; every `64 * batch` appends each replica snapshots what it applied.
    /// Returns the appends acknowledged.
    pub fn run(&mut self, appends: u64, batch: u64, bytes: usize) -> u64 {
        let (now, lease) = (self.now, self.lease.clone());
        let value = vec![7u8; bytes];
        let batch = batch.max(1);
        let (mut sent, mut acked) = (0u64, 0u64);
        while acked < appends {
            let n = batch.min(appends - sent);
            let values = (0..n).map(|_| value.as_slice());
            let appended = match self.nodes[self.master].append_batch(now, &lease, values) {
                Ok(slots) => {
                    sent += slots.end - slots.start;
                    true
                }
                Err(_) => false,
            };
            let moved = pump(&mut self.nodes, now);
            acked += moved;
            if !appended && moved == 0 {
                break; // Nothing takes appends any more: report what was acknowledged.
            }
            if acked % (batch * 64) < batch {
                for n in &mut self.nodes {
                    let applied = n.log_applied(&lease).unwrap_or(0);
                    let _ = n.compact_log(now, &lease, applied, &b"state"[..]);
                }
                pump(&mut self.nodes, now);
            }
        }
        acked
    }
}

/// Moves every output until quiet; returns the appends acknowledged on the way.
fn pump(nodes: &mut [Node], now: Timestamp) -> u64 {
    let mut acked = 0;
    let mut wire = Vec::new();
    loop {
        let mut moved = false;
        for (i, node) in nodes.iter_mut().enumerate() {
            while let Some(req) = node.poll_persist() {
                node.handle_persisted(now, req.token);
                moved = true;
            }
            while let Some(e) = node.poll_event() {
                if matches!(
                    e,
                    Event::Log {
                        event: LogEvent::Appended { .. },
                        ..
                    }
                ) {
                    acked += 1;
                }
            }
            while let Some(t) = node.poll_transmit() {
                wire.push((NodeId(i as u64 + 1), t));
            }
            while node.poll_hello().is_some() {}
        }
        for (from, t) in wire.drain(..) {
            moved = true;
            let to = &mut nodes[t.to.0 as usize - 1];
            let digest = to.fingerprint_digest();
            to.handle_message(now, from, digest, t.messages);
        }
        if !moved {
            return acked;
        }
    }
}
