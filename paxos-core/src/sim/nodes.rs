//! Hosts' lives in the simulation: start, crash, pause and resume, and pumping what a
//! node wants done into the checker and the network.

use std::time::Duration;

use crate::config::Config;
use crate::event::Event;
use crate::id::Incarnation;
use crate::node::Node;

use super::checker::ms;
use super::queue::{Ev, Payload};
use super::{Sim, WALL_EPOCH_MS};

impl Sim<'_> {
    /// A paused node wakes: it handles everything that queued up, then its timers, all at
    /// the same (late) local time, as a stalled event loop would.
    pub(super) fn resume(&mut self, host: usize) {
        self.hosts[host].paused = false;
        self.note(|| format!("node {} resumes", host + 1));
        let buffered = std::mem::take(&mut self.hosts[host].buffer);
        let local = self.hosts[host].clock.local(self.now);
        for (from, digest, payload) in buffered {
            self.report.steps += 1;
            if let Payload::Batch(batch) = &payload {
                self.report.deliveries += batch.len() as u64;
            }
            if let Some(node) = self.node_mut(host) {
                match payload {
                    Payload::Batch(batch) => node.handle_message(local, from, digest, batch),
                    Payload::Hello { wants_reply } => {
                        node.handle_hello(local, from, digest, wants_reply)
                    }
                }
            }
            self.pump(host);
        }
        if let Some(node) = self.node_mut(host) {
            node.handle_timeout(local);
        }
        self.report.steps += 1;
        self.pump(host);
    }

    pub(super) fn start_node(&mut self, host: usize) {
        let reuse = self.cfg.unsafe_is("reuse-ballot");
        let h = &self.hosts[host];
        let restart = h.epoch > 0;
        let incarnation = if reuse || !restart {
            h.first_incarnation
        } else {
            self.rng.next_u64()
        };
        let floor = if reuse {
            WALL_EPOCH_MS
        } else {
            WALL_EPOCH_MS + self.now / 1_000_000
        };
        let mut config = Config::new(h.id, h.voters.clone());
        config.observers = h.observers.clone();
        config.single_node = h.voters.len() == 1;
        config.rho = self.cfg.rho;
        config.set_lease_duration(self.cfg.lease_duration);
        config.surrender_margin = Duration::ZERO;
        config.jitter = super::sim_jitter(self.cfg.lease_duration);
        config.one_round_renewals = !self.cfg.two_round_renewals;
        #[cfg(feature = "unsafe-rules")]
        {
            config.unsafe_rule = self.cfg.unsafe_rule;
        }
        let local = h.clock.local(self.now);
        let seed = self.rng.next_u64();
        let mut node = match Node::new(config, local, Incarnation(incarnation), floor, seed) {
            Ok(node) => node,
            Err(e) => {
                self.checker
                    .violations
                    .push(format!("node {} refused its configuration: {e}", h.id));
                return;
            }
        };
        node.record_accepts();
        self.start_replica(host, &mut node);
        let h = &self.hosts[host];
        for lease in &self.leases {
            if let Err(e) = node.join(local, lease.clone(), h.priority) {
                self.checker
                    .violations
                    .push(format!("node {} could not join {lease}: {e}", h.id));
            }
        }
        let h = &mut self.hosts[host];
        h.node = Some(node);
        h.epoch += 1;
        h.paused = false;
        self.note(|| format!("node {} starts (incarnation {incarnation:x})", host + 1));
        self.pump(host);
    }

    pub(super) fn crash(&mut self, host: usize, down_for: u64) {
        let h = &mut self.hosts[host];
        if h.node.is_none() {
            return;
        }
        h.node = None;
        h.paused = false;
        h.buffer.clear();
        h.epoch += 1;
        h.timer_gen += 1;
        h.timer_at = u64::MAX;
        let epoch = h.epoch;
        let voter = h.voter;
        self.crash_replica(host);
        self.checker.end_all_claims(self.now, host);
        if voter {
            // Its acceptor state is gone from this instant, not from the restart.
            self.checker.restarted(1 << host);
        }
        self.note(|| format!("node {} crashes for {}", host + 1, ms(down_for)));
        self.push(self.now + down_for, Ev::Restart { host, epoch });
    }

    /// Takes everything the node wants done: acceptances (for the checker), events, messages,
    /// and its next wake-up.
    pub(super) fn pump(&mut self, host: usize) {
        let now = self.now;
        let Some(node) = self.hosts[host].node.as_mut() else {
            return;
        };
        for (lease, ballot) in node.take_accept_log() {
            self.checker.accepted(&lease, ballot, host);
        }
        let owner = node.owner();
        let clock = self.hosts[host].clock;
        while let Some(event) = self.hosts[host].node.as_mut().and_then(Node::poll_event) {
            self.hash(host, &event);
            match event {
                Event::Elected {
                    lease,
                    token,
                    deadline,
                }
                | Event::Renewed {
                    lease,
                    token,
                    deadline,
                } => {
                    if !self.hosts[host].voter {
                        self.checker
                            .violations
                            .push(format!("observer {} was elected for {lease}", host + 1));
                    }
                    let end = clock.real(deadline);
                    if self.checker.holds(now, host, &lease) {
                        // A renewal: the claim continues under the new token.
                    } else {
                        self.report.elections += 1;
                        self.note(|| {
                            format!(
                                "node {} ELECTED {lease} token {token} until t={}",
                                host + 1,
                                ms(end)
                            )
                        });
                    }
                    let majority = self.hosts[host].voters.len() / 2 + 1;
                    self.checker
                        .claim(now, host, owner, &lease, token, end, majority);
                }
                Event::Surrendered {
                    lease,
                    token,
                    reason,
                } => {
                    self.checker.end_claim(now, host, &lease);
                    self.note(|| {
                        format!(
                            "node {} surrenders {lease} token {token} ({})",
                            host + 1,
                            reason.as_str()
                        )
                    });
                }
                Event::Log { event, .. } => self.log_event(host, &event),
                Event::Ask(event) => self.ask_event(host, &event),
                _ => {}
            }
        }
        self.take_writes(host);
        let digest = self.hosts[host]
            .node
            .as_ref()
            .map_or(0, Node::fingerprint_digest);
        while let Some(t) = self.hosts[host].node.as_mut().and_then(Node::poll_transmit) {
            self.hash(host, &(t.to, &t.messages));
            self.route(host, t.to, digest, Payload::Batch(t.messages));
        }
        while let Some(h) = self.hosts[host].node.as_mut().and_then(Node::poll_hello) {
            self.hash(host, &(h.to, h.wants_reply));
            let hello = Payload::Hello {
                wants_reply: h.wants_reply,
            };
            self.route(host, h.to, digest, hello);
        }
        let timeout = self.hosts[host].node.as_ref().and_then(Node::poll_timeout);
        self.hash(host, &timeout);
        let h = &mut self.hosts[host];
        let next = timeout.map_or(u64::MAX, |t| clock.real(t).max(now));
        if next != h.timer_at {
            h.timer_gen += 1;
            h.timer_at = next;
            if next != u64::MAX {
                let generation = h.timer_gen;
                self.push(next, Ev::Timer { host, generation });
            }
        }
    }
}
