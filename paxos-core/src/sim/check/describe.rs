//! One line per step, for printing a counterexample.

use crate::sim::checker::ms;
use crate::time::nanos;

use super::world::{Action, Context, World};

impl Context {
    /// One line saying what `action` does in `world`.
    pub(super) fn describe(&self, world: &World, action: &Action) -> String {
        let t = |now: u64| format!("t={}", ms(now));
        match *action {
            Action::Deliver(i) | Action::Duplicate(i) => {
                let p = &world.net[i];
                let verb = if matches!(action, Action::Deliver(_)) {
                    "deliver"
                } else {
                    "deliver (and keep a copy in flight)"
                };
                let messages: Vec<String> = p
                    .messages
                    .iter()
                    .map(|e| format!("{:?}", e.message))
                    .collect();
                format!(
                    "{} {verb} node {} -> node {}: {}",
                    t(world.now),
                    p.from + 1,
                    p.to + 1,
                    messages.join(", ")
                )
            }
            Action::Fire(h) => {
                let due = self.due(world, h).unwrap_or(world.now);
                format!(
                    "{} node {} timer fires (due t={})",
                    t(due.max(world.now)),
                    h + 1,
                    ms(due)
                )
            }
            Action::Tick => format!("{} time passes", t(world.now + nanos(self.cfg.tick))),
            Action::Crash(h) => format!("{} node {} crashes", t(world.now), h + 1),
            Action::Restart(h) => format!("{} node {} restarts", t(world.now), h + 1),
            Action::Resign(h) => format!("{} node {} resigns", t(world.now), h + 1),
            Action::Sync(h) => format!("{} node {} syncs its disk", t(world.now), h + 1),
            Action::Append(h) => format!("{} node {} appends", t(world.now), h + 1),
            Action::Ask(h) => format!("{} node {} asks key-0", t(world.now), h + 1),
            Action::Get(h) => format!("{} node {} gets key-0", t(world.now), h + 1),
            Action::Forget(h) => format!("{} node {} forgets key-0", t(world.now), h + 1),
            Action::Compact(h) => format!("{} node {} compacts its log", t(world.now), h + 1),
        }
    }
}
