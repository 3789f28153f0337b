//! Reading a node's `/metrics` (with [`super::Setup::metrics`]): the node-wide counts the
//! scale run follows over time, where a line per event would cost more than the event.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::Cluster;

/// The node-wide figures of one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeFigures {
    /// `gen_paxos_leases_held`: leases this node is master of.
    pub held: f64,
    /// `gen_paxos_renewals_total`.
    pub renewals: f64,
}

impl Cluster {
    /// Node `id`'s figures, or `None` if it has no metrics address or did not answer.
    pub fn scrape(&self, id: u64) -> Option<NodeFigures> {
        let addr = self
            .metrics
            .get(usize::try_from(id).ok()?.checked_sub(1)?)?;
        figures(&get_metrics(addr)?)
    }
}

/// `GET /metrics`: the body. The smallest HTTP/1.1 exchange (one request, `Connection:
/// close`, read to the end), enough for a harness on loopback.
fn get_metrics(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The node-wide samples (no labels) of a Prometheus text body.
fn figures(body: &str) -> Option<NodeFigures> {
    let sample = |name: &str| {
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    Some(NodeFigures {
        held: sample("gen_paxos_leases_held")?,
        renewals: sample("gen_paxos_renewals_total")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_wide_samples_are_read_and_labelled_ones_skipped() {
        let body = "# HELP gen_paxos_leases_held Leases held\n\
            # TYPE gen_paxos_leases_held gauge\n\
            gen_paxos_leases_held 12\n\
            gen_paxos_lease_master{lease=\"a\"} 1\n\
            gen_paxos_renewals_total 3456\n\
            gen_paxos_renewals_failed_total 2\n";
        assert_eq!(
            figures(body),
            Some(NodeFigures {
                held: 12.0,
                renewals: 3456.0
            })
        );
        assert_eq!(figures("gen_paxos_leases_held 1\n"), None);
    }
}
