//! Counters of what the transport did, dropped and refused.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the transport's counters, from [`crate::QuicTransport::stats`].
/// Every counter only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages sent as QUIC datagrams.
    pub sent_datagrams: u64,
    /// Messages written to a stream.
    pub sent_stream_frames: u64,
    /// Messages received, decoded and handed to `recv`.
    pub received: u64,
    /// Messages dropped because a peer's send queue was full (the oldest goes).
    pub dropped_queue_full: u64,
    /// Messages addressed to a node that is not a configured peer.
    pub dropped_unknown_peer: u64,
    /// Messages that could not be encoded or exceeded the frame limit.
    pub dropped_unencodable: u64,
    /// Messages lost because their connection or stream failed while sending.
    pub dropped_send_failed: u64,
    /// Messages sent after `close`.
    pub dropped_closed: u64,
    /// Received datagrams dropped because the receive queue was full.
    pub dropped_recv_full: u64,
    /// Received frames that did not decode (bad version, bad encoding, trailing bytes).
    pub malformed_frames: u64,
    /// Received frames longer than the frame limit.
    pub oversized_frames: u64,
    /// Connections closed because they kept sending bad frames.
    pub closed_for_bad_frames: u64,
    /// Connection attempts refused: failed handshakes (no certificate, wrong CA, expired,
    /// identity not in the cluster, ...), over-limit attempts, handshake timeouts.
    pub rejected_handshakes: u64,
    /// Connections this node dialled successfully.
    pub connections_dialled: u64,
    /// Node connections this node accepted.
    pub connections_accepted: u64,
    /// Dials that failed or timed out.
    pub dial_failures: u64,
    /// Status requests handed to the runtime.
    pub client_requests: u64,
    /// Status requests refused (nobody listening, queue full, bad request frame).
    pub client_requests_refused: u64,
    /// QUIC retries sent: every source proves its address before a handshake starts.
    pub retries_sent: u64,
    /// Validated connection attempts not started: a peer address's own slots, the shared
    /// pool, the source IP's share of it, or the handshake rate were used up.
    pub ignored_handshakes: u64,
    /// Connections accepted from nodes of the CA outside the configuration (guests).
    pub guest_connections: u64,
    /// Status-client connections closed for asking nothing for `client_idle_timeout`.
    pub clients_idle_closed: u64,
}

impl Stats {
    /// All messages dropped on the sending side, whatever the reason.
    pub fn dropped_sending(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_unknown_peer
            + self.dropped_unencodable
            + self.dropped_send_failed
            + self.dropped_closed
    }

    /// All received frames dropped, whatever the reason.
    pub fn dropped_receiving(&self) -> u64 {
        self.dropped_recv_full + self.malformed_frames + self.oversized_frames
    }
}

macro_rules! counters {
    ($($field:ident),* $(,)?) => {
        /// The live counters behind [`Stats`].
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub(crate) $field: AtomicU64,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> Stats {
                Stats {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

counters!(
    sent_datagrams,
    sent_stream_frames,
    received,
    dropped_queue_full,
    dropped_unknown_peer,
    dropped_unencodable,
    dropped_send_failed,
    dropped_closed,
    dropped_recv_full,
    malformed_frames,
    oversized_frames,
    closed_for_bad_frames,
    rejected_handshakes,
    connections_dialled,
    connections_accepted,
    dial_failures,
    client_requests,
    client_requests_refused,
    retries_sent,
    ignored_handshakes,
    guest_connections,
    clients_idle_closed,
);

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A clonable handle on a transport's counters, from [`crate::QuicTransport::stats_handle`].
/// Registered in a [`prometheus_client`] registry it reports every counter as
/// `gen_paxos_transport_<name>_total`, and per configured peer with a live connection
/// QUIC's round trip, congestion window, lost packets, congestion events and datagram
/// frames (`gen_paxos_transport_peer_*`, label `peer`).
#[derive(Debug, Clone)]
pub struct StatsHandle {
    pub(crate) counters: std::sync::Arc<Counters>,
    /// The configured peers (fixed when the transport is bound).
    pub(crate) peers:
        std::collections::HashMap<gen_paxos_core::NodeId, std::sync::Arc<crate::peer::Peer>>,
}

impl StatsHandle {
    /// A snapshot of the counters.
    pub fn snapshot(&self) -> Stats {
        self.counters.snapshot()
    }
}

impl prometheus_client::collector::Collector for StatsHandle {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        let s = self.snapshot();
        let all: [(&str, u64, &str); 22] = [
            (
                "sent_datagrams",
                s.sent_datagrams,
                "Messages sent as QUIC datagrams",
            ),
            (
                "sent_stream_frames",
                s.sent_stream_frames,
                "Messages written to a stream",
            ),
            (
                "received",
                s.received,
                "Messages received and handed to the runtime",
            ),
            (
                "dropped_queue_full",
                s.dropped_queue_full,
                "Messages dropped: a peer's send queue was full",
            ),
            (
                "dropped_unknown_peer",
                s.dropped_unknown_peer,
                "Messages for a node that is not a peer or guest",
            ),
            (
                "dropped_unencodable",
                s.dropped_unencodable,
                "Messages that could not be encoded",
            ),
            (
                "dropped_send_failed",
                s.dropped_send_failed,
                "Messages lost with their connection or stream",
            ),
            (
                "dropped_closed",
                s.dropped_closed,
                "Messages sent after close",
            ),
            (
                "dropped_recv_full",
                s.dropped_recv_full,
                "Received datagrams dropped: the receive queue was full",
            ),
            (
                "malformed_frames",
                s.malformed_frames,
                "Received frames that did not decode",
            ),
            (
                "oversized_frames",
                s.oversized_frames,
                "Received frames over the frame limit",
            ),
            (
                "closed_for_bad_frames",
                s.closed_for_bad_frames,
                "Connections closed for sending bad frames",
            ),
            (
                "rejected_handshakes",
                s.rejected_handshakes,
                "Connection attempts refused or failed",
            ),
            (
                "connections_dialled",
                s.connections_dialled,
                "Connections this node dialled",
            ),
            (
                "connections_accepted",
                s.connections_accepted,
                "Node connections this node accepted",
            ),
            (
                "dial_failures",
                s.dial_failures,
                "Dials that failed or timed out",
            ),
            (
                "client_requests",
                s.client_requests,
                "Status requests handed to the runtime",
            ),
            (
                "client_requests_refused",
                s.client_requests_refused,
                "Status requests refused",
            ),
            (
                "retries_sent",
                s.retries_sent,
                "QUIC retries sent (address validation)",
            ),
            (
                "ignored_handshakes",
                s.ignored_handshakes,
                "Validated attempts not started: slots, per-IP share or rate used up",
            ),
            (
                "guest_connections",
                s.guest_connections,
                "Connections from nodes outside the configuration",
            ),
            (
                "clients_idle_closed",
                s.clients_idle_closed,
                "Status clients closed for idling",
            ),
        ];
        for (name, value, help) in all {
            let name = format!("gen_paxos_transport_{name}");
            let metric = encoder.encode_descriptor(&name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        crate::paths::encode(&crate::paths::peer_paths(&self.peers), &mut encoder)
    }
}
