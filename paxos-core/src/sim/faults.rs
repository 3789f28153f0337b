//! The faults the simulator injects: crashes, pauses, partitions, loss bursts, resigns
//! and forged messages, each drawn from the seed.

use crate::ballot::Ballot;
use crate::id::Incarnation;
use crate::message::{Envelope, Message};
use crate::time::nanos;

use super::checker::ms;
use super::queue::{Ev, Payload};
use super::{Sim, WALL_EPOCH_MS};

impl Sim<'_> {
    /// Injects one random fault and schedules the next.
    pub(super) fn fault(&mut self) {
        if self.healed || self.now >= self.heal_at {
            return;
        }
        let lease = nanos(self.cfg.lease_duration);
        let next = self.now + lease / 10 + self.rng.below(lease);
        self.push(next, Ev::Fault);
        let n = self.hosts.len();
        let target = self.pick_target();
        let mut kind = self.rng.below(100);
        if self.cfg.split && kind <= 67 {
            // A split cluster is only detectable while its shared node is reachable: no
            // crashes, pauses or partitions (see `SimConfig::split`).
            kind = 68 + kind % 32;
        }
        match kind {
            0..=20 => {
                let down = lease / 20 + self.rng.below(lease * 3);
                self.crash(target, down);
            }
            21..=41 => {
                let h = &mut self.hosts[target];
                if h.node.is_some() && !h.paused {
                    h.paused = true;
                    let epoch = h.epoch;
                    let dur = lease / 5 + self.rng.below(lease * 24 / 5);
                    self.note(|| format!("node {} pauses for {}", target + 1, ms(dur)));
                    self.push(
                        self.now + dur,
                        Ev::Resume {
                            host: target,
                            epoch,
                        },
                    );
                }
            }
            42..=67 => {
                self.partition(target);
                self.partition_gen += 1;
                let dur = lease * 3 / 10 + self.rng.below(lease * 4);
                let generation = self.partition_gen;
                self.push(self.now + dur, Ev::HealPartition { generation });
            }
            82..=89 => self.forge(target),
            68..=81 => {
                let lease_name =
                    self.leases[self.rng.below(self.leases.len() as u64) as usize].clone();
                let local = self.hosts[target].clock.local(self.now);
                let paused = self.hosts[target].paused;
                if let Some(node) = self.node_mut(target).filter(|_| !paused) {
                    if node.resign(local, &lease_name).unwrap_or(false) {
                        self.report.steps += 1;
                        self.note(|| format!("node {} resigns {lease_name}", target + 1));
                    }
                    self.pump(target);
                }
            }
            _ => {
                self.loss = 0.3 + self.rng.unit() * 0.6;
                self.loss_gen += 1;
                let generation = self.loss_gen;
                let dur = lease / 5 + self.rng.below(lease * 2);
                let loss = self.loss;
                self.note(|| format!("loss {loss:.2} for {}", ms(dur)));
                self.push(self.now + dur, Ev::EndLossBurst { generation });
            }
        }
        let _ = n;
    }

    /// A faulty-but-authenticated peer: `target` sends every other host one message in its
    /// own name (the transport authenticates senders, so only the content is forged) with
    /// an extreme ballot: near `2^64`, just over the ballot bound B1, or just under it.
    pub(super) fn forge(&mut self, target: usize) {
        let h = &self.hosts[target];
        let Some(node) = h.node.as_ref().filter(|_| !h.paused) else {
            return;
        };
        let digest = node.fingerprint_digest();
        let id = h.id;
        let floor = (WALL_EPOCH_MS + self.now / 1_000_000).saturating_add_signed(h.wall_skew_ms);
        let lead = crate::MAX_BALLOT_LEAD;
        let counter = match self.rng.below(4) {
            0 => u64::MAX,
            1 => u64::MAX - self.rng.below(1 << 20),
            // Clocks differ by up to 200 ms: 1000 ms over (under) is over (under) for all.
            2 => floor + lead + 1000 + self.rng.below(1 << 20),
            _ => floor + lead - 1000 - self.rng.below(1 << 20),
        };
        let ballot = Ballot {
            counter,
            incarnation: Incarnation(self.rng.next_u64()),
            node: id,
        };
        let lease_d = self.cfg.lease_duration;
        let message = match self.rng.below(4) {
            0 => Message::Prepare { ballot },
            1 => Message::Accept {
                ballot,
                lease_duration: lease_d,
            },
            2 => Message::Release { ballot },
            _ => Message::Learn {
                ballot,
                remaining: lease_d,
            },
        };
        let lease = self.leases[self.rng.below(self.leases.len() as u64) as usize].clone();
        self.note(|| format!("node {} forges {lease} {message:?}", target + 1));
        let envelope = Envelope { lease, message };
        for other in 0..self.hosts.len() {
            if other != target {
                let to = self.hosts[other].id;
                self.route(target, to, digest, Payload::Batch(vec![envelope.clone()]));
            }
        }
    }

    /// The master of a random lease most of the time, sometimes a node in the middle of an
    /// attempt, else any node.
    pub(super) fn pick_target(&mut self) -> usize {
        let n = self.hosts.len();
        if self.rng.chance(0.3) {
            let recent = self.now.saturating_sub(50_000_000);
            let busy: Vec<usize> = (0..n)
                .filter(|&h| self.hosts[h].last_prepare > recent)
                .collect();
            if !busy.is_empty() {
                return busy[self.rng.below(busy.len() as u64) as usize];
            }
        }
        if self.rng.chance(0.6) {
            let lease = self.leases[self.rng.below(self.leases.len() as u64) as usize].clone();
            if let Some(h) = (0..n).find(|&h| self.checker.holds(self.now, h, &lease)) {
                return h;
            }
        }
        self.rng.below(n as u64) as usize
    }

    /// Cuts links in one of the partition shapes, around `target`.
    pub(super) fn partition(&mut self, target: usize) {
        let n = self.hosts.len();
        self.cut.iter_mut().for_each(|c| *c = false);
        let shape = self.rng.below(6);
        let cut = |a: usize, b: usize, cut: &mut Vec<bool>| cut[a * n + b] = true;
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let name = match shape {
            0 => {
                for o in (0..n).filter(|&o| o != target) {
                    cut(target, o, &mut self.cut);
                    cut(o, target, &mut self.cut);
                }
                "isolated"
            }
            1 => {
                // A minority including the target, split from the rest.
                let size = 1 + self.rng.below((n as u64 - 1) / 2) as usize;
                let mut minority: Vec<usize> = order
                    .iter()
                    .copied()
                    .filter(|&o| o != target)
                    .take(size - 1)
                    .collect();
                minority.push(target);
                for a in 0..n {
                    for b in 0..n {
                        if minority.contains(&a) != minority.contains(&b) {
                            cut(a, b, &mut self.cut);
                        }
                    }
                }
                "split off with a minority"
            }
            2 => {
                for o in (0..n).filter(|&o| o != target) {
                    cut(target, o, &mut self.cut);
                }
                "one-way muted (hears, is not heard)"
            }
            3 => {
                for o in (0..n).filter(|&o| o != target) {
                    cut(o, target, &mut self.cut);
                }
                "one-way deafened (is heard, hears nothing)"
            }
            4 => {
                // Chained: a line; only neighbours talk.
                for i in 0..n {
                    for j in 0..n {
                        if i.abs_diff(j) > 1 {
                            cut(order[i], order[j], &mut self.cut);
                        }
                    }
                }
                "in a chain"
            }
            _ => {
                // Quorum loss: only the target talks to everyone; the others only to it.
                for a in 0..n {
                    for b in 0..n {
                        if a != b && a != target && b != target {
                            cut(a, b, &mut self.cut);
                        }
                    }
                }
                "the hub of a quorum-loss star"
            }
        };
        self.note(|| format!("partition: node {} {name}", target + 1));
    }
}
