//! The decoder never panics, whatever bytes a peer sends; what it accepts round-trips.

use gen_paxos_quic::codec::{self, CodecError, WIRE_VERSION};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde::{Deserialize, Serialize};

/// A message shaped like the protocol's: nested enums, strings, sequences, options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Message {
    Prepare {
        lease: String,
        ballot: (u64, u64, u64),
    },
    Promise {
        lease: String,
        accepted: Option<(u64, Vec<u8>)>,
        voters: Vec<u64>,
    },
    Renew(u64, bool, char),
    Empty,
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (".{0,40}", any::<(u64, u64, u64)>())
            .prop_map(|(lease, ballot)| Message::Prepare { lease, ballot }),
        (
            ".{0,40}",
            any::<Option<(u64, Vec<u8>)>>(),
            prop::collection::vec(any::<u64>(), 0..8)
        )
            .prop_map(|(lease, accepted, voters)| Message::Promise {
                lease,
                accepted,
                voters
            }),
        any::<(u64, bool, char)>().prop_map(|(a, b, c)| Message::Renew(a, b, c)),
        Just(Message::Empty),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode::<Message>(&bytes, 1 << 20);
        let _ = codec::decode::<Vec<String>>(&bytes, 1 << 20);
        let _ = codec::decode::<Message>(&bytes, 8);
    }

    #[test]
    fn decoder_never_panics_on_bytes_behind_a_valid_version(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut frame = vec![WIRE_VERSION];
        frame.extend_from_slice(&bytes);
        let _ = codec::decode::<Message>(&frame, 1 << 20);
        let _ = codec::decode::<(String, Vec<u64>, Option<char>)>(&frame, 1 << 20);
    }

    #[test]
    fn mutated_valid_frames_never_panic(msg in message(), index in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut frame = codec::encode(&msg, 1 << 20).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let at = index.index(frame.len());
        frame[at] = byte;
        let _ = codec::decode::<Message>(&frame, 1 << 20);
        let keep = cut.index(frame.len() + 1);
        let _ = codec::decode::<Message>(&frame[..keep], 1 << 20);
    }

    #[test]
    fn valid_frames_round_trip_and_reject_trailing_bytes(msg in message(), extra in 1usize..8) {
        let frame = codec::encode(&msg, 1 << 20).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(codec::decode::<Message>(&frame, 1 << 20), Ok(msg));
        let mut longer = frame.clone();
        longer.extend(std::iter::repeat_n(0u8, extra));
        prop_assert_eq!(codec::decode::<Message>(&longer, 1 << 20), Err(CodecError::TrailingBytes(extra)));
    }
}
