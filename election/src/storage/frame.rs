//! One record on disk: `[length: u32 LE][CRC-32 of the payload: u32 LE][payload]`, the
//! payload being a version byte and the bincode encoding of the [`Record`]. A file starts
//! with [`MAGIC`].

use gen_paxos_core::Record;

use super::StorageError;

/// The first bytes of every file: the format's name and version.
pub(super) const MAGIC: &[u8; 8] = b"GPWAL\x00\x00\x01";

/// The largest record (the core's largest snapshot, 15 MiB, with room to spare).
pub(super) const MAX_RECORD_LEN: usize = 96 << 20;

const HEADER: usize = 8;
const VERSION: u8 = 1;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_RECORD_LEN>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_RECORD_LEN>()
}

/// Appends the frame of `record` to `out`.
pub(super) fn encode(record: &Record, out: &mut Vec<u8>) -> Result<(), StorageError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(VERSION);
    bincode::serde::encode_into_std_write(record, out, bincode::config::standard())
        .map_err(|e| StorageError::Failed(format!("cannot encode a record: {e}")))?;
    let len = out.len() - start - HEADER;
    if len > MAX_RECORD_LEN {
        out.truncate(start);
        return Err(StorageError::TooLarge {
            len,
            max: MAX_RECORD_LEN,
        });
    }
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// What the bytes at the start of `buf` hold.
#[derive(Debug)]
pub(super) enum Decoded {
    /// A record, and the bytes its frame took.
    Record(Record, usize),
    /// The frame runs past the end of the data: a write that never completed (its sync
    /// never returned, so nothing was confirmed on it), or zeros a crash left.
    Incomplete,
    /// The frame is whole but wrong.
    Corrupt(String),
}

/// Reads one frame from the start of `buf` (not empty).
pub(super) fn decode(buf: &[u8]) -> Decoded {
    if buf.len() < HEADER || buf.iter().all(|b| *b == 0) {
        return Decoded::Incomplete;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 || len > MAX_RECORD_LEN {
        return Decoded::Corrupt(format!("length {len}"));
    }
    let Some(payload) = buf.get(HEADER..HEADER + len) else {
        return Decoded::Incomplete;
    };
    if crc32fast::hash(payload) != crc {
        return Decoded::Corrupt("checksum mismatch".into());
    }
    if payload[0] != VERSION {
        return Decoded::Corrupt(format!("unknown record version {}", payload[0]));
    }
    match bincode::serde::decode_from_slice::<Record, _>(&payload[1..], config()) {
        Ok((record, used)) if used == len - 1 => Decoded::Record(record, HEADER + len),
        Ok((_, used)) => Decoded::Corrupt(format!("{} bytes after the record", len - 1 - used)),
        Err(e) => Decoded::Corrupt(format!("does not decode: {e}")),
    }
}
