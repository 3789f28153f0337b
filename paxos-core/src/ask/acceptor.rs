//! The `ask` acceptors of one node: for every key, the open instance and, in it, the
//! promised ballot and the accepted value (durable, R3), and the decision if told.

use std::collections::HashMap;

use super::{AskEffects, AskMessage, AskValue, Instance};
use crate::durable::Record;
use crate::id::{LeaseName, NodeId};
use crate::log::{LogBallot, To};

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct KeyState {
    instance: Instance,
    promised: Option<LogBallot>,
    accepted: Option<(LogBallot, AskValue)>,
    /// Volatile: the value chosen in `instance`, once told.
    decided: Option<AskValue>,
}

/// Why a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dropped {
    /// A value over the size limit.
    TooLarge,
    /// A new key beyond the number of keys kept.
    TooManyKeys,
}

/// Every key's acceptor state on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AskAcceptors {
    keys: HashMap<LeaseName, KeyState>,
    max_keys: usize,
    max_value_len: usize,
}

impl AskAcceptors {
    /// Acceptors for at most `max_keys` keys and values of at most `max_value_len` bytes,
    /// rebuilt from the records written before (in order).
    pub(crate) fn restore<'a>(
        max_keys: usize,
        max_value_len: usize,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> AskAcceptors {
        let mut acceptors = AskAcceptors {
            keys: HashMap::new(),
            max_keys,
            max_value_len,
        };
        for record in records {
            match record {
                Record::AskPromised {
                    key,
                    instance,
                    ballot,
                } => {
                    let st = acceptors.at(key, *instance);
                    st.promised = st.promised.max(Some(*ballot));
                }
                Record::AskAccepted {
                    key,
                    instance,
                    ballot,
                    value,
                } => {
                    let st = acceptors.at(key, *instance);
                    st.promised = st.promised.max(Some(*ballot));
                    st.accepted = Some((*ballot, value.clone()));
                }
                Record::AskInstance { key, instance } => {
                    acceptors.at(key, *instance);
                }
                _ => {}
            }
        }
        acceptors
    }

    /// The records that restore the acceptors' durable state, per key: its instance, then
    /// what it promised and accepted there.
    pub(crate) fn checkpoint(&self, out: &mut Vec<Record>) {
        let mut keys: Vec<&LeaseName> = self.keys.keys().collect();
        keys.sort();
        for key in keys {
            let st = &self.keys[key];
            out.push(Record::AskInstance {
                key: key.clone(),
                instance: st.instance,
            });
            if let Some(ballot) = st.promised {
                out.push(Record::AskPromised {
                    key: key.clone(),
                    instance: st.instance,
                    ballot,
                });
            }
            if let Some((ballot, value)) = &st.accepted {
                out.push(Record::AskAccepted {
                    key: key.clone(),
                    instance: st.instance,
                    ballot: *ballot,
                    value: value.clone(),
                });
            }
        }
    }

    /// The state of `key` moved to `instance` if it is behind (restore only).
    fn at(&mut self, key: &LeaseName, instance: Instance) -> &mut KeyState {
        let st = self.keys.entry(key.clone()).or_default();
        if instance > st.instance {
            *st = KeyState {
                instance,
                ..KeyState::default()
            };
        }
        st
    }

    /// The open instance of `key` and the decision this node knows in it (a local read:
    /// may be stale).
    pub(crate) fn local(&self, key: &LeaseName) -> (Instance, Option<AskValue>) {
        self.keys
            .get(key)
            .map_or((0, None), |st| (st.instance, st.decided.clone()))
    }

    /// Handles one message from `from`; a reply, if any, goes back to `from`.
    pub(crate) fn handle(
        &mut self,
        from: NodeId,
        message: AskMessage,
        fx: &mut AskEffects,
    ) -> Result<(), Dropped> {
        let (key, instance) = match &message {
            AskMessage::Prepare { key, instance, .. }
            | AskMessage::Accept { key, instance, .. }
            | AskMessage::Decided { key, instance, .. }
            | AskMessage::Forget { key, instance } => (key.clone(), *instance),
            _ => return Ok(()),
        };
        if let AskMessage::Accept { value, .. } | AskMessage::Decided { value, .. } = &message
            && value.len() > self.max_value_len
        {
            return Err(Dropped::TooLarge);
        }
        if !self.keys.contains_key(&key) && self.keys.len() >= self.max_keys {
            return Err(Dropped::TooManyKeys);
        }
        let st = self.keys.entry(key.clone()).or_default();
        if instance < st.instance {
            // Over here: never revive an instance once forgotten.
            let current = st.instance;
            fx.sends.push((
                To::Node(from),
                AskMessage::Moved {
                    key,
                    instance,
                    current,
                },
            ));
            return Ok(());
        }
        if instance > st.instance {
            // A forget this node missed: the earlier instance is over.
            *st = KeyState {
                instance,
                ..KeyState::default()
            };
            fx.records.push(Record::AskInstance {
                key: key.clone(),
                instance,
            });
        }
        // Both phases refuse a ballot below the one promised.
        if let Some(ballot) = message.proposal()
            && let Some(promised) = st.promised.filter(|p| ballot < *p)
        {
            let reject = AskMessage::Reject {
                key,
                instance,
                ballot,
                promised,
            };
            fx.sends.push((To::Node(from), reject));
            return Ok(());
        }
        let reply = match message {
            AskMessage::Prepare { ballot, .. } => {
                if st.promised != Some(ballot) {
                    st.promised = Some(ballot);
                    fx.records.push(Record::AskPromised {
                        key: key.clone(),
                        instance,
                        ballot,
                    });
                }
                AskMessage::Promise {
                    key,
                    instance,
                    ballot,
                    accepted: st.accepted.clone(),
                    decided: st.decided.clone(),
                }
            }
            AskMessage::Accept { ballot, value, .. } => {
                st.promised = Some(ballot);
                st.accepted = Some((ballot, value.clone()));
                fx.records.push(Record::AskAccepted {
                    key: key.clone(),
                    instance,
                    ballot,
                    value,
                });
                AskMessage::Accepted {
                    key,
                    instance,
                    ballot,
                }
            }
            AskMessage::Decided { value, .. } => {
                st.decided = Some(value);
                return Ok(());
            }
            AskMessage::Forget { .. } => {
                let next = instance.saturating_add(1);
                *st = KeyState {
                    instance: next,
                    ..KeyState::default()
                };
                fx.records.push(Record::AskInstance {
                    key: key.clone(),
                    instance: next,
                });
                AskMessage::Forgot { key, instance }
            }
            _ => return Ok(()),
        };
        fx.sends.push((To::Node(from), reply));
        Ok(())
    }
}

impl std::hash::Hash for AskAcceptors {
    /// The keys in order (for the model checker, `state_hash.rs`).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        crate::state_hash::hash_map_sorted(&self.keys, state);
        self.max_keys.hash(state);
        self.max_value_len.hash(state);
    }
}
