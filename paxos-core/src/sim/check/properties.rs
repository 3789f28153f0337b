//! The properties checked at every step, as the simulator checks them: at most one
//! holder of the lease at any real instant, fencing tokens that increase from one owner
//! to the next (unless a majority restarted in between), and every activation backed by a
//! majority of distinct acceptors.

use crate::event::Event;
use crate::id::Owner;
use crate::sim::checker::ms;

use super::world::{Claim, Context, World};

impl Context {
    /// Claims whose end has passed can overlap no later claim: forget them, so states
    /// that differ only in them merge.
    pub(super) fn expire(&self, world: &mut World) {
        let now = world.now;
        for c in &mut world.claims {
            if c.is_some_and(|c| c.end <= now) {
                *c = None;
            }
        }
    }

    /// The properties, on one event of `host`.
    pub(super) fn observe(&self, world: &mut World, host: usize, owner: Owner, event: Event) {
        let now = world.now;
        match event {
            Event::Elected {
                token, deadline, ..
            }
            | Event::Renewed {
                token, deadline, ..
            } => {
                let end = self.clocks[host].real(deadline).max(now + 1);
                if self.tracing {
                    world.notes.push(format!(
                        "  node {} holds the lease with token {token} until t={}",
                        host + 1,
                        ms(end)
                    ));
                }
                let quorum = world
                    .accepted_by
                    .binary_search_by(|(b, _)| b.cmp(&token))
                    .map_or(0, |i| world.accepted_by[i].1.count_ones() as usize);
                if quorum < self.majority {
                    world.violation.get_or_insert(format!(
                        "t={} node {} activated token {token} accepted by only {quorum} distinct acceptors",
                        ms(now),
                        host + 1
                    ));
                }
                for (other, c) in world.claims.iter().enumerate() {
                    if let Some(c) = c
                        && other != host
                        && c.start <= now
                        && now < c.end
                    {
                        world.violation.get_or_insert(format!(
                            "t={} two masters: node {} (token {}) since t={} until t={}, and node {} (token {token})",
                            ms(now),
                            other + 1,
                            c.token,
                            ms(c.start),
                            ms(c.end),
                            host + 1
                        ));
                    }
                }
                if let Some((last_owner, last_token)) = world.last.filter(|_| self.cfg.token_order)
                {
                    let restarted = world.restarted_since.count_ones() as usize;
                    if last_owner != owner && restarted < self.majority && token <= last_token {
                        world.violation.get_or_insert(format!(
                            "t={} fencing token went backwards: {token} (node {}) after {last_token} (node {})",
                            ms(now),
                            host + 1,
                            last_owner.node
                        ));
                    }
                }
                world.last = Some((owner, token));
                world.restarted_since = 0;
                world.claims[host] = Some(Claim {
                    token,
                    start: now,
                    end,
                });
            }
            Event::Surrendered { token, reason, .. } => {
                if let Some(c) = &mut world.claims[host] {
                    c.end = c.end.min(now);
                }
                if self.tracing {
                    world.notes.push(format!(
                        "  node {} surrenders token {token} ({})",
                        host + 1,
                        reason.as_str()
                    ));
                }
                self.expire(world);
            }
            Event::Log { event, .. } => self.log_event(world, host, &event),
            Event::Ask(event) => self.ask_event(world, host, &event),
            _ => {}
        }
    }
}
