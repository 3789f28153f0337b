//! Who waits for which `ask` answer (R8), so that every answer is linearizable for every
//! caller it goes to.
//!
//! The core answers one request per key at a time, and a call that arrives while one is in
//! flight would join it: its answer could then rest on replies sent before the call was
//! made, and miss a `forget` that completed in between (the simulator found such answers
//! in 2% of its runs). So a value caller (`ask` or `get`) that arrives while a request for
//! its key is in flight waits for the next round, which starts once the current one is
//! answered: every reply of that round comes after its call. `forget` callers join the
//! forget in flight, whose effect (the instance open when they called is closed) holds
//! for them too.

use std::collections::HashMap;

use gen_paxos_core::LeaseName;
use tokio::sync::oneshot;

use crate::error::AskError;

/// What an `ask`, `get` or `forget` caller waits for.
#[derive(Debug)]
pub(crate) enum AskWaiter {
    /// `ask` or `get`: the value chosen (`None`: a `get` found nothing chosen).
    Value(oneshot::Sender<Result<Option<Vec<u8>>, AskError>>),
    /// `forget`: the instance closed.
    Forget(oneshot::Sender<Result<u64, AskError>>),
}

/// A request to hand to the core: `ask` with a value, `get` without.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Round {
    pub(crate) key: LeaseName,
    pub(crate) value: Option<Vec<u8>>,
}

/// The value callers of one key: those the core's request in flight answers, and those
/// waiting for the next round (with the value the first of them proposes, if any).
#[derive(Debug, Default)]
struct Key {
    current: Vec<oneshot::Sender<Result<Option<Vec<u8>>, AskError>>>,
    next: Vec<oneshot::Sender<Result<Option<Vec<u8>>, AskError>>>,
    next_value: Option<Vec<u8>>,
    forgets: Vec<oneshot::Sender<Result<u64, AskError>>>,
}

/// Every key's waiting callers.
#[derive(Debug, Default)]
pub(crate) struct AskWaiters {
    keys: HashMap<LeaseName, Key>,
}

impl AskWaiters {
    /// A value caller of `key` proposing `value` (`None`: a `get`): the round to start
    /// now, or `None` if it waits for the one in flight to be answered.
    pub(crate) fn value(
        &mut self,
        key: &LeaseName,
        value: Option<Vec<u8>>,
        reply: oneshot::Sender<Result<Option<Vec<u8>>, AskError>>,
    ) -> Option<Round> {
        let waiting = self.keys.entry(key.clone()).or_default();
        if waiting.current.is_empty() {
            waiting.current.push(reply);
            return Some(Round {
                key: key.clone(),
                value,
            });
        }
        waiting.next.push(reply);
        if waiting.next_value.is_none() {
            waiting.next_value = value;
        }
        None
    }

    /// A `forget` caller of `key` (it joins any forget in flight).
    pub(crate) fn forget(
        &mut self,
        key: &LeaseName,
        reply: oneshot::Sender<Result<u64, AskError>>,
    ) {
        self.keys
            .entry(key.clone())
            .or_default()
            .forgets
            .push(reply);
    }

    /// The core answered the value request of `key`: its callers get `value`, and the
    /// round for those who came later starts.
    pub(crate) fn answered(&mut self, key: &LeaseName, value: Option<Vec<u8>>) -> Option<Round> {
        let waiting = self.keys.get_mut(key)?;
        for reply in waiting.current.drain(..) {
            let _ = reply.send(Ok(value.clone()));
        }
        let round = (!waiting.next.is_empty()).then(|| {
            std::mem::swap(&mut waiting.current, &mut waiting.next);
            Round {
                key: key.clone(),
                value: waiting.next_value.take(),
            }
        });
        self.tidy(key);
        round
    }

    /// A forget of `key` closed `instance`.
    pub(crate) fn forgotten(&mut self, key: &LeaseName, instance: u64) {
        if let Some(waiting) = self.keys.get_mut(key) {
            for reply in waiting.forgets.drain(..) {
                let _ = reply.send(Ok(instance));
            }
        }
        self.tidy(key);
    }

    fn tidy(&mut self, key: &LeaseName) {
        if self
            .keys
            .get(key)
            .is_some_and(|w| w.current.is_empty() && w.next.is_empty() && w.forgets.is_empty())
        {
            self.keys.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LeaseName {
        LeaseName::new("color").expect("valid")
    }

    #[test]
    fn a_caller_that_comes_while_a_round_is_in_flight_gets_the_next_round() {
        let mut w = AskWaiters::default();
        let (first, mut first_rx) = oneshot::channel();
        let (second, mut second_rx) = oneshot::channel();
        let (third, mut third_rx) = oneshot::channel();
        assert_eq!(
            w.value(&key(), None, first),
            Some(Round {
                key: key(),
                value: None
            }),
            "nothing in flight: a round starts"
        );
        // Two more while it is in flight: they wait, and the first value among them is
        // the one the next round proposes.
        assert_eq!(w.value(&key(), Some(b"red".to_vec()), second), None);
        assert_eq!(w.value(&key(), Some(b"blue".to_vec()), third), None);
        let next = w.answered(&key(), Some(b"green".to_vec()));
        assert_eq!(first_rx.try_recv(), Ok(Ok(Some(b"green".to_vec()))));
        assert!(
            second_rx.try_recv().is_err(),
            "answered by a round begun before it"
        );
        assert_eq!(
            next,
            Some(Round {
                key: key(),
                value: Some(b"red".to_vec())
            })
        );
        assert_eq!(
            w.answered(&key(), None),
            None,
            "no one left for a third round"
        );
        assert_eq!(second_rx.try_recv(), Ok(Ok(None)));
        assert_eq!(third_rx.try_recv(), Ok(Ok(None)));
        assert!(w.keys.is_empty(), "nothing kept for a key no one waits for");
    }

    #[test]
    fn forgets_are_answered_apart_from_values() {
        let mut w = AskWaiters::default();
        let (value, mut value_rx) = oneshot::channel();
        let (forget, mut forget_rx) = oneshot::channel();
        assert!(w.value(&key(), None, value).is_some());
        w.forget(&key(), forget);
        w.forgotten(&key(), 4);
        assert_eq!(forget_rx.try_recv(), Ok(Ok(4)));
        assert!(value_rx.try_recv().is_err());
        assert_eq!(w.answered(&key(), None), None);
        assert_eq!(value_rx.try_recv(), Ok(Ok(None)));
        assert!(w.keys.is_empty());
    }
}
