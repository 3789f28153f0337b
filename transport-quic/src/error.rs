//! Errors of the certificate tooling and of the transport.

use std::path::PathBuf;

use gen_paxos_core::NodeId;

use crate::codec::CodecError;

/// The cause of an error in a library the transport is built on (quinn, rustls, rcgen):
/// opaque, so that their versions are not part of this crate's API, and reachable through
/// [`std::error::Error::source`].
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong creating, writing or loading certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Key generation or signing failed (the cause is reachable through `source()`).
    #[error("certificate generation failed: {0}")]
    Generate(#[source] Cause),
    /// A certificate or key could not be parsed.
    #[error("cannot parse certificate or key: {0}")]
    Parse(String),
    /// A PEM file held no item of the expected kind.
    #[error("no {kind} found in {path}")]
    NotFound {
        /// What was looked for ("certificate", "private key").
        kind: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The certificate carries no `gen-paxos://` identity URI.
    #[error("the certificate carries no gen-paxos identity")]
    NoIdentity,
    /// The certificate carries more than one, or a malformed, `gen-paxos://` identity URI.
    #[error("the certificate carries an ambiguous or malformed gen-paxos identity")]
    AmbiguousIdentity,
    /// The CA key does not belong to the CA certificate.
    #[error("the CA private key does not match the CA certificate")]
    KeyMismatch,
    /// A node's or client's private key does not belong to its certificate.
    #[error("the private key does not belong to the certificate")]
    LeafKeyMismatch,
    /// The certificate does not chain to the cluster CA (another CA, expired, wrong uses).
    #[error("the certificate is not one the cluster CA (ca.pem) vouches for: {0}")]
    NotIssuedByCa(String),
    /// The chain has more intermediate certificates than the CA's path length allows.
    #[error(
        "the certificate chain has {intermediates} intermediate certificates, but the cluster CA allows {allowed}"
    )]
    ChainTooLong {
        /// Intermediates presented.
        intermediates: usize,
        /// The CA's path-length constraint.
        allowed: u32,
    },
    /// The CA certificate is not a CA (no basic constraints with cA set).
    #[error("ca.pem is not a CA certificate")]
    NotACa,
    /// A file that would be written exists and overwriting was not asked for.
    #[error("{0} already exists (pass force to overwrite)")]
    WouldOverwrite(PathBuf),
    /// The same node id was given twice.
    #[error("node id {0} is listed twice")]
    DuplicateNode(NodeId),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// What can go wrong setting up the transport or talking to a node as a status client.
///
/// Bad input from the network is never an `Error`: it is dropped and counted in
/// [`crate::Stats`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A certificate or key is unusable.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The TLS configuration was refused (the TLS library's error is reachable through
    /// `source()`).
    #[error("tls configuration: {0}")]
    Tls(#[source] Cause),
    /// This node's certificate names another identity than the configured node id.
    #[error("the certificate is for {found}, but this node is configured as node {configured}")]
    IdentityMismatch {
        /// The node id in the configuration.
        configured: NodeId,
        /// The identity in the certificate.
        found: String,
    },
    /// A setting is out of range.
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    /// Binding the UDP socket failed.
    #[error("cannot bind: {0}")]
    Io(#[from] std::io::Error),
    /// The call was made outside a tokio runtime.
    #[error("the transport must be created inside a tokio runtime")]
    NoRuntime,
    /// A connection could not be started (the QUIC library's error is reachable through
    /// `source()`).
    #[error("cannot connect: {0}")]
    Connect(#[source] Cause),
    /// The connection failed or was closed (the QUIC library's error is reachable through
    /// `source()`).
    #[error("connection failed: {0}")]
    Connection(#[source] Cause),
    /// The peer did not answer in time.
    #[error("timed out")]
    Timeout,
    /// A stream broke before the exchange completed.
    #[error("stream failed: {0}")]
    Stream(String),
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl From<rcgen::Error> for CertError {
    fn from(e: rcgen::Error) -> Self {
        CertError::Generate(Box::new(e))
    }
}

impl Error {
    pub(crate) fn tls(e: rustls::Error) -> Self {
        Error::Tls(Box::new(e))
    }

    pub(crate) fn connect(e: quinn::ConnectError) -> Self {
        Error::Connect(Box::new(e))
    }

    pub(crate) fn connection(e: quinn::ConnectionError) -> Self {
        Error::Connection(Box::new(e))
    }

    /// Whether the operation ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn the_library_cause_is_reachable_through_source() {
        let e = Error::connect(quinn::ConnectError::EndpointStopping);
        assert!(e.to_string().starts_with("cannot connect: "), "{e}");
        let cause = e.source().expect("a cause");
        assert!(matches!(
            cause.downcast_ref::<quinn::ConnectError>(),
            Some(quinn::ConnectError::EndpointStopping)
        ));
        let e = Error::tls(rustls::Error::InvalidCertRevocationList(
            rustls::CertRevocationListError::BadSignature,
        ));
        assert!(e.source().is_some_and(|c| c.is::<rustls::Error>()));
    }
}
