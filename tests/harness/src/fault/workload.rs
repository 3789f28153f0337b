//! The fenced workload: one writer thread per node playing its application, and the
//! append-only store that refuses an older token (see the crate docs).

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self};
use std::time::Duration;

use super::checker::WriteRec;
use super::cluster::NodeState;
use super::events::Ev;
use super::{Token, lock, now_ms};

#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) top: Option<Token>,
    pub(crate) file: Option<File>,
    pub(crate) seq_log: Vec<(u64, Token, u64)>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) margin_ms: f64,
    pub(crate) states: Vec<Mutex<NodeState>>,
    pub(crate) paused: Vec<AtomicBool>,
    pub(crate) zombie: Vec<Mutex<Option<Token>>>,
    pub(crate) stop: AtomicBool,
    pub(crate) store: Mutex<Store>,
    pub(crate) writes: Mutex<Vec<WriteRec>>,
    pub(crate) events: Mutex<Vec<Ev>>,
    pub(crate) raw: Mutex<Option<File>>,
}

impl Shared {
    pub(crate) fn state(&self, id: u64) -> MutexGuard<'_, NodeState> {
        lock(&self.states[id as usize - 1])
    }

    pub(crate) fn append(&self, node: u64, token: Token, seq: u64, zombie: bool) {
        let ts = now_ms();
        let mut store = lock(&self.store);
        let accepted = store.top.is_none_or(|t| token >= t);
        if accepted {
            store.top = Some(token);
            if let Some(f) = &mut store.file {
                let _ = writeln!(f, "{node} {} {} {} {seq}", token[0], token[1], token[2]);
                let _ = f.flush();
            }
            store.seq_log.push((node, token, seq));
        }
        drop(store);
        lock(&self.writes).push(WriteRec {
            node,
            token,
            seq,
            ts,
            accepted,
            zombie,
        });
    }
}

/// The writer thread playing node `id`'s application (see the module docs).
pub(crate) fn writer(shared: Arc<Shared>, id: u64) {
    let mut seq = 0u64;
    let idx = id as usize - 1;
    while !shared.stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(20));
        if shared.paused[idx].load(Ordering::Relaxed) {
            continue; // frozen with its process
        }
        // A write that was in flight when the process was frozen completes now.
        let pending = lock(&shared.zombie[idx]).take();
        if let Some(token) = pending {
            seq += 1;
            shared.append(id, token, seq, true);
            continue;
        }
        let holding = {
            let st = shared.state(id);
            if st.alive { st.holding } else { None }
        };
        if let Some((token, deadline)) = holding
            && now_ms() < deadline - shared.margin_ms
        {
            seq += 1;
            shared.append(id, token, seq, false);
        }
    }
}
