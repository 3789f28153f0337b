//! `ask`, `get` and `forget` in the checker (with [`CheckConfig::log`](super::CheckConfig)
//! on): the client steps on `key-0` and R8's properties, as the simulator checks them:
//! - the answers for one instance agree, on every host;
//! - an answer is for an instance no `forget` had closed when the request began: a forget
//!   that completed before a request would have moved the request on to a later instance
//!   (linearizability across `forget`; the `ask-one-decision` switch breaks it);
//! - a `get` is not answered "nothing chosen" for an instance some request had been
//!   answered a value for before it began (a decision is permanent).
//!
//! A call made while a request for the key is in flight on the same host joins it
//! (`Node::ask`), so a request begins with its first call, as in the simulator.

use crate::ask::{AskEvent, AskValue, Instance};
use crate::id::LeaseName;

use super::world::{Action, Context, World};

/// The `ask` part of a state: answers seen, forgets completed, requests in flight and the
/// client steps left.
#[derive(Debug, Clone, Hash)]
pub(super) struct AskWorld {
    /// The value each instance was answered with.
    answers: Vec<(Instance, AskValue)>,
    /// The highest instance a completed `forget` closed.
    closed: Option<Instance>,
    /// Requests in flight, by host and restarts.
    asking: Vec<Request>,
    asks: u8,
    gets: u8,
    forgets: u8,
}

/// A request in flight.
#[derive(Debug, Clone, Hash)]
struct Request {
    host: usize,
    /// The host's restarts when it began.
    restarts: u32,
    /// [`AskWorld::closed`] when it began.
    closed: Option<Instance>,
    /// The instances answered a value before it began.
    decided: Vec<Instance>,
}

impl AskWorld {
    pub(super) fn new(asks: u8, gets: u8, forgets: u8) -> AskWorld {
        AskWorld {
            answers: Vec::new(),
            closed: None,
            asking: Vec::new(),
            asks,
            gets,
            forgets,
        }
    }

    /// The client steps possible on a running host.
    pub(super) fn enabled(&self, host: usize, actions: &mut Vec<Action>) {
        if self.asks > 0 {
            actions.push(Action::Ask(host));
        }
        if self.gets > 0 {
            actions.push(Action::Get(host));
        }
        if self.forgets > 0 {
            actions.push(Action::Forget(host));
        }
    }

    /// A crash ends the host's requests: they will never be answered.
    pub(super) fn crash(&mut self, host: usize) {
        self.asking.retain(|a| a.host != host);
    }

    /// A request begins on `host`, unless one is in flight there (the call joins it).
    fn begin(&mut self, host: usize, restarts: u32) {
        let key = |a: &Request| (a.host, a.restarts);
        if !self.asking.iter().any(|a| key(a) == (host, restarts)) {
            let at = self.asking.partition_point(|a| key(a) < (host, restarts));
            let request = Request {
                host,
                restarts,
                closed: self.closed,
                decided: self.answers.iter().map(|(i, _)| *i).collect(),
            };
            self.asking.insert(at, request);
        }
    }

    /// One event of `host`: a violation, if it breaks a property.
    fn event(&mut self, host: usize, restarts: u32, event: &AskEvent) -> Option<String> {
        let (instance, value) = match event {
            AskEvent::Forgotten { instance, .. } => {
                self.closed = self.closed.max(Some(*instance));
                return None;
            }
            AskEvent::Undecided { instance, .. } => (*instance, None),
            AskEvent::Decided {
                instance, value, ..
            } => (*instance, Some(value)),
        };
        if let Some(at) = self
            .asking
            .iter()
            .position(|a| (a.host, a.restarts) == (host, restarts))
        {
            let request = self.asking.remove(at);
            if request.closed.is_some_and(|c| instance <= c) {
                return Some(format!(
                    "answer from a closed instance: node {} was answered key-0 instance {instance}, which a forget had closed before it asked",
                    host + 1
                ));
            }
            if value.is_none() && request.decided.contains(&instance) {
                return Some(format!(
                    "a decision lost: node {} was answered nothing chosen for key-0 instance {instance}, which a request had been answered a value for before it asked",
                    host + 1
                ));
            }
        }
        let value = value?;
        match self.answers.iter().find(|(i, _)| *i == instance) {
            Some((_, had)) if had != value => Some(format!(
                "ask instance {instance}: node {} was answered {:?}, another {:?}",
                host + 1,
                String::from_utf8_lossy(value),
                String::from_utf8_lossy(had)
            )),
            Some(_) => None,
            None => {
                let at = self.answers.partition_point(|(i, _)| *i < instance);
                self.answers.insert(at, (instance, value.clone()));
                None
            }
        }
    }
}

/// The key every `ask`, `get` and `forget` uses.
fn key() -> LeaseName {
    LeaseName::new("key-0").expect("a static name is valid")
}

impl Context {
    /// `host`'s application asks (the next client value), gets or forgets `key-0`.
    pub(super) fn ask_apply(&self, world: &mut World, action: &Action) {
        let (h, restarts) = match *action {
            Action::Ask(h) | Action::Get(h) | Action::Forget(h) => (h, world.restarts[h]),
            _ => return,
        };
        // Takes the step's budget; a request begins with an ask (of the next client
        // value) or a get.
        let value = self.with_log(world, |l| match action {
            Action::Forget(_) => {
                l.ask.forgets -= 1;
                None
            }
            Action::Get(_) => {
                l.ask.gets -= 1;
                l.ask.begin(h, restarts);
                None
            }
            _ => {
                l.ask.asks -= 1;
                l.ask.begin(h, restarts);
                l.next_value += 1;
                Some(format!("a{}", l.next_value))
            }
        });
        let local = self.local(world, h);
        if let Some(node) = self.node_mut(world, h) {
            match (action, value) {
                (Action::Forget(_), _) => node.forget(local, &key()),
                (_, Some(value)) => node.ask(local, &key(), value.as_bytes()),
                (_, None) => node.get(local, &key()),
            }
        }
        self.pump(world, h);
    }

    /// R8's properties on one `ask` event of `host`.
    pub(super) fn ask_event(&self, world: &mut World, host: usize, event: &AskEvent) {
        if self.tracing {
            let note = match event {
                AskEvent::Decided {
                    instance, value, ..
                } => format!(
                    "is answered {:?} for instance {instance}",
                    String::from_utf8_lossy(value)
                ),
                AskEvent::Undecided { instance, .. } => {
                    format!("is answered: nothing chosen for instance {instance}")
                }
                AskEvent::Forgotten { instance, .. } => {
                    format!("forgot instance {instance}")
                }
            };
            world.notes.push(format!("  node {} {note}", host + 1));
        }
        let restarts = world.restarts[host];
        let violation = self.with_log(world, |l| l.ask.event(host, restarts, event));
        if let Some(v) = violation {
            world.violation.get_or_insert(v);
        }
    }
}
