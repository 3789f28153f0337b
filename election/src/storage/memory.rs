//! [`MemoryStorage`]: records in memory, shared between clones so a test can "restart" a
//! node with the storage it had, lose it, or make writes fail.

use std::sync::{Arc, Mutex, MutexGuard};

use gen_paxos_core::Record;

use super::{Storage, StorageError};

#[derive(Debug, Default)]
struct Inner {
    records: Vec<Record>,
    fail_writes: bool,
    failed: bool,
    appends: u64,
}

/// In-memory storage for tests; clones share the records.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The records written so far.
    pub fn records(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    /// How many appends were made (each is one sync on a disk).
    pub fn appends(&self) -> u64 {
        self.lock().appends
    }

    /// From now on every write fails (a full disk, a failed sync).
    pub fn fail_writes(&self) {
        self.lock().fail_writes = true;
    }
}

impl Storage for MemoryStorage {
    fn load(&mut self) -> Result<Vec<Record>, StorageError> {
        Ok(self.records())
    }

    fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if inner.failed || inner.fail_writes {
            inner.failed = true;
            return Err(StorageError::Failed("writes made to fail".into()));
        }
        inner.records.extend_from_slice(records);
        inner.appends += 1;
        Ok(())
    }

    fn rewrite(&mut self, records: &[Record]) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if inner.failed || inner.fail_writes {
            inner.failed = true;
            return Err(StorageError::Failed("writes made to fail".into()));
        }
        inner.records = records.to_vec();
        Ok(())
    }
}
