//! `sim::check::Explorer`, the checker's model one step at a time (for another search
//! engine, as `tools/stateright-compare` uses it): a plain breadth-first walk over it
//! reaches exactly the states the checker's own search counts, and the violations too.

use std::collections::HashSet;

use gen_paxos_core::UnsafeRule;
use gen_paxos_core::sim::check::{CheckConfig, Explorer, ExplorerState, check};

/// The distinct states within `depth` steps, and the first violation met.
fn breadth_first(config: &CheckConfig, depth: u32) -> (usize, Option<String>) {
    let explorer = Explorer::new(config, &[0.0, 0.0, 0.0]).expect("a valid bound");
    let first = explorer.initial();
    let mut seen: HashSet<ExplorerState> = HashSet::from([first.clone()]);
    let mut frontier = vec![first];
    for _ in 0..depth {
        let mut next = Vec::new();
        for state in &frontier {
            for action in explorer.actions(state) {
                let to = explorer.step(state, action);
                if let Some(v) = to.violation() {
                    return (seen.len() + 1, Some(v.to_string()));
                }
                if seen.insert(to.clone()) {
                    next.push(to);
                }
            }
        }
        frontier = next;
    }
    (seen.len(), None)
}

#[test]
fn a_walk_over_the_explorer_meets_the_states_the_checker_counts() {
    let mut c = CheckConfig::new(3);
    c.clock_choices = vec![0.0];
    c.depth = 3;
    let (states, violation) = breadth_first(&c, 3);
    assert_eq!(violation, None);
    let r = check(&c);
    assert!(r.complete && r.counterexample.is_none());
    // At depth 3 no delivery is a no-op the checker prunes, so the sets are equal.
    assert_eq!(r.pruned, 0);
    assert_eq!(states as u64, r.states);
}

#[test]
fn a_walk_over_the_explorer_finds_a_weakened_rule() {
    let mut c = CheckConfig::new(3);
    c.clock_choices = vec![0.0];
    c.unsafe_rule = UnsafeRule::from_name("count-duplicates");
    let (_, violation) = breadth_first(&c, 12);
    let violation = violation.expect("found within 12 steps");
    assert!(violation.contains("distinct acceptors"), "{violation}");
    // With the rule intact the same walk finds nothing.
    c.unsafe_rule = None;
    assert_eq!(breadth_first(&c, 5).1, None);
}
