//! The checker's model (`gen_paxos_core::sim::check::Explorer`) searched by stateright's
//! breadth-first checker, to compare states per second with `examples/check` on the same
//! bound: the safe protocol, three candidates, nominal clocks, 1 crash, 1 duplicate,
//! 1 tick, 1 resignation (the checker's defaults), to a depth.

use std::time::Instant;

use gen_paxos_core::sim::check::{Action, CheckConfig, Explorer, ExplorerState};
use stateright::{Checker, Model, Property};

struct Lease {
    explorer: Explorer,
}

impl Model for Lease {
    type State = ExplorerState;
    type Action = Action;

    fn init_states(&self) -> Vec<ExplorerState> {
        vec![self.explorer.initial()]
    }

    fn actions(&self, state: &ExplorerState, actions: &mut Vec<Action>) {
        actions.extend(self.explorer.actions(state));
    }

    fn next_state(&self, state: &ExplorerState, action: Action) -> Option<ExplorerState> {
        Some(self.explorer.step(state, action))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![Property::always("no violation", |_, s: &ExplorerState| {
            s.violation().is_none()
        })]
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let depth: usize = args.next().map_or(6, |d| d.parse().expect("DEPTH"));
    let threads: usize = args.next().map_or(1, |t| t.parse().expect("THREADS"));
    let config = CheckConfig::new(3);
    let explorer = Explorer::new(&config, &[0.0, 0.0, 0.0]).expect("a valid bound");
    let start = Instant::now();
    let checker = Lease { explorer }
        .checker()
        .threads(threads)
        .target_max_depth(depth + 1)
        .spawn_bfs()
        .join();
    let secs = start.elapsed().as_secs_f64();
    let states = checker.unique_state_count();
    println!(
        "stateright bfs: threads={threads} depth={depth} unique_states={states} generated={} \
         seconds={secs:.1} states_per_second={:.0} violations={}",
        checker.state_count(),
        states as f64 / secs,
        checker.discoveries().len()
    );
}
