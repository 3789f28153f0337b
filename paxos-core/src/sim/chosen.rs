//! What the simulation and the model checker know was chosen, and what an application
//! made of it: the value chosen per slot ([`Chosen`]), a host's applied state ([`App`]:
//! a count and a hash, which is also its snapshot), and the checks both run on them
//! (in-order delivery and agreement, [`Chosen::deliver`]; snapshots,
//! [`snapshot_violation`]).

use std::sync::Arc;

use crate::log::{Slot, Value};

/// What a host's application holds: how many slots it applied, and a hash of them in
/// order (its "state"; a snapshot is these two numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct App {
    pub(super) next: Slot,
    pub(super) hash: u64,
}

impl App {
    pub(super) const EMPTY: App = App {
        next: 0,
        hash: 0xcbf2_9ce4_8422_2325,
    };

    pub(super) fn apply(&mut self, value: &Value) {
        self.hash = mix(self.hash, value);
        self.next += 1;
    }

    pub(super) fn snapshot(self) -> Arc<[u8]> {
        let mut bytes = self.next.to_le_bytes().to_vec();
        bytes.extend_from_slice(&self.hash.to_le_bytes());
        bytes.into()
    }

    pub(super) fn from_snapshot(data: &[u8]) -> Option<App> {
        let next = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
        let hash = u64::from_le_bytes(data.get(8..16)?.try_into().ok()?);
        Some(App { next, hash })
    }
}

/// The value chosen for each slot so far (slots are dense from 0).
#[derive(Debug, Clone, Default, Hash)]
pub(super) struct Chosen(Vec<Option<Value>>);

impl Chosen {
    pub(super) fn get(&self, slot: &Slot) -> Option<&Value> {
        self.0.get(usize::try_from(*slot).ok()?)?.as_ref()
    }

    pub(super) fn insert(&mut self, slot: Slot, value: Value) {
        // A run appends a few thousand entries at most; the bound keeps a bug in a
        // switch from turning into an allocation of the whole slot space.
        let Some(at) = usize::try_from(slot).ok().filter(|at| *at < 1 << 24) else {
            return;
        };
        if self.0.len() <= at {
            self.0.resize(at + 1, None);
        }
        self.0[at] = Some(value);
    }

    /// `host`'s application `app` applies `slot`: it must be the next slot it expects,
    /// and hold the value any replica delivered there before (recorded if none did).
    pub(super) fn deliver(
        &mut self,
        app: &mut App,
        host: usize,
        slot: Slot,
        value: &Value,
    ) -> Option<String> {
        let out_of_order = (slot != app.next).then(|| {
            format!(
                "node {} delivered slot {slot} when slot {} was next",
                host + 1,
                app.next
            )
        });
        app.apply(value);
        app.next = slot + 1;
        match self.get(&slot) {
            Some(had) if had != value => Some(format!(
                "slot {slot}: node {} delivered {value:?}, another {had:?}",
                host + 1
            )),
            Some(_) => out_of_order,
            None => {
                self.insert(slot, value.clone());
                out_of_order
            }
        }
    }

    /// The application state after the first `upto` chosen slots, or the first slot in
    /// it that was never delivered.
    pub(super) fn prefix_hash(&self, upto: Slot) -> Result<u64, Slot> {
        let mut app = App::EMPTY;
        for slot in 0..upto {
            app.apply(self.get(&slot).ok_or(slot)?);
        }
        Ok(app.hash)
    }
}

/// What is wrong with a snapshot `host` installed or restored (`how`) claiming the slots
/// below `upto`, whose application state is `app` (`None`: unreadable), given the
/// application state of the chosen prefix (`prefix`: or the first slot never delivered).
pub(super) fn snapshot_violation(
    app: Option<App>,
    upto: Slot,
    prefix: impl FnOnce(Slot) -> Result<u64, Slot>,
    host: usize,
    how: &str,
) -> Option<String> {
    match app {
        None => Some(format!("node {} {how} a snapshot it cannot read", host + 1)),
        Some(app) if app.next != upto => Some(format!(
            "node {} {how} a snapshot claiming {upto} slots that holds {}",
            host + 1,
            app.next
        )),
        Some(app) => match prefix(upto) {
            Err(slot) => Some(format!(
                "node {} {how} a snapshot of {upto} slots covering slot {slot}, which no replica applied",
                host + 1
            )),
            Ok(hash) if hash != app.hash => Some(format!(
                "node {} {how} a snapshot of {upto} slots that differs from the chosen prefix",
                host + 1
            )),
            Ok(_) => None,
        },
    }
}

/// FNV-1a over a value, a no-op distinct from every data value.
pub(super) fn mix(mut hash: u64, value: &Value) -> u64 {
    let tag: &[u8] = match value {
        Value::Noop => &[0],
        Value::Data(_) => &[1],
    };
    for byte in tag.iter().chain(value.bytes()) {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
