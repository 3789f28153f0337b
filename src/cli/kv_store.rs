//! The tool's built-in replicated key-value store (`gen-paxos node --kv`): a state machine
//! on one replicated lease named `kv`, and the node side of `gen-paxos kv`. Writes are log
//! entries (answered once chosen, with their index); reads are lease reads on the master
//! (R6); a node that is not master forwards the request to the master as a leader call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use gen_paxos_election::codec;
use gen_paxos_election::{
    AppendError, CallError, Leader, LeaseInfo, NodeId, ReplicatedLease, StateMachine,
    SurrenderInfo, async_trait,
};
use serde::{Deserialize, Serialize};

/// The lease the store lives on.
pub const KV_LEASE: &str = "kv";
/// Largest command (key and values together), in bytes.
const MAX_COMMAND: usize = 256 << 10;
/// How many compare-and-set outcomes are remembered (by log index) for their callers.
const OUTCOMES_KEPT: usize = 10_000;

/// A request from `gen-paxos kv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRequest {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Get {
        key: String,
    },
    /// Sets `new` if the value is `old` (`None`: the key is absent).
    Cas {
        key: String,
        old: Option<Vec<u8>>,
        new: Vec<u8>,
    },
    Delete {
        key: String,
    },
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOutcome {
    /// Done: a write's log index, a read's value (`None`: absent).
    Done {
        value: Option<Vec<u8>>,
        index: Option<u64>,
    },
    /// Not done, for a reason that holds: a compare-and-set whose value differed (the value
    /// found is given), or bad input.
    Refused { value: Option<Vec<u8>>, why: String },
    /// The request may or may not have taken effect (the master changed or went silent
    /// after it left): read before retrying a compare-and-set.
    Unknown(String),
    /// Nothing happened: no master is known, or this node cannot serve the store.
    Unavailable(String),
}

/// What the master and a forwarding node exchange (a leader call's request and reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvMsg {
    Request(KvRequest),
    Reply(KvOutcome),
}

/// A log entry.
#[derive(Debug, Serialize, Deserialize)]
enum Command {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Cas {
        key: String,
        old: Option<Vec<u8>>,
        new: Vec<u8>,
    },
    Delete {
        key: String,
    },
}

/// The replicated state: the map, and the outcome of recent compare-and-sets.
#[derive(Debug, Default)]
pub struct KvStore {
    map: BTreeMap<String, Vec<u8>>,
    outcomes: BTreeMap<u64, Result<(), Option<Vec<u8>>>>,
}

impl StateMachine for KvStore {
    fn apply(&mut self, index: u64, command: &[u8]) {
        let Ok(command) = codec::decode::<Command>(command, MAX_COMMAND + 64) else {
            return; // Not ours: every node skips it alike.
        };
        match command {
            Command::Put { key, value } => {
                self.map.insert(key, value);
            }
            Command::Delete { key } => {
                self.map.remove(&key);
            }
            Command::Cas { key, old, new } => {
                let current = self.map.get(&key).cloned();
                let outcome = if current == old {
                    self.map.insert(key, new);
                    Ok(())
                } else {
                    Err(current)
                };
                self.outcomes.insert(index, outcome);
                while self.outcomes.len() > OUTCOMES_KEPT {
                    self.outcomes.pop_first();
                }
            }
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        // A map of strings and bytes always encodes.
        bincode::serde::encode_to_vec(&self.map, bincode::config::standard()).unwrap_or_default()
    }

    fn restore(&mut self, snapshot: &[u8]) {
        let config = bincode::config::standard().with_limit::<{ 128 << 20 }>();
        match bincode::serde::decode_from_slice(snapshot, config) {
            Ok((map, _)) => self.map = map,
            // Snapshots are made by `snapshot` above; one that does not decode is a bug:
            // say so loudly rather than serve an empty store as if it were right.
            Err(e) => tracing::error!(error = %e, "kv snapshot does not decode; keeping the state"),
        }
        self.outcomes.clear();
    }
}

type Slot = Arc<Mutex<Option<ReplicatedLease<KvMsg, KvStore>>>>;

/// The store on one node: serves requests here or forwards them to the master.
#[derive(Clone, Default)]
pub struct KvService {
    lease: Slot,
}

impl KvService {
    /// The `Leader` to join the `kv` lease with; [`KvService::attach`] its handle after.
    pub fn leader(&self) -> KvLeader {
        KvLeader {
            service: self.clone(),
        }
    }

    pub fn attach(&self, lease: ReplicatedLease<KvMsg, KvStore>) {
        *self
            .lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(lease);
    }

    fn lease(&self) -> Option<ReplicatedLease<KvMsg, KvStore>> {
        self.lease
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A request from a client: served here if this node is the ready master, else
    /// forwarded to the master.
    pub async fn handle(&self, request: KvRequest) -> KvOutcome {
        let Some(lease) = self.lease() else {
            return KvOutcome::Unavailable("this node does not run the kv store (--kv)".into());
        };
        if lease.read(|_| ()).is_ok() {
            return self.local(&lease, request).await;
        }
        match lease.lease().call(KvMsg::Request(request)).await {
            Ok(KvMsg::Reply(outcome)) => outcome,
            Ok(KvMsg::Request(_)) => KvOutcome::Unknown("the master answered nonsense".into()),
            Err(CallError::NoMaster { .. } | CallError::NotHandled(_)) => {
                KvOutcome::Unavailable("no master of the kv store is known".into())
            }
            Err(e) => KvOutcome::Unknown(e.to_string()),
        }
    }

    /// Serves `request` on this node, the master.
    async fn local(
        &self,
        lease: &ReplicatedLease<KvMsg, KvStore>,
        request: KvRequest,
    ) -> KvOutcome {
        let command = match request {
            KvRequest::Get { key } => {
                return match lease.read(|s| s.map.get(&key).cloned()) {
                    Ok(value) => KvOutcome::Done { value, index: None },
                    Err(e) => KvOutcome::Unavailable(format!("{e}: retry")),
                };
            }
            KvRequest::Put { key, value } => Command::Put { key, value },
            KvRequest::Delete { key } => Command::Delete { key },
            KvRequest::Cas { key, old, new } => Command::Cas { key, old, new },
        };
        let cas = matches!(command, Command::Cas { .. });
        let Ok(bytes) = codec::encode(&command, MAX_COMMAND) else {
            return KvOutcome::Refused {
                value: None,
                why: format!("larger than {MAX_COMMAND} bytes"),
            };
        };
        match lease.append(bytes).await {
            Ok(index) if cas => match lease.read_stale(|s| s.outcomes.get(&index).cloned()) {
                Some(Ok(())) => KvOutcome::Done {
                    value: None,
                    index: Some(index),
                },
                Some(Err(value)) => KvOutcome::Refused {
                    value,
                    why: "the value differs".into(),
                },
                None => KvOutcome::Unknown("the outcome is no longer known: read the key".into()),
            },
            Ok(index) => KvOutcome::Done {
                value: None,
                index: Some(index),
            },
            Err(AppendError::Lost) => KvOutcome::Unknown(AppendError::Lost.to_string()),
            Err(AppendError::TooLarge) => KvOutcome::Refused {
                value: None,
                why: AppendError::TooLarge.to_string(),
            },
            Err(e) => KvOutcome::Unavailable(format!("{e}: retry")),
        }
    }
}

/// The `kv` lease's `Leader`: serves the requests other nodes forward to the master.
pub struct KvLeader {
    service: KvService,
}

#[async_trait]
impl Leader for KvLeader {
    type Message = KvMsg;

    async fn on_elected(&mut self, _lease: &LeaseInfo) -> Option<KvMsg> {
        None
    }

    async fn on_surrendered(&mut self, _info: SurrenderInfo<KvMsg>) {}

    async fn handle_leader_call(&mut self, _from: NodeId, request: KvMsg) -> Option<KvMsg> {
        let KvMsg::Request(request) = request else {
            return None;
        };
        let Some(lease) = self.service.lease() else {
            return Some(KvMsg::Reply(KvOutcome::Unavailable("not attached".into())));
        };
        if lease.read(|_| ()).is_err() {
            // Not (or no longer) the ready master: the caller may try again.
            return Some(KvMsg::Reply(KvOutcome::Unavailable(
                "this node is not the ready master of the kv store".into(),
            )));
        }
        Some(KvMsg::Reply(self.service.local(&lease, request).await))
    }
}
