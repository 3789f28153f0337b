//! Durable storage for the replicated log and `ask` (docs/REPLICATION.md, R3).
//!
//! The core never touches a disk: it hands the runtime [`Record`]s in
//! [`gen_paxos_core::PersistRequest`]s and holds back every reply that depends on them until
//! the runtime says they are durable. A [`Storage`] is where they go: [`DiskStorage`] (the
//! default, a write-ahead log in one directory per node, every record checksummed) or
//! [`MemoryStorage`] (tests). The runtime calls [`Storage::append`] with every request that
//! arrived together, so one sync covers them all (group commit).
//!
//! What cannot be trusted is refused, never guessed: a record whose checksum does not match,
//! or that does not decode, is [`StorageError::Corrupt`], and a node that gets it does not act
//! as a log or `ask` acceptor. After a failed write or sync the storage refuses every later
//! write ([`StorageError::Failed`]): what reached the disk is unknown, so nothing more may be
//! confirmed.

use std::path::PathBuf;

pub use gen_paxos_core::Record;

mod disk;
mod frame;
mod memory;
#[cfg(test)]
mod tests;

pub use disk::DiskStorage;
pub use memory::MemoryStorage;

/// Where a node's log and `ask` records are made durable.
pub trait Storage: Send + 'static {
    /// Every record written before, in the order written. Called once, at start.
    fn load(&mut self) -> Result<Vec<Record>, StorageError>;

    /// Writes `records` after every earlier one and makes them durable before returning
    /// (one sync for all of them).
    fn append(&mut self, records: &[Record]) -> Result<(), StorageError>;

    /// Replaces everything written with `records`, a checkpoint of the node's durable state
    /// (restoring from it gives the same state as restoring from everything before it), so
    /// the storage stays within a small multiple of the live data. Durable before it
    /// returns; a crash part-way leaves either the old records or the new ones, which
    /// restore alike. The default appends the checkpoint (also equivalent, never smaller).
    fn rewrite(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.append(records)
    }

    /// Bytes the records take, where the storage knows.
    fn size(&self) -> Option<u64> {
        None
    }
}

/// Why storage refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A record failed its checksum or did not decode: the node must not act as a log or
    /// `ask` acceptor on what it has (restore the directory from a backup, or remove the
    /// node from the cluster and add it back with an empty one).
    #[error(
        "{path}: the record at byte {offset} is corrupt ({reason}); refusing to act as a log or ask acceptor rather than guess"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A file operation failed.
    #[error("{path}: {op} failed: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The directory was never made a data directory ([`DiskStorage::create`]), or it
    /// was emptied: a node that answered as an acceptor before and lost what it wrote must
    /// not answer again as if it had nothing to lose (R3).
    #[error(
        "{path} holds no gen-paxos data (no {marker}): if this node is new, create its data directory once (the tool: --init-data-dir); if it lost its data, it must not act as a log or ask acceptor again (docs/STORAGE.md)"
    )]
    NotInitialized {
        /// The directory.
        path: PathBuf,
        /// The file that marks a data directory.
        marker: &'static str,
    },
    /// [`DiskStorage::create`] was given a directory that already holds data.
    #[error("{path} already holds gen-paxos data: start without --init-data-dir to use it")]
    AlreadyInitialized {
        /// The directory.
        path: PathBuf,
    },
    /// A record is larger than storage takes.
    #[error("a record of {len} bytes exceeds the storage limit of {max} bytes")]
    TooLarge {
        /// Its encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier write or sync failed: what reached the disk is unknown, so this storage
    /// takes no more writes (restart the node once the disk is fixed).
    #[error("an earlier write failed ({0}); this storage takes no more writes")]
    Failed(String),
}

/// Maps an I/O error during `op` on `path` to a [`StorageError::Io`].
pub(crate) fn io_error(
    path: impl Into<PathBuf>,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.into();
    move |source| StorageError::Io { path, op, source }
}
