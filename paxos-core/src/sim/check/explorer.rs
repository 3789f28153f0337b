//! The checker's model one step at a time, for another search engine to walk: the same
//! hosts, steps, budgets and properties as [`check`](super::check), without its search.
//! `tools/stateright-compare` runs it under stateright to compare the two engines on
//! one bound (docs/model-checking.md).

use std::hash::{Hash, Hasher};

use super::world::{Context, World};
use super::{Action, CheckConfig};

/// The model of one [`CheckConfig`] with one clock assignment.
#[derive(Debug, Clone)]
pub struct Explorer {
    ctx: Context,
}

/// One state of the model. Equal when their canonical fingerprints are (as the checker
/// merges them); hashing writes the fingerprint.
#[derive(Debug, Clone)]
pub struct ExplorerState {
    world: World,
    fingerprint: u128,
}

impl PartialEq for ExplorerState {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for ExplorerState {}

impl Hash for ExplorerState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fingerprint.hash(state);
    }
}

impl ExplorerState {
    /// The property this state violates, if any.
    pub fn violation(&self) -> Option<&str> {
        self.world.violation.as_deref()
    }
}

impl Explorer {
    /// The model of `config` with host `i`'s clock at `1 + rho * clock[i]`; an error
    /// for a configuration the checker refuses.
    pub fn new(config: &CheckConfig, clock: &[f64]) -> Result<Explorer, String> {
        Ok(Explorer {
            ctx: Context::new(config, clock)?,
        })
    }

    /// Every host started at real time zero.
    pub fn initial(&self) -> ExplorerState {
        self.state(self.ctx.initial())
    }

    /// The steps possible in `state`, in the checker's order (none after a violation).
    pub fn actions(&self, state: &ExplorerState) -> Vec<Action> {
        if state.world.violation.is_some() {
            return Vec::new();
        }
        self.ctx.enabled(&state.world)
    }

    /// The state one step leads to.
    pub fn step(&self, state: &ExplorerState, action: Action) -> ExplorerState {
        let mut world = state.world.clone();
        self.ctx.apply(&mut world, &action);
        self.state(world)
    }

    fn state(&self, mut world: World) -> ExplorerState {
        let fingerprint = self.ctx.fingerprint(&mut world);
        ExplorerState { world, fingerprint }
    }
}
