//! Errors of the certificate tooling and of the transport.

use std::path::PathBuf;

use gen_paxos_core::NodeId;

use crate::codec::CodecError;

/// What can go wrong creating, writing or loading certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Key generation or signing failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
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
    /// The TLS configuration was refused by rustls.
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
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
    /// A connection could not be started.
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed.
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
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

impl Error {
    /// Whether the operation ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }
}
