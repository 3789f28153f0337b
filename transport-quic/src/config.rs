//! What a node needs to start its transport, and the tunables.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use gen_paxos_core::NodeId;

use crate::certs::{CaCertificate, Identity};
use crate::codec::{DEFAULT_MAX_FRAME_LEN, MAX_FRAME_LEN_CAP};
use crate::error::Error;

/// Where a peer listens: a socket address, or a host name and port resolved at every dial
/// (so a machine replaced under the same name is found again on reconnect).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerAddr {
    /// An IP address and port.
    Socket(SocketAddr),
    /// A DNS name (or anything the system resolver knows, `/etc/hosts` included) and port.
    Host {
        /// The name.
        host: String,
        /// The UDP port.
        port: u16,
    },
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        PeerAddr::Socket(addr)
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Socket(addr) => write!(f, "{addr}"),
            PeerAddr::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Parses `10.0.0.2:7002`, `[fd00::2]:7002` or `node2.internal:7002`.
impl FromStr for PeerAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(PeerAddr::Socket(addr));
        }
        let bad = || format!("{text:?} is not an address like 10.0.0.2:7002 or node2.example:7002");
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) || port == 0 {
            return Err(bad());
        }
        Ok(PeerAddr::Host {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl PeerAddr {
    /// The addresses this resolves to now (a socket address resolves to itself). Blocks
    /// for a name; async code uses [`PeerAddr::resolve`].
    pub fn resolve_blocking(&self) -> std::io::Result<Vec<SocketAddr>> {
        use std::net::ToSocketAddrs;
        match self {
            PeerAddr::Socket(addr) => Ok(vec![*addr]),
            PeerAddr::Host { host, port } => {
                Ok((host.as_str(), *port).to_socket_addrs()?.collect())
            }
        }
    }

    /// The addresses this resolves to now.
    pub async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            PeerAddr::Socket(addr) => Ok(vec![*addr]),
            PeerAddr::Host { host, port } => Ok(tokio::net::lookup_host((host.as_str(), *port))
                .await?
                .collect()),
        }
    }
}

/// Of `candidates`, the first of the same address family as `local` (an IPv4 socket cannot
/// reach an IPv6 address), else the first.
pub(crate) fn pick_address(
    candidates: &[SocketAddr],
    local: Option<SocketAddr>,
) -> Option<SocketAddr> {
    let same = |a: &&SocketAddr| local.is_none_or(|l| l.is_ipv4() == a.is_ipv4());
    candidates.iter().find(same).or(candidates.first()).copied()
}

/// A node's transport configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// This node's id; must be the id bound in `identity`'s certificate.
    pub local_id: NodeId,
    /// The UDP address to listen on (and dial from).
    pub listen: SocketAddr,
    /// The other nodes of the cluster and their addresses. Only these may connect as nodes
    /// (others as guests, see [`Settings::accept_guests`]); an entry for `local_id` is
    /// ignored.
    pub peers: BTreeMap<NodeId, PeerAddr>,
    /// This node's certificate and key.
    pub identity: Identity,
    /// The cluster CA certificate.
    pub ca: CaCertificate,
    /// Tunables.
    pub settings: Settings,
}

impl Config {
    /// A configuration with no peers and default [`Settings`].
    pub fn new(
        local_id: NodeId,
        listen: SocketAddr,
        identity: Identity,
        ca: CaCertificate,
    ) -> Self {
        Config {
            local_id,
            listen,
            peers: BTreeMap::new(),
            identity,
            ca,
            settings: Settings::default(),
        }
    }

    /// Adds (or moves) peer `id` at `addr`.
    pub fn with_peer(mut self, id: NodeId, addr: SocketAddr) -> Self {
        self.peers.insert(id, PeerAddr::Socket(addr));
        self
    }

    /// Adds (or moves) peer `id` at `addr`, which may be a host name resolved at every
    /// dial.
    pub fn with_peer_addr(mut self, id: NodeId, addr: PeerAddr) -> Self {
        self.peers.insert(id, addr);
        self
    }

    /// Replaces the settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }
}

/// Tunables of the transport. Start from [`Settings::default`] or
/// [`Settings::for_lease`] and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// Longest frame sent or accepted, version byte included (default 1 MiB, at most
    /// [`MAX_FRAME_LEN_CAP`]).
    pub max_frame_len: usize,
    /// Longest answer to a status client (default and at most [`MAX_FRAME_LEN_CAP`], 16
    /// MiB: a node's status lists every lease, about 60 bytes each). Questions from
    /// clients stay under `max_frame_len`.
    pub max_status_reply_len: usize,
    /// Messages queued per peer before the oldest is dropped (default 1024).
    pub send_queue_len: usize,
    /// Received messages waiting for [`gen_paxos_election::Transport::recv`] (default 4096). When
    /// full, datagrams are dropped (counted) and streams wait.
    pub recv_queue_len: usize,
    /// QUIC keep-alive interval; must be shorter than `idle_timeout` (default 1 s).
    pub keep_alive_interval: Duration,
    /// A connection silent for this long is closed (default 5 s).
    pub idle_timeout: Duration,
    /// The round-trip time assumed before one is measured (default 100 ms; 10 ms suits
    /// loopback and a LAN). It sets the handshake's first retransmission timers.
    pub initial_rtt: Duration,
    /// How long a dial (or a status request) may take before it is abandoned
    /// (default 2 s).
    pub connect_timeout: Duration,
    /// First delay before redialling a peer after a failed dial (default 20 ms).
    pub reconnect_backoff_min: Duration,
    /// Longest delay between redials; the delay doubles up to this, with jitter
    /// (default 1 s).
    pub reconnect_backoff_max: Duration,
    /// An authenticated connection that sends more than this many bad frames
    /// (malformed or oversized) within `bad_frame_window` is closed (default 16).
    pub bad_frame_limit: u32,
    /// The window of `bad_frame_limit` (default 10 s).
    pub bad_frame_window: Duration,
    /// Whether status clients (identity "client") may connect (default false).
    pub accept_clients: bool,
    /// Status-client connections served at once; more are closed (default 8).
    pub max_client_connections: usize,
    /// Requests one status-client connection may have in flight at once (each is a QUIC
    /// stream; default 4).
    pub max_client_streams: u32,
    /// Status requests waiting to be answered before new ones are refused (default 16).
    pub client_queue_len: usize,
    /// Handshakes in progress at once from sources that are not configured peers (status
    /// clients, guests, strangers); beyond it, new ones are ignored (default 64). Each
    /// configured peer's address has `peer_handshake_slots` of its own.
    pub max_handshakes: usize,
    /// Handshakes reserved for each configured peer's address, whatever else is going on
    /// (default 2). Every source must first prove its address with a QUIC retry, so a
    /// flood with forged source addresses cannot take these.
    pub peer_handshake_slots: usize,
    /// Handshakes per second started for sources that are not configured peers, after a
    /// burst of `max_handshakes` (default 200/s): a flood of handshakes costs this node
    /// a bounded amount of work, and configured peers are never held back by it.
    pub handshake_rate: u32,
    /// Handshakes in progress at once from one IP address that is not a configured peer's
    /// (default 4), so one flooding host cannot take the whole pool.
    pub max_handshakes_per_ip: usize,
    /// Handshakes per second started for one IP address that is not a configured peer's,
    /// after a burst of `max_handshakes_per_ip` (default 20/s), so a few flooding hosts
    /// cannot use up `handshake_rate` for everyone else.
    pub handshake_rate_per_ip: u32,
    /// Whether nodes of the CA that are not configured peers may connect as guests
    /// (default true). A guest's messages reach the runtime under its verified id, and
    /// the runtime may answer it: that is how a node learns that another node lists it
    /// with a different cluster configuration. The runtime admits nothing else from it.
    pub accept_guests: bool,
    /// Guest connections served at once (default 8); more are closed.
    pub max_guests: usize,
    /// A status-client connection with no request for this long is closed (default 2 s),
    /// so idle clients cannot hold the `max_client_connections` slots.
    pub client_idle_timeout: Duration,
    /// How long [`gen_paxos_election::Transport::close`] may spend flushing (default 500 ms).
    pub close_timeout: Duration,
    /// The UDP socket's receive buffer this node asks the kernel for, in bytes (default
    /// 4 MiB). The kernel grants at most `net.core.rmem_max` (often 208 KiB); what it
    /// granted is logged at start. A datagram that arrives while the buffer is full is
    /// lost (`RcvbufErrors` in `/proc/net/snmp`): with 100,000 leases and the usual
    /// 208 KiB, a node lost 10 to 30 datagrams a second, each carrying many renewals.
    /// QUIC's own buffer of received datagrams the node has not read yet has the same
    /// size (quinn drops the oldest beyond it).
    pub recv_buffer_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_status_reply_len: MAX_FRAME_LEN_CAP,
            send_queue_len: 1024,
            recv_queue_len: 4096,
            keep_alive_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            initial_rtt: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(2),
            reconnect_backoff_min: Duration::from_millis(20),
            reconnect_backoff_max: Duration::from_secs(1),
            bad_frame_limit: 16,
            bad_frame_window: Duration::from_secs(10),
            accept_clients: false,
            max_client_connections: 8,
            max_client_streams: 4,
            client_queue_len: 16,
            max_handshakes: 64,
            peer_handshake_slots: 2,
            handshake_rate: 200,
            max_handshakes_per_ip: 4,
            handshake_rate_per_ip: 20,
            accept_guests: true,
            max_guests: 8,
            client_idle_timeout: Duration::from_secs(2),
            close_timeout: Duration::from_millis(500),
            recv_buffer_size: 4 << 20,
        }
    }
}

impl Settings {
    /// These settings for a node with a replicated log: frames up to
    /// [`crate::codec::MAX_FRAME_LEN_CAP`] (16 MiB) from peers, since a snapshot of the
    /// state travels to a replica behind it in one message. Client requests stay at the
    /// default limit.
    pub fn carrying_snapshots(mut self) -> Settings {
        self.max_frame_len = MAX_FRAME_LEN_CAP;
        self
    }

    /// Settings derived from the lease duration: the idle timeout is two leases (at least
    /// 1 s, at most 60 s), keep-alives go every quarter of that, a dial may take one lease
    /// (between 200 ms and 5 s), and redials back off to at most half a lease (at least
    /// 100 ms).
    ///
    /// QUIC liveness is not the lease: a dead connection only costs reconnects, and the
    /// lease protocol keeps its own clock discipline.
    pub fn for_lease(lease: Duration) -> Settings {
        let idle = (lease * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
        Settings {
            idle_timeout: idle,
            keep_alive_interval: idle / 4,
            connect_timeout: lease.clamp(Duration::from_millis(200), Duration::from_secs(5)),
            reconnect_backoff_max: (lease / 2).max(Duration::from_millis(100)),
            ..Settings::default()
        }
    }

    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |msg: &str| Err(Error::InvalidSettings(msg.to_string()));
        if self.max_frame_len < 16 || self.max_frame_len > MAX_FRAME_LEN_CAP {
            return fail("max_frame_len must be between 16 bytes and 16 MiB");
        }
        if self.max_status_reply_len < 16 || self.max_status_reply_len > MAX_FRAME_LEN_CAP {
            return fail("max_status_reply_len must be between 16 bytes and 16 MiB");
        }
        if self.send_queue_len == 0 || self.recv_queue_len == 0 || self.client_queue_len == 0 {
            return fail("queue lengths must be at least 1");
        }
        if self.idle_timeout.is_zero() || self.keep_alive_interval >= self.idle_timeout {
            return fail("keep_alive_interval must be shorter than a non-zero idle_timeout");
        }
        if self.initial_rtt.is_zero() || self.connect_timeout.is_zero() {
            return fail("initial_rtt and connect_timeout must be non-zero");
        }
        if self.reconnect_backoff_min.is_zero()
            || self.reconnect_backoff_min > self.reconnect_backoff_max
        {
            return fail("reconnect backoff must satisfy 0 < min <= max");
        }
        if self.bad_frame_window.is_zero() {
            return fail("bad_frame_window must be non-zero");
        }
        if self.max_handshakes == 0
            || self.peer_handshake_slots == 0
            || self.max_handshakes_per_ip == 0
            || self.handshake_rate == 0
            || self.handshake_rate_per_ip == 0
        {
            return fail(
                "max_handshakes, peer_handshake_slots, max_handshakes_per_ip, handshake_rate and handshake_rate_per_ip must be at least 1",
            );
        }
        if self.max_client_streams == 0 {
            return fail("max_client_streams must be non-zero");
        }
        if self.client_idle_timeout.is_zero() {
            return fail("client_idle_timeout must be non-zero");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_parse_as_sockets_or_host_names() {
        let socket: SocketAddr = "10.0.0.2:7002".parse().expect("addr");
        assert_eq!("10.0.0.2:7002".parse(), Ok(PeerAddr::Socket(socket)));
        assert!(matches!("[fd00::2]:7002".parse(), Ok(PeerAddr::Socket(_))));
        assert_eq!(
            "Node2.Internal:7002".parse(),
            Ok(PeerAddr::Host {
                host: "node2.internal".into(),
                port: 7002
            })
        );
        for bad in [
            "node2",
            "node2:",
            ":7002",
            "node 2:7002",
            "node2:70000",
            "-a.b:1",
            "a..b:1",
            "a:0",
        ] {
            assert!(bad.parse::<PeerAddr>().is_err(), "{bad}");
        }
        let v4: SocketAddr = "127.0.0.1:1".parse().expect("v4");
        let v6: SocketAddr = "[::1]:1".parse().expect("v6");
        assert_eq!(pick_address(&[v6, v4], Some(v4)), Some(v4));
        assert_eq!(pick_address(&[v6], Some(v4)), Some(v6));
    }

    #[test]
    fn defaults_and_lease_derived_settings_are_valid() -> Result<(), Error> {
        Settings::default().validate()?;
        for ms in [1, 50, 2_000, 3_600_000] {
            Settings::for_lease(Duration::from_millis(ms)).validate()?;
        }
        let mut bad = Settings::default();
        bad.keep_alive_interval = bad.idle_timeout;
        assert!(bad.validate().is_err());
        Ok(())
    }
}
