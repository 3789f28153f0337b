//! Per-peer QUIC figures for metrics: the round trip and congestion window of the
//! connection a node sends on, and packets lost, congestion events and QUIC datagram
//! frames sent and received over its live connections. Comparing the datagram frames
//! QUIC sent with the messages handed to it as datagrams shows what quinn's own buffers
//! dropped (it drops the oldest unsent datagram when its send buffer is full, silently).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gen_paxos_core::NodeId;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::peer::Peer;

/// One configured peer's QUIC figures (nothing while no connection to it is alive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerPath {
    pub(crate) peer: NodeId,
    pub(crate) rtt: Duration,
    pub(crate) cwnd: u64,
    pub(crate) lost_packets: u64,
    pub(crate) congestion_events: u64,
    pub(crate) datagrams_sent: u64,
    pub(crate) datagrams_received: u64,
}

/// The figures of every peer with a live connection, by peer id.
pub(crate) fn peer_paths(peers: &HashMap<NodeId, Arc<Peer>>) -> Vec<PeerPath> {
    let mut paths: Vec<PeerPath> = peers
        .iter()
        .filter_map(|(&id, peer)| {
            let sending = peer.connection()?.stats();
            let mut path = PeerPath {
                peer: id,
                rtt: sending.path.rtt,
                cwnd: sending.path.cwnd,
                lost_packets: 0,
                congestion_events: 0,
                datagrams_sent: 0,
                datagrams_received: 0,
            };
            for conn in peer.live_connections() {
                let s = conn.stats();
                path.lost_packets += s.path.lost_packets;
                path.congestion_events += s.path.congestion_events;
                path.datagrams_sent += s.frame_tx.datagram;
                path.datagrams_received += s.frame_rx.datagram;
            }
            Some(path)
        })
        .collect();
    paths.sort_unstable_by_key(|p| p.peer);
    paths
}

/// One metric family: its name, its help text, and how to read it from a peer's figures.
type Family<V> = (&'static str, &'static str, fn(&PeerPath) -> V);

/// Writes `paths` as `gen_paxos_transport_peer_*` families labelled `peer`.
pub(crate) fn encode(paths: &[PeerPath], e: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    if paths.is_empty() {
        return Ok(());
    }
    let gauges: [Family<f64>; 2] = [
        (
            "gen_paxos_transport_peer_rtt_seconds",
            "Smoothed QUIC round trip to the peer",
            |p| p.rtt.as_secs_f64(),
        ),
        (
            "gen_paxos_transport_peer_congestion_window_bytes",
            "QUIC congestion window towards the peer",
            |p| p.cwnd as f64,
        ),
    ];
    for (name, help, value) in gauges {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for p in paths {
            let peer = p.peer.0.to_string();
            ConstGauge::new(value(p)).encode(m.encode_family(&[("peer", peer.as_str())])?)?;
        }
    }
    let counters: [Family<u64>; 4] = [
        (
            "gen_paxos_transport_peer_lost_packets",
            "QUIC packets to the peer declared lost (live connections)",
            |p| p.lost_packets,
        ),
        (
            "gen_paxos_transport_peer_congestion_events",
            "QUIC congestion events towards the peer (live connections)",
            |p| p.congestion_events,
        ),
        (
            "gen_paxos_transport_peer_datagrams_sent",
            "QUIC datagram frames sent to the peer (live connections; messages handed to QUIC \
             as datagrams but not sent were dropped by its send buffer)",
            |p| p.datagrams_sent,
        ),
        (
            "gen_paxos_transport_peer_datagrams_received",
            "QUIC datagram frames received from the peer (live connections)",
            |p| p.datagrams_received,
        ),
    ];
    for (name, help, value) in counters {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for p in paths {
            let peer = p.peer.0.to_string();
            ConstCounter::new(value(p)).encode(m.encode_family(&[("peer", peer.as_str())])?)?;
        }
    }
    Ok(())
}
