//! A QUIC handshake flooder for tests on loopback: valid client Initial packets that
//! start handshakes and never finish them, bounded in rate and time.
//!
//! One TLS ClientHello (ALPN `gen-paxos/1`, no client certificate) is made once with
//! rustls; every packet wraps it in a new QUIC v1 Initial with a fresh destination
//! connection id, protected with the Initial keys of RFC 9001 section 5 (derived from
//! that id, so each packet costs a few microseconds, not a key exchange). With
//! `answer_retries`, the flooder also answers the server's Retry packets with the token,
//! as a real client would: its source address is then validated, and the server starts
//! a TLS handshake that waits for a Finished that never comes.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ring::aead::quic::{AES_128, HeaderProtectionKey};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};

const INITIAL_SALT: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SCID: [u8; 8] = *b"floodcid";

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label of TLS 1.3 with an empty context.
fn expand_label(prk: &Prk, label: &str, out: &mut [u8]) {
    let full = format!("tls13 {label}");
    let length = (out.len() as u16).to_be_bytes();
    let label_len = [full.len() as u8];
    let info: [&[u8]; 4] = [&length, &label_len, full.as_bytes(), &[0]];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("hkdf lengths are fixed");
}

/// The client's Initial packet keys for destination connection id `dcid`.
struct InitialKeys {
    key: LessSafeKey,
    iv: [u8; 12],
    hp: HeaderProtectionKey,
}

impl InitialKeys {
    fn for_dcid(dcid: &[u8]) -> InitialKeys {
        let initial = Salt::new(HKDF_SHA256, &INITIAL_SALT).extract(dcid);
        let mut secret = [0u8; 32];
        expand_label(&initial, "client in", &mut secret);
        let client = Prk::new_less_safe(HKDF_SHA256, &secret);
        let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
        expand_label(&client, "quic key", &mut key);
        expand_label(&client, "quic iv", &mut iv);
        expand_label(&client, "quic hp", &mut hp);
        InitialKeys {
            key: LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).expect("key length")),
            iv,
            hp: HeaderProtectionKey::new(&AES_128, &hp).expect("hp key length"),
        }
    }
}

fn varint(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=63 => out.push(v as u8),
        64..=16383 => out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        _ => out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
    }
}

/// A TLS 1.3 ClientHello for QUIC with the gen-paxos ALPN, whose transport parameters
/// name `SCID` as the initial source connection id.
fn client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"gen-paxos/1".to_vec()];
    let mut params = Vec::new();
    varint(&mut params, 0x0f); // initial_source_connection_id
    varint(&mut params, SCID.len() as u64);
    params.extend_from_slice(&SCID);
    let name = rustls::pki_types::ServerName::try_from("node-1.gen-paxos").expect("name");
    let mut conn = rustls::quic::ClientConnection::new(
        Arc::new(config),
        rustls::quic::Version::V1,
        name,
        params,
    )
    .expect("client connection");
    let mut hello = Vec::new();
    let _ = conn.write_hs(&mut hello);
    hello
}

/// One protected Initial datagram of 1200 bytes carrying `hello`.
fn initial(hello: &[u8], dcid: &[u8], token: &[u8], pn: u32) -> Vec<u8> {
    const SIZE: usize = 1200;
    const TAG: usize = 16;
    let mut header = vec![0xc3]; // long header, Initial, 4-byte packet number
    header.extend_from_slice(&1u32.to_be_bytes());
    header.push(dcid.len() as u8);
    header.extend_from_slice(dcid);
    header.push(SCID.len() as u8);
    header.extend_from_slice(&SCID);
    varint(&mut header, token.len() as u64);
    header.extend_from_slice(token);
    let len_at = header.len();
    let payload_len = SIZE - len_at - 2 - 4 - TAG;
    varint(&mut header, (4 + payload_len + TAG) as u64);
    debug_assert_eq!(header.len(), len_at + 2);
    let pn_at = header.len();
    header.extend_from_slice(&pn.to_be_bytes());
    let mut payload = vec![0x06, 0x00]; // CRYPTO at offset 0
    varint(&mut payload, hello.len() as u64);
    payload.extend_from_slice(hello);
    payload.resize(payload_len, 0); // PADDING
    let keys = InitialKeys::for_dcid(dcid);
    let mut nonce = keys.iv;
    for (i, b) in pn.to_be_bytes().iter().enumerate() {
        nonce[8 + i] ^= b;
    }
    let tag = keys
        .key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&header[..]),
            &mut payload,
        )
        .expect("seal");
    let mut packet = header;
    packet.extend_from_slice(&payload);
    packet.extend_from_slice(tag.as_ref());
    let sample_at = pn_at + 4;
    let mask = keys
        .hp
        .new_mask(&packet[sample_at..sample_at + 16])
        .expect("mask");
    packet[0] ^= mask[0] & 0x0f;
    for i in 0..4 {
        packet[pn_at + i] ^= mask[1 + i];
    }
    packet
}

/// The (new destination connection id, token) of a Retry packet, if `packet` is one.
fn parse_retry(packet: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if packet.len() < 7 + 16 || packet[0] & 0xf0 != 0xf0 || packet[1..5] != 1u32.to_be_bytes() {
        return None;
    }
    let mut at = 5;
    let dcid_len = *packet.get(at)? as usize;
    at += 1 + dcid_len;
    let scid_len = *packet.get(at)? as usize;
    let scid = packet.get(at + 1..at + 1 + scid_len)?.to_vec();
    at += 1 + scid_len;
    let token = packet.get(at..packet.len() - 16)?.to_vec();
    Some((scid, token))
}

/// What a flood did.
#[derive(Debug, Default)]
pub struct Counts {
    pub initials: AtomicU64,
    pub retries_answered: AtomicU64,
}

/// A running flood; stops (and joins) on `stop` or drop.
pub struct Flood {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub counts: Arc<Counts>,
}

impl Flood {
    /// Sends `per_target` Initials per second to each target, spread over one socket per
    /// source IP, for at most `limit`.
    pub fn start(
        targets: &[SocketAddr],
        sources: &[IpAddr],
        per_target: u32,
        answer_retries: bool,
        limit: Duration,
    ) -> Flood {
        let hello = Arc::new(client_hello());
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let per_source = per_target / sources.len().max(1) as u32;
        let threads = sources
            .iter()
            .enumerate()
            .map(|(n, &ip)| {
                let socket = UdpSocket::bind((ip, 0)).expect("bind a flood source");
                socket.set_nonblocking(true).expect("nonblocking");
                let (targets, hello, stop, counts) = (
                    targets.to_vec(),
                    hello.clone(),
                    stop.clone(),
                    counts.clone(),
                );
                thread::spawn(move || {
                    run(
                        socket,
                        &targets,
                        &hello,
                        per_source,
                        answer_retries,
                        limit,
                        &stop,
                        &counts,
                        n,
                    )
                })
            })
            .collect();
        Flood {
            stop,
            threads,
            counts,
        }
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop();
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    socket: UdpSocket,
    targets: &[SocketAddr],
    hello: &[u8],
    per_second: u32,
    answer_retries: bool,
    limit: Duration,
    stop: &AtomicBool,
    counts: &Counts,
    seed: usize,
) {
    let tick = Duration::from_millis(10);
    let per_tick = (per_second as u64 * tick.as_millis() as u64 / 1000).max(1);
    let start = Instant::now();
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (seed as u64 + 1);
    let mut pn = 0u32;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) && start.elapsed() < limit {
        let next = Instant::now() + tick;
        for target in targets {
            for _ in 0..per_tick {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let dcid = x.to_be_bytes();
                pn = pn.wrapping_add(1);
                if socket
                    .send_to(&initial(hello, &dcid, &[], pn), target)
                    .is_ok()
                {
                    counts.initials.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Read what came back: Retries are answered (if asked), the rest is ignored.
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            if !answer_retries {
                continue;
            }
            if let Some((dcid, token)) = parse_retry(&buf[..n]) {
                pn = pn.wrapping_add(1);
                if socket
                    .send_to(&initial(hello, &dcid, &token, pn), from)
                    .is_ok()
                {
                    counts.retries_answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}
