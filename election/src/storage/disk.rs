//! [`DiskStorage`]: a write-ahead log in one directory. Records are appended to the newest
//! segment file (`<sequence>.wal`) and synced (`fdatasync`) once per [`Storage::append`];
//! [`Storage::rewrite`] writes a checkpoint as a new segment (written to a temporary file,
//! synced, renamed, the directory synced) and then deletes the older ones.
//!
//! At start every segment is read in order and every record checked. The one thing taken
//! as not written is a frame cut short (or zeros) at the very end of the newest segment: a
//! write whose sync never returned, so nothing was confirmed on it. It is cut off, with a
//! warning. Anything else that does not check out is [`StorageError::Corrupt`].

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use gen_paxos_core::Record;

use super::frame::{self, Decoded, MAGIC};
use super::{Storage, StorageError, io_error};

/// The file that marks a directory as a node's data directory.
pub const MARKER: &str = "GEN-PAXOS-DATA";

/// A write-ahead log in a node's data directory.
#[derive(Debug)]
pub struct DiskStorage {
    dir: PathBuf,
    /// The segment appends go to, and its sequence number.
    pub(super) current: Option<(File, u64)>,
    size: u64,
    /// Set by a failed write or sync: nothing more is written.
    failed: Option<String>,
    /// A frame cut short at the end was dropped at load (bytes, file).
    torn: Option<(u64, PathBuf)>,
}

impl DiskStorage {
    /// The storage in `dir`, a data directory made by [`DiskStorage::create`] (nothing is
    /// read until [`Storage::load`]). A directory that is missing, or was emptied (its
    /// marker file gone), is [`StorageError::NotInitialized`]: starting on it as if fresh
    /// would let a node that lost its data answer as an acceptor again (R3).
    pub fn open(dir: impl Into<PathBuf>) -> Result<DiskStorage, StorageError> {
        let dir = dir.into();
        if !dir.join(MARKER).is_file() {
            return Err(StorageError::NotInitialized {
                path: dir,
                marker: MARKER,
            });
        }
        Ok(DiskStorage::at(dir))
    }

    /// Makes `dir` (created with its parents if missing, and empty of gen-paxos data) the
    /// data directory of a node that is new to its cluster, and opens it. Refused with
    /// [`StorageError::AlreadyInitialized`] if it holds data already.
    pub fn create(dir: impl Into<PathBuf>) -> Result<DiskStorage, StorageError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_error(&dir, "create the directory"))?;
        let marker = dir.join(MARKER);
        let holds_data = fs::read_dir(&dir)
            .map_err(io_error(&dir, "list the directory"))?
            .filter_map(Result::ok)
            .any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name == MARKER || name.ends_with(".wal")
            });
        if holds_data {
            return Err(StorageError::AlreadyInitialized { path: dir });
        }
        let mut file = File::create(&marker).map_err(io_error(&marker, "create"))?;
        file.write_all(b"gen-paxos data directory, format 1\n")
            .and_then(|()| file.sync_all())
            .map_err(io_error(&marker, "write"))?;
        let storage = DiskStorage::at(dir);
        storage.sync_dir()?;
        Ok(storage)
    }

    fn at(dir: PathBuf) -> DiskStorage {
        DiskStorage {
            dir,
            current: None,
            size: 0,
            failed: None,
            torn: None,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes of a write cut short that [`Storage::load`] dropped from the end, and the file:
    /// a write interrupted by a crash before its sync returned.
    pub fn dropped_torn_tail(&self) -> Option<(u64, &Path)> {
        self.torn.as_ref().map(|(n, p)| (*n, p.as_path()))
    }

    fn segment_path(&self, sequence: u64) -> PathBuf {
        self.dir.join(format!("{sequence:020}.wal"))
    }

    /// The segments, oldest first; leftover temporary files are removed.
    fn segments(&self) -> Result<Vec<(u64, PathBuf)>, StorageError> {
        let mut found = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io_error(&self.dir, "list the directory"))?;
        for entry in entries {
            let entry = entry.map_err(io_error(&self.dir, "list the directory"))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".wal.tmp") {
                // A checkpoint that was never renamed into place: never part of the log.
                fs::remove_file(&path).map_err(io_error(&path, "remove"))?;
                continue;
            }
            if let Some(seq) = name
                .strip_suffix(".wal")
                .and_then(|s| s.parse::<u64>().ok())
            {
                found.push((seq, path));
            }
        }
        found.sort();
        Ok(found)
    }

    fn check_writable(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(why) => Err(StorageError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    /// Runs a write; a failure marks the storage failed for good.
    fn guard<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.check_writable()?;
        let result = f(self);
        if let Err(e) = &result
            && !matches!(e, StorageError::TooLarge { .. })
        {
            self.failed = Some(e.to_string());
        }
        result
    }

    fn sync_dir(&self) -> Result<(), StorageError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(&self.dir, "sync the directory"))
    }

    /// Writes a new segment `sequence` holding `bytes` (frames) durably, atomically.
    fn write_segment(&self, sequence: u64, bytes: &[u8]) -> Result<File, StorageError> {
        let path = self.segment_path(sequence);
        let tmp = path.with_extension("wal.tmp");
        let mut file = File::create(&tmp).map_err(io_error(&tmp, "create"))?;
        file.write_all(MAGIC).map_err(io_error(&tmp, "write"))?;
        file.write_all(bytes).map_err(io_error(&tmp, "write"))?;
        file.sync_all().map_err(io_error(&tmp, "sync"))?;
        fs::rename(&tmp, &path).map_err(io_error(&path, "rename into place"))?;
        self.sync_dir()?;
        OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error(&path, "open for appending"))
    }
}

impl Storage for DiskStorage {
    fn load(&mut self) -> Result<Vec<Record>, StorageError> {
        let segments = self.segments()?;
        let mut records = Vec::new();
        self.size = 0;
        let last = segments.len().saturating_sub(1);
        for (i, (sequence, path)) in segments.iter().enumerate() {
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io_error(path, "read"))?;
            if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
                return Err(StorageError::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    reason: "not a gen-paxos log file (or written by another version)".into(),
                });
            }
            let mut at = MAGIC.len();
            while at < bytes.len() {
                match frame::decode(&bytes[at..]) {
                    Decoded::Record(record, used) => {
                        records.push(record);
                        at += used;
                    }
                    Decoded::Incomplete if i == last => {
                        let dropped = (bytes.len() - at) as u64;
                        let file = OpenOptions::new()
                            .write(true)
                            .open(path)
                            .map_err(io_error(path, "open to cut a torn write"))?;
                        file.set_len(at as u64)
                            .and_then(|()| file.sync_all())
                            .map_err(io_error(path, "cut a torn write"))?;
                        tracing::warn!(
                            file = %path.display(),
                            offset = at,
                            bytes = dropped,
                            "dropped a write cut short at the end of the log (a crash before its sync returned)"
                        );
                        self.torn = Some((dropped, path.clone()));
                        break;
                    }
                    Decoded::Incomplete => {
                        return Err(StorageError::Corrupt {
                            path: path.clone(),
                            offset: at as u64,
                            reason: "cut short before a later file".into(),
                        });
                    }
                    Decoded::Corrupt(reason) => {
                        return Err(StorageError::Corrupt {
                            path: path.clone(),
                            offset: at as u64,
                            reason,
                        });
                    }
                }
            }
            self.size += at as u64;
            if i == last {
                let file = OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(io_error(path, "open for appending"))?;
                self.current = Some((file, *sequence));
            }
        }
        Ok(records)
    }

    fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        let mut bytes = Vec::new();
        for record in records {
            frame::encode(record, &mut bytes)?;
        }
        self.guard(|s| {
            if s.current.is_none() {
                let file = s.write_segment(1, &[])?;
                s.current = Some((file, 1));
                s.size = MAGIC.len() as u64;
            }
            let path = s.segment_path(s.current.as_ref().map_or(1, |c| c.1));
            let Some((file, _)) = s.current.as_mut() else {
                return Ok(());
            };
            file.write_all(&bytes).map_err(io_error(&path, "write"))?;
            file.sync_data().map_err(io_error(&path, "sync"))?;
            s.size += bytes.len() as u64;
            Ok(())
        })
    }

    fn rewrite(&mut self, records: &[Record]) -> Result<(), StorageError> {
        let mut bytes = Vec::new();
        for record in records {
            frame::encode(record, &mut bytes)?;
        }
        self.guard(|s| {
            let old = s.segments()?;
            let sequence = old.last().map_or(1, |(seq, _)| seq + 1);
            let file = s.write_segment(sequence, &bytes)?;
            s.current = Some((file, sequence));
            s.size = (MAGIC.len() + bytes.len()) as u64;
            for (_, path) in old {
                fs::remove_file(&path).map_err(io_error(&path, "remove an old file"))?;
            }
            s.sync_dir()
        })
    }

    fn size(&self) -> Option<u64> {
        Some(self.size)
    }
}
