//! Pieces the subcommands share: peer lists, certificate files, the JSON event lines.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use gen_paxos_election::{ElectionEvent, EventLine, LineEvent, NodeId};
use gen_paxos_quic::{CaCertificate, Identity, PeerAddr};
use tokio::time::Instant;

static JSON_LOGS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Records that stderr carries JSON log lines (`--log-format json`).
pub fn set_json_logs(json: bool) {
    let _ = JSON_LOGS.set(json);
}

/// A line for the person running the tool, on stderr: plain text, or an `info` event in
/// JSON mode so that stderr stays one JSON object per line.
pub fn notice(line: &str) {
    if JSON_LOGS.get().copied().unwrap_or(false) {
        tracing::info!("{line}");
    } else {
        eprintln!("gen-paxos: {line}");
    }
}

/// Like [`notice`] for a failure: an `error` event in JSON mode.
pub fn complain(line: &str) {
    if JSON_LOGS.get().copied().unwrap_or(false) {
        tracing::error!("{line}");
    } else {
        eprintln!("gen-paxos: {line}");
    }
}

/// Writes one line to stdout, flushed; exits quietly if stdout was closed (see `outln!`).
pub fn emit(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        complain(&format!("cannot write to stdout: {e}"));
        std::process::exit(1);
    }
}

/// `ID=ADDR`, e.g. `2=127.0.0.1:7002` or `2=node2.example:7002` (a name is resolved at
/// every connection).
pub fn parse_peer(text: &str) -> Result<(NodeId, PeerAddr), String> {
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("expected ID=ADDR, got {text:?}"))?;
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{id:?} is not a node id"))?;
    let addr = addr.trim().parse::<PeerAddr>()?;
    Ok((NodeId(id), addr))
}

/// The address a tool connects to for `peer`, resolved now (a name, to the first address
/// of the family of `0.0.0.0`/`::` that fits).
pub async fn resolve(peer: &PeerAddr) -> Result<SocketAddr, String> {
    let found = peer
        .resolve()
        .await
        .map_err(|e| format!("cannot resolve {peer}: {e}"))?;
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or(found.first())
        .copied()
        .ok_or_else(|| format!("{peer} resolves to no address"))
}

/// A duration such as `2s`, `500ms`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, gen_paxos_election::DurationError> {
    gen_paxos_election::parse_duration(text)
}

/// Loads `node-<id>.pem`/`.key` (or `client.pem`/`.key` for `None`) and `ca.pem` from `dir`.
pub fn load_identity(dir: &Path, node: Option<NodeId>) -> Result<(Identity, CaCertificate)> {
    load_identity_named(dir, node, None)
}

/// Like [`load_identity`]; a client may be named (`client-<NAME>.pem`, made by
/// `certs --add-client NAME`).
pub fn load_identity_named(
    dir: &Path,
    node: Option<NodeId>,
    client: Option<&str>,
) -> Result<(Identity, CaCertificate)> {
    let (cert, key) = match (node, client) {
        (Some(id), _) => gen_paxos_quic::node_file_names(id),
        (None, Some(name)) => (format!("client-{name}.pem"), format!("client-{name}.key")),
        (None, None) => ("client.pem".to_string(), "client.key".to_string()),
    };
    let identity = Identity::load(&dir.join(&cert), &dir.join(&key))
        .with_context(|| format!("cannot load {} and {} from {}", cert, key, dir.display()))?;
    let ca = CaCertificate::load(&dir.join("ca.pem"))
        .with_context(|| format!("cannot load ca.pem from {}", dir.display()))?;
    Ok((identity, ca))
}

/// Unix time in milliseconds, as a float.
pub fn unix_ms(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The wall-clock time of a monotonic instant, for display only.
pub fn wall_of(instant: Instant) -> SystemTime {
    let (now, wall) = (Instant::now(), SystemTime::now());
    if instant >= now {
        wall + (instant - now)
    } else {
        wall - (now - instant)
    }
}

/// One event as the line `gen-paxos node` prints ([`EventLine`] as JSON), or `None` for
/// events that are logged rather than printed.
pub fn event_json(node: NodeId, event: &ElectionEvent) -> Option<String> {
    let event = LineEvent::of(event, |deadline| unix_ms(wall_of(deadline)))?;
    let line = EventLine {
        ts_ms: unix_ms(SystemTime::now()),
        node: node.0,
        event,
    };
    serde_json::to_string(&line).ok()
}

/// An error for a value that must be present.
pub fn missing(what: &str) -> anyhow::Error {
    anyhow!("missing {what} (give it as a flag or in --config)")
}
