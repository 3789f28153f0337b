//! The search: depth-first over every history up to the bound, merging equal states.
//!
//! Depth-first keeps memory to the current path plus one fingerprint per distinct state
//! (16 bytes and a depth), where breadth-first would hold a whole frontier of cloned
//! nodes. A state reached again with more steps left than before is explored again, so
//! the search is exhaustive for the bound: every state within `depth` steps of an initial
//! state is visited with all the steps it has left.

use super::visited::Visited;
use super::world::{Action, Context, World};
use super::{CheckConfig, replay};

/// The outcome of a search.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Distinct states visited (fingerprints), initial states included.
    pub states: u64,
    /// Steps taken (each clones a state and runs one input).
    pub transitions: u64,
    /// Deliveries pruned because they changed nothing but took the message out of flight
    /// (or spent a duplicate).
    pub pruned: u64,
    /// Initial states (clock assignments).
    pub initial_states: u64,
    /// The longest history explored.
    pub depth: u32,
    /// Whether every history within the bound was explored (not cut short by
    /// [`CheckConfig::max_states`] or a counterexample).
    pub complete: bool,
    /// The first violation found, if any (it ends the search).
    pub counterexample: Option<Counterexample>,
}

/// A history that ends in a violation.
#[derive(Debug, Clone)]
pub struct Counterexample {
    /// The property violated.
    pub violation: String,
    /// Each host's clock choice (`u` in `1 + rho * u`) in the initial state.
    pub clock: Vec<f64>,
    /// The steps from the initial state.
    pub actions: Vec<Action>,
    /// The history, one line per step with what it led to.
    pub trace: Vec<String>,
}

impl Counterexample {
    /// A run refused before its first step (a bad configuration or opening): no history.
    fn refused(violation: String, clock: Vec<f64>) -> Counterexample {
        Counterexample {
            violation,
            clock,
            actions: Vec::new(),
            trace: Vec::new(),
        }
    }

    /// A test that replays this history with [`replay`] and asserts its violation.
    pub fn as_test(&self, config: &CheckConfig, name: &str) -> String {
        let mut setup = vec![format!(
            "    let mut config = CheckConfig::new({});",
            config.voters
        )];
        let defaults = CheckConfig::new(config.voters);
        if config.priorities != defaults.priorities {
            setup.push(format!(
                "    config.priorities = vec!{:?};",
                config.priorities
            ));
        }
        if config.rho != defaults.rho {
            setup.push(format!("    config.rho = {:?};", config.rho));
        }
        if config.lease_duration != defaults.lease_duration {
            setup.push(format!(
                "    config.lease_duration = Duration::from_nanos({});",
                config.lease_duration.as_nanos()
            ));
        }
        if config.retransmit != defaults.retransmit {
            setup.push(format!(
                "    config.retransmit = Duration::from_nanos({});",
                config.retransmit.as_nanos()
            ));
        }
        for (name, ours, default) in [
            ("crashes", config.crashes, defaults.crashes),
            ("duplicates", config.duplicates, defaults.duplicates),
            ("ticks", config.ticks, defaults.ticks),
            ("resigns", config.resigns, defaults.resigns),
            ("appends", config.appends, defaults.appends),
            ("asks", config.asks, defaults.asks),
            ("gets", config.gets, defaults.gets),
            ("forgets", config.forgets, defaults.forgets),
            ("compactions", config.compactions, defaults.compactions),
        ] {
            if ours != default {
                setup.push(format!("    config.{name} = {ours};"));
            }
        }
        if config.log {
            setup.push("    config.log = true;".to_string());
        }
        if config.instant_sync {
            setup.push("    config.instant_sync = true;".to_string());
        }
        if !config.token_order {
            setup.push("    config.token_order = false;".to_string());
        }
        if let Some(fires) = config.fires {
            setup.push(format!("    config.fires = Some({fires});"));
        }
        if !config.cut.is_empty() {
            setup.push(format!("    config.cut = vec!{:?};", config.cut));
        }
        if let Some(cap) = config.link_capacity {
            setup.push(format!("    config.link_capacity = Some({cap});"));
        }
        if config.tick != defaults.tick {
            setup.push(format!(
                "    config.tick = Duration::from_nanos({});",
                config.tick.as_nanos()
            ));
        }
        #[cfg(feature = "unsafe-rules")]
        if let Some(rule) = config.unsafe_rule {
            setup.push(format!(
                "    config.unsafe_rule = UnsafeRule::from_name({:?});",
                rule.name()
            ));
        }
        let steps: Vec<String> = self
            .actions
            .iter()
            .map(|a| format!("        {a:?},"))
            .collect();
        let first_words: String = self
            .violation
            .split(' ')
            .skip(1)
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "#[test]\n\
             fn {name}() {{\n\
             \x20   use std::time::Duration;\n\
             \x20   use gen_paxos_core::UnsafeRule;\n\
             \x20   use gen_paxos_core::sim::check::{{Action::*, CheckConfig, replay}};\n\
             {}\n\
             \x20   let steps = [\n{}\n    ];\n\
             \x20   let violation = replay(&config, &{:?}, &steps).expect(\"every step is enabled\");\n\
             \x20   let violation = violation.expect(\"the history ends in a violation\");\n\
             \x20   assert!(violation.contains({:?}), \"{{violation}}\");\n\
             }}\n",
            setup.join("\n"),
            steps.join("\n"),
            self.clock,
            first_words,
        )
    }
}

struct Frame {
    world: World,
    /// The step that led here (none at an initial state).
    via: Option<Action>,
    actions: Vec<Action>,
    next: usize,
}

/// Explores every history of `config` within its bound (see the module documentation).
pub fn check(config: &CheckConfig) -> CheckReport {
    let mut report = CheckReport {
        states: 0,
        transitions: 0,
        pruned: 0,
        initial_states: 0,
        depth: 0,
        complete: true,
        counterexample: None,
    };
    let mut visited = Visited::new();
    for clock in clock_assignments(config) {
        let ctx = match Context::new(config, &clock) {
            Ok(ctx) => ctx,
            Err(e) => {
                report.complete = false;
                report.counterexample = Some(Counterexample::refused(
                    format!("bad configuration: {e}"),
                    clock,
                ));
                return report;
            }
        };
        report.initial_states += 1;
        if !search(config, &ctx, &mut visited, &mut report) {
            break;
        }
    }
    report
}

/// Every combination of the clock choices over the hosts.
fn clock_assignments(config: &CheckConfig) -> Vec<Vec<f64>> {
    if let Some(fixed) = &config.clock {
        return vec![fixed.clone()];
    }
    let mut all = vec![Vec::new()];
    for _ in 0..config.voters {
        all = all
            .into_iter()
            .flat_map(|prefix| {
                config.clock_choices.iter().map(move |u| {
                    let mut v = prefix.clone();
                    v.push(*u);
                    v
                })
            })
            .collect();
    }
    all
}

/// Searches from one initial state. Returns whether to go on with the next.
fn search(
    config: &CheckConfig,
    ctx: &Context,
    visited: &mut Visited,
    report: &mut CheckReport,
) -> bool {
    let mut root = ctx.initial();
    let opening = match ctx.open(&mut root, &config.opening) {
        Ok(steps) => steps,
        Err(_) => {
            // Again with notes, to say what each step led to.
            let mut tracing = ctx.clone();
            tracing.tracing = true;
            let e = tracing
                .open(&mut tracing.initial(), &config.opening)
                .err()
                .unwrap_or_default();
            report.complete = false;
            report.counterexample = Some(Counterexample::refused(
                format!("bad opening: {e}"),
                ctx.clock.clone(),
            ));
            return false;
        }
    };
    let bound = config.depth;
    if let Some(v) = root.violation.clone() {
        report.counterexample = Some(counterexample(config, ctx, v, &opening));
        report.complete = false;
        return false;
    }
    let fp = ctx.fingerprint(&mut root);
    match visited.record(fp, bound) {
        Some(left) if left >= bound => return true,
        Some(_) => {}
        None => report.states += 1,
    }
    let actions = if bound > 0 {
        ctx.enabled(&root)
    } else {
        Vec::new()
    };
    let mut stack = vec![Frame {
        world: root,
        via: None,
        actions,
        next: 0,
    }];
    while let Some(top) = stack.last_mut() {
        let Some(&action) = top.actions.get(top.next) else {
            stack.pop();
            continue;
        };
        top.next += 1;
        let mut world = top.world.clone();
        ctx.apply(&mut world, &action);
        report.transitions += 1;
        let depth = stack.len() as u32;
        report.depth = report.depth.max(depth);
        if let Some(v) = world.violation.take() {
            let mut path = opening.clone();
            path.extend(stack.iter().filter_map(|f| f.via));
            path.push(action);
            report.counterexample = Some(counterexample(config, ctx, v, &path));
            report.complete = false;
            return false;
        }
        let left = bound - depth;
        let fp = ctx.fingerprint(&mut world);
        if config.link_capacity.is_none() && world.if_lost == Some(fp) {
            // The delivery changed nothing but the message's being in flight: every
            // history from here is one from the state before, with that message never
            // delivered, and that state is explored with a step more to go. Not with a
            // link capacity: there the extra message can push an older one out.
            report.pruned += 1;
            continue;
        }
        match visited.record(fp, left) {
            Some(seen) if seen >= left => continue,
            Some(_) => {}
            None => report.states += 1,
        }
        if config.max_states.is_some_and(|max| report.states >= max) {
            report.complete = false;
            return false;
        }
        if left == 0 {
            continue;
        }
        let actions = ctx.enabled(&world);
        stack.push(Frame {
            world,
            via: Some(action),
            actions,
            next: 0,
        });
    }
    true
}

/// The counterexample of `actions`, replayed with notes for its trace.
fn counterexample(
    config: &CheckConfig,
    ctx: &Context,
    violation: String,
    actions: &[Action],
) -> Counterexample {
    let mut tracing = ctx.clone();
    tracing.tracing = true;
    let mut world = tracing.initial();
    let mut trace: Vec<String> = world.notes.drain(..).collect();
    for action in actions {
        tracing.apply(&mut world, action);
        trace.append(&mut world.notes);
    }
    trace.push(format!("VIOLATION: {violation}"));
    debug_assert_eq!(
        replay(config, &ctx.clock, actions)
            .ok()
            .flatten()
            .as_deref(),
        Some(violation.as_str())
    );
    Counterexample {
        violation,
        clock: ctx.clock.clone(),
        actions: actions.to_vec(),
        trace,
    }
}
