//! The wire format of one message: a version byte, then the bincode 2 encoding of the value.
//!
//! Every byte that arrives from a peer goes through [`decode`], which never panics, never
//! allocates more than the frame it was given allows, and rejects trailing bytes. bincode
//! stays behind this one module (and the version byte) so the format can change later
//! without touching the transports or the runtime: transports (e.g. `transport-quic`)
//! frame their messages with it, and the runtime uses it to carry the user payloads of
//! leader calls, casts, broadcasts and sync payloads inside its wire messages.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version byte that starts every frame this crate writes.
///
/// Version 2: every runtime message carries the sender's cluster fingerprint digest, and
/// hellos carry whole fingerprints.
pub const WIRE_VERSION: u8 = 2;

/// The default limit on one frame (version byte included): 1 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 1 << 20;

/// The largest frame limit that can be configured: 16 MiB.
pub const MAX_FRAME_LEN_CAP: usize = 16 << 20;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame has no bytes at all.
    #[error("empty frame")]
    Empty,
    /// The frame starts with a version this build does not speak.
    #[error("unknown wire version {0}")]
    UnknownVersion(u8),
    /// The frame is longer than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLong {
        /// The frame's length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The payload is not a valid encoding of the expected type.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The payload decoded, but bytes were left over.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The value could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

impl CodecError {
    /// Whether the error is about the frame's size (as opposed to its content).
    pub fn is_too_long(&self) -> bool {
        matches!(self, CodecError::TooLong { .. })
    }
}

// A decode may claim at most this many bytes for containers, whatever a length prefix
// inside the payload says: no allocation can outgrow the largest allowed frame.
type DecodeConfig = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME_LEN_CAP>,
>;

fn decode_config() -> DecodeConfig {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN_CAP>()
}

/// The encoding buffer's first size. A batch of lease messages (up to
/// `Config::max_batch_bytes`, 1,000 by default) grows it at most twice; a larger first
/// size would stay attached to every frame waiting in the transport's queues.
const FIRST_CAPACITY: usize = 256;

/// Encodes `message` as one frame, refusing frames longer than `max_len` bytes.
pub fn encode<T: Serialize + ?Sized>(message: &T, max_len: usize) -> Result<Vec<u8>, CodecError> {
    // A batch grew its buffer from one byte in about eight steps, a reallocation and
    // copy each.
    let mut frame = Vec::with_capacity(FIRST_CAPACITY);
    frame.push(WIRE_VERSION);
    bincode::serde::encode_into_std_write(message, &mut frame, bincode::config::standard())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    let max = effective_max(max_len);
    if frame.len() > max {
        return Err(CodecError::TooLong {
            len: frame.len(),
            max,
        });
    }
    Ok(frame)
}

/// Decodes one frame produced by [`encode`]. Never panics on any input.
pub fn decode<T: DeserializeOwned>(frame: &[u8], max_len: usize) -> Result<T, CodecError> {
    let max = effective_max(max_len);
    if frame.len() > max {
        return Err(CodecError::TooLong {
            len: frame.len(),
            max,
        });
    }
    let (&version, payload) = frame.split_first().ok_or(CodecError::Empty)?;
    if version != WIRE_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(payload, decode_config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    // bincode stops at the end of the value; a frame is exactly one value.
    if used != payload.len() {
        return Err(CodecError::TrailingBytes(payload.len() - used));
    }
    Ok(value)
}

/// The limit actually applied: `max_len`, capped at [`MAX_FRAME_LEN_CAP`].
pub fn effective_max(max_len: usize) -> usize {
    max_len.min(MAX_FRAME_LEN_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() -> Result<(), CodecError> {
        let frame = encode(&(7u64, "seven".to_string()), 64)?;
        assert_eq!(frame.first(), Some(&WIRE_VERSION));
        assert_eq!(
            decode::<(u64, String)>(&frame, 64)?,
            (7, "seven".to_string())
        );
        Ok(())
    }

    #[test]
    fn rejects_trailing_bytes_unknown_version_and_empty() -> Result<(), CodecError> {
        let mut frame = encode(&5u32, 64)?;
        frame.push(0);
        assert_eq!(decode::<u32>(&frame, 64), Err(CodecError::TrailingBytes(1)));
        assert_eq!(
            decode::<u32>(&[9, 5], 64),
            Err(CodecError::UnknownVersion(9))
        );
        assert_eq!(decode::<u32>(&[], 64), Err(CodecError::Empty));
        Ok(())
    }

    #[test]
    fn enforces_the_limit_both_ways() -> Result<(), CodecError> {
        let big = vec![0u8; 100];
        assert!(encode(&big, 50).is_err_and(|e| e.is_too_long()));
        let frame = encode(&big, 1000)?;
        assert!(decode::<Vec<u8>>(&frame, 50).is_err_and(|e| e.is_too_long()));
        Ok(())
    }

    #[test]
    fn huge_length_claim_fails_cleanly() {
        // Version, then a varint claiming a 2^32-element vector, with nothing behind it.
        let frame = [WIRE_VERSION, 253, 0, 0, 0, 0, 1, 0, 0, 0];
        assert!(matches!(
            decode::<Vec<u64>>(&frame, 1 << 20),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn lease_names_decode_from_their_text_and_refuse_bad_utf8() -> Result<(), CodecError> {
        use gen_paxos_core::{Ballot, Envelope, Incarnation, LeaseName, Message, NodeId};
        let envelope = Envelope {
            lease: LeaseName::new("orders/eu-1").expect("a valid name"),
            message: Message::Accepted {
                ballot: Ballot {
                    counter: 3,
                    incarnation: Incarnation(9),
                    node: NodeId(2),
                },
            },
        };
        let frame = encode(&envelope, 1024)?;
        let decoded = decode::<Envelope>(&frame, 1024)?;
        assert_eq!(decoded, envelope);
        assert_eq!(decoded.lease.as_str(), "orders/eu-1");
        // The version byte, the name's length, then its text: not UTF-8 is refused.
        assert_eq!(frame.get(1), Some(&11));
        let mut bad = frame.clone();
        bad[2] = 0xff;
        assert!(matches!(
            decode::<Envelope>(&bad, 1024),
            Err(CodecError::Malformed(_))
        ));
        Ok(())
    }
}
