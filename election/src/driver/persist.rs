//! The node's storage on a thread of its own: the driver hands it the core's persist
//! requests (and, now and then, a checkpoint to rewrite to); it writes every request that
//! arrived meanwhile with one sync (group commit) and tells the driver the highest token
//! made durable. A failure is told once and is final: the core then answers no more as a log
//! or `ask` acceptor (R3).

use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use gen_paxos_core::{NodeId, PersistRequest, Record};
use tokio::sync::mpsc;
use tracing::error;

use crate::callbacks::Internal;
use crate::storage::Storage;

/// Below this, the log is never rewritten (bytes).
const REWRITE_FLOOR: u64 = 1 << 20;
/// The log is rewritten to a checkpoint once it is this many times the last one.
const REWRITE_FACTOR: u64 = 4;

/// Work for the storage thread, in the order the driver produced it.
#[derive(Debug)]
pub(crate) enum Job {
    Append(PersistRequest),
    /// A checkpoint covering every request sent before it.
    Rewrite(Vec<Record>),
}

/// The storage thread's handle; dropping it ends the thread once its queue is written.
#[derive(Debug)]
pub(crate) struct Persister {
    jobs: Option<std_mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Persister {
    /// Starts the thread for `storage` (already loaded). `failed`: the storage could not
    /// be read at start, so nothing is written or confirmed.
    pub(crate) fn spawn(
        node: NodeId,
        storage: Box<dyn Storage>,
        failed: bool,
        internal: mpsc::UnboundedSender<Internal>,
    ) -> Persister {
        let (tx, rx) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("gen-paxos-storage-{node}"))
            .spawn(move || run(node, storage, failed, &rx, &internal))
            .ok();
        Persister {
            jobs: Some(tx),
            thread,
        }
    }

    pub(crate) fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
    }

    /// Waits until everything handed over is written (at shutdown).
    pub(crate) fn finish(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.jobs = None;
    }
}

fn run(
    node: NodeId,
    mut storage: Box<dyn Storage>,
    mut failed: bool,
    jobs: &std_mpsc::Receiver<Job>,
    internal: &mpsc::UnboundedSender<Internal>,
) {
    let mut checkpoint_size = storage.size().unwrap_or(0);
    let mut asked = false;
    while let Ok(first) = jobs.recv() {
        // Group commit: everything that arrived while the last sync ran goes in one.
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        if failed {
            continue;
        }
        let mut records = Vec::new();
        let mut token = None;
        let mut result = Ok(());
        for job in batch {
            match job {
                Job::Append(req) => {
                    records.extend(req.records);
                    token = Some(req.token);
                }
                Job::Rewrite(checkpoint) => {
                    result = flush(&mut *storage, &mut records)
                        .and_then(|()| storage.rewrite(&checkpoint));
                    checkpoint_size = storage.size().unwrap_or(0);
                    asked = false;
                    if result.is_err() {
                        break;
                    }
                }
            }
        }
        if result.is_ok() {
            result = flush(&mut *storage, &mut records);
        }
        match result {
            Ok(()) => {
                if let Some(token) = token {
                    let _ = internal.send(Internal::Persisted { token });
                }
                let size = storage.size().unwrap_or(0);
                if !asked && size > REWRITE_FLOOR.max(checkpoint_size * REWRITE_FACTOR) {
                    asked = true;
                    let _ = internal.send(Internal::CheckpointWanted);
                }
            }
            Err(e) => {
                failed = true;
                error!(%node, error = %e, "storage failed: this node no longer answers as a log or ask acceptor");
                let _ = internal.send(Internal::PersistFailed {
                    error: e.to_string(),
                });
            }
        }
    }
}

fn flush(
    storage: &mut dyn Storage,
    records: &mut Vec<Record>,
) -> Result<(), crate::storage::StorageError> {
    if records.is_empty() {
        return Ok(());
    }
    let result = storage.append(records);
    records.clear();
    result
}
