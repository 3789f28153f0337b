//! Who a peer is: the identity bound in its certificate.
//!
//! A certificate issued by [`crate::ClusterCa`] carries exactly one identity URI in its
//! subject alternative names:
//!
//! - `gen-paxos://node/<id>` for a node, `<id>` the decimal [`NodeId`] (no sign, no
//!   leading zeros), e.g. `gen-paxos://node/3`;
//! - `gen-paxos://client` for a status client, which may query a node but never speaks
//!   the protocol.
//!
//! Node certificates also carry the DNS name `node-<id>.gen-paxos` (see
//! [`server_name`]) so that standard TLS name checks pin the node a dialler
//! expects; the URI is the identity and is checked as well.

use std::fmt;

use gen_paxos_core::NodeId;
use x509_parser::extensions::GeneralName;

use crate::error::CertError;

/// The scheme and authority every identity URI starts with.
pub const URI_PREFIX: &str = "gen-paxos://";

const NODE_PREFIX: &str = "gen-paxos://node/";
const CLIENT_URI: &str = "gen-paxos://client";

/// A peer's verified identity, read from its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerIdentity {
    /// A cluster node.
    Node(NodeId),
    /// A status client: may send requests, never protocol messages.
    Client,
}

impl PeerIdentity {
    /// The URI that binds this identity in a certificate.
    pub fn uri(&self) -> String {
        match self {
            PeerIdentity::Node(id) => format!("{NODE_PREFIX}{}", id.0),
            PeerIdentity::Client => CLIENT_URI.to_string(),
        }
    }

    /// Parses an identity URI; `None` if it is not one (exactly, in canonical form).
    pub fn from_uri(uri: &str) -> Option<PeerIdentity> {
        if uri == CLIENT_URI {
            return Some(PeerIdentity::Client);
        }
        let digits = uri.strip_prefix(NODE_PREFIX)?;
        // Canonical decimal only, so that one id has exactly one spelling.
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !canonical {
            return None;
        }
        digits.parse().ok().map(|n| PeerIdentity::Node(NodeId(n)))
    }

    /// Reads the identity from a DER certificate. Does not verify the certificate: call
    /// this only on certificates the TLS layer has verified, or on your own.
    pub fn from_certificate(der: &[u8]) -> Result<PeerIdentity, CertError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| CertError::Parse(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| CertError::Parse(e.to_string()))?
            .ok_or(CertError::NoIdentity)?;
        let mut found = None;
        for name in &san.value.general_names {
            let GeneralName::URI(uri) = name else {
                continue;
            };
            if !uri.starts_with(URI_PREFIX) {
                continue;
            }
            // Any URI in our scheme that does not parse, or a second one, makes the
            // certificate ambiguous: refuse rather than pick one.
            let identity = PeerIdentity::from_uri(uri).ok_or(CertError::AmbiguousIdentity)?;
            if found.replace(identity).is_some() {
                return Err(CertError::AmbiguousIdentity);
            }
        }
        found.ok_or(CertError::NoIdentity)
    }

    /// The node id, if this is a node.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            PeerIdentity::Node(id) => Some(*id),
            PeerIdentity::Client => None,
        }
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerIdentity::Node(id) => write!(f, "node {id}"),
            PeerIdentity::Client => f.write_str("client"),
        }
    }
}

/// The identity of the peer of an established connection (its verified certificate).
pub(crate) fn of_connection(conn: &quinn::Connection) -> Result<PeerIdentity, CertError> {
    let any = conn.peer_identity().ok_or(CertError::NoIdentity)?;
    let chain = any
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| CertError::NoIdentity)?;
    let leaf = chain.first().ok_or(CertError::NoIdentity)?;
    PeerIdentity::from_certificate(leaf)
}

const SERVER_NAME_SUFFIX: &str = ".gen-paxos";

/// The TLS server name under which node `id` is dialled, also bound as a DNS name in its
/// certificate: `node-<id>.gen-paxos`.
pub fn server_name(id: NodeId) -> String {
    format!("node-{id}{SERVER_NAME_SUFFIX}")
}

pub(crate) fn node_of_server_name(name: &str) -> Option<NodeId> {
    let digits = name
        .strip_prefix("node-")?
        .strip_suffix(SERVER_NAME_SUFFIX)?;
    match PeerIdentity::from_uri(&format!("gen-paxos://node/{digits}"))? {
        PeerIdentity::Node(id) => Some(id),
        PeerIdentity::Client => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_map_back_to_node_ids() {
        assert_eq!(
            node_of_server_name(&server_name(NodeId(12))),
            Some(NodeId(12))
        );
        assert_eq!(node_of_server_name("node-012.gen-paxos"), None);
        assert_eq!(node_of_server_name("node-1.example"), None);
    }

    #[test]
    fn uris_round_trip_and_only_canonical_forms_parse() {
        for identity in [
            PeerIdentity::Node(NodeId(0)),
            PeerIdentity::Node(NodeId(42)),
            PeerIdentity::Node(NodeId(u64::MAX)),
            PeerIdentity::Client,
        ] {
            assert_eq!(PeerIdentity::from_uri(&identity.uri()), Some(identity));
        }
        for bad in [
            "gen-paxos://node/",
            "gen-paxos://node/+3",
            "gen-paxos://node/03",
            "gen-paxos://node/3/",
            "gen-paxos://node/18446744073709551616",
            "gen-paxos://clients",
            "https://node/3",
        ] {
            assert_eq!(PeerIdentity::from_uri(bad), None, "{bad}");
        }
    }
}
