//! rustls and quinn configuration: mutual TLS against the cluster CA.
//!
//! Both directions use TLS 1.3 with the ring provider, passed explicitly
//! (`builder_with_provider`) so nothing depends on a process-wide default provider.
//! Session resumption and 0-RTT are off: every connection presents and verifies a full
//! certificate, so an expired or removed certificate cannot ride on an old session.
//!
//! - Accepting: a client certificate is mandatory and must chain to the cluster CA; its
//!   identity must be a configured peer node (never this node itself), any other node of
//!   the CA when guests are accepted ([`crate::Settings::accept_guests`]), or "client" when
//!   status clients are accepted. Anything else fails the handshake.
//! - Dialling: the server's certificate must chain to the cluster CA, carry the DNS name
//!   [`crate::server_name`] of the node being dialled, and bind exactly that node id.
//! - Both: a chain may hold no more intermediate certificates than the CA's path-length
//!   constraint allows (webpki does not apply the trust anchor's own constraint; the CA
//!   `gen-paxos certs` makes says 0, so only leaves it signed itself are admitted).

use std::collections::BTreeSet;
use std::sync::Arc;

use gen_paxos_core::NodeId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use tracing::debug;

use crate::certs::{CaCertificate, Identity};
use crate::config::Settings;
use crate::error::{CertError, Error};
use crate::identity::{PeerIdentity, node_of_server_name, server_name};

/// The ALPN protocol id both ends must offer (version 1 of the gen-paxos wire protocol).
pub const ALPN: &[u8] = b"gen-paxos/1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &CaCertificate) -> Result<Arc<RootCertStore>, Error> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).map_err(Error::tls)?;
    Ok(Arc::new(roots))
}

/// Who may connect to a node.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    /// This node (never admitted).
    pub(crate) local: NodeId,
    /// The other nodes of the cluster.
    pub(crate) peers: BTreeSet<NodeId>,
    /// Whether other nodes of the CA are admitted as guests.
    pub(crate) guests: bool,
    /// Whether status clients are admitted.
    pub(crate) clients: bool,
}

impl Admission {
    pub(crate) fn admits(&self, identity: PeerIdentity) -> bool {
        match identity {
            PeerIdentity::Node(id) if id == self.local => false,
            PeerIdentity::Node(id) => self.guests || self.peers.contains(&id),
            PeerIdentity::Client => self.clients,
        }
    }
}

/// How many intermediate certificates the CA allows below it: its path-length constraint
/// (`None`: unconstrained). webpki does not apply it to a trust anchor, so this module
/// does.
pub(crate) fn ca_path_len(ca: &CaCertificate) -> Result<Option<u32>, Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(ca.der())
        .map_err(|e| Error::Cert(CertError::Parse(format!("ca.pem: {e}"))))?;
    let constraints = cert
        .basic_constraints()
        .map_err(|e| Error::Cert(CertError::Parse(format!("ca.pem: {e}"))))?;
    match constraints {
        Some(bc) if bc.value.ca => Ok(bc.value.path_len_constraint),
        _ => Err(Error::Cert(CertError::NotACa)),
    }
}

/// Refuses a chain with more intermediates than the CA's path length allows.
fn check_path_len(
    path_len: Option<u32>,
    intermediates: &[CertificateDer<'_>],
) -> Result<(), rustls::Error> {
    match path_len {
        Some(max) if intermediates.len() > max as usize => {
            debug!(
                intermediates = intermediates.len(),
                allowed = max,
                "refused a chain longer than the CA's path length allows"
            );
            Err(CertificateError::Other(rustls::OtherError(Arc::new(PathTooLong))).into())
        }
        _ => Ok(()),
    }
}

/// A chain longer than the CA's path-length constraint.
#[derive(Debug)]
struct PathTooLong;

impl std::fmt::Display for PathTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("certificate chain longer than the CA's path-length constraint")
    }
}

impl std::error::Error for PathTooLong {}

/// Checks, before a node or client starts, that its own certificate is one its peers will
/// accept: the key belongs to the certificate, the chain leads to `ca` within the CA's
/// path length, and it is valid now for the uses it needs (client authentication always;
/// server authentication under [`crate::server_name`] for a node).
pub(crate) fn check_own_identity(identity: &Identity, ca: &CaCertificate) -> Result<(), Error> {
    rustls::sign::CertifiedKey::from_der(
        identity.cert_chain().to_vec(),
        identity.private_key(),
        &provider(),
    )
    .map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => Error::Cert(CertError::LeafKeyMismatch),
        other => Error::tls(other),
    })?;
    let chain = identity.cert_chain();
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or(Error::Cert(CertError::NoIdentity))?;
    let path_len = ca_path_len(ca)?;
    if check_path_len(path_len, intermediates).is_err() {
        return Err(Error::Cert(CertError::ChainTooLong {
            intermediates: intermediates.len(),
            allowed: path_len.unwrap_or(0),
        }));
    }
    let now = UnixTime::now();
    let not_issued = |e: rustls::Error| Error::Cert(CertError::NotIssuedByCa(e.to_string()));
    let client = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
        .build()
        .map_err(|e| Error::tls(rustls::Error::General(e.to_string())))?;
    client
        .verify_client_cert(leaf, intermediates, now)
        .map_err(not_issued)?;
    if let PeerIdentity::Node(id) = PeerIdentity::from_certificate(leaf)? {
        let server = WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider())
            .build()
            .map_err(|e| Error::tls(rustls::Error::General(e.to_string())))?;
        let name = ServerName::try_from(server_name(id))
            .map_err(|e| Error::tls(rustls::Error::General(e.to_string())))?;
        server
            .verify_server_cert(leaf, intermediates, &name, &[], now)
            .map_err(not_issued)?;
    }
    Ok(())
}

/// Checks the chain with webpki, then the identity against the cluster configuration.
#[derive(Debug)]
struct ClusterClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    admission: Admission,
    path_len: Option<u32>,
}

impl ClientCertVerifier for ClusterClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_path_len(self.path_len, intermediates)?;
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|e| debug!(error = %e, "refused a client certificate"))?;
        // webpki checked the chain and key usage, not names: the identity is ours to check.
        match PeerIdentity::from_certificate(end_entity) {
            Ok(identity) if self.admission.admits(identity) => Ok(ClientCertVerified::assertion()),
            Ok(identity) => {
                debug!(%identity, "refused a certificate for an identity outside the cluster");
                Err(CertificateError::ApplicationVerificationFailure.into())
            }
            Err(e) => {
                debug!(error = %e, "refused a certificate without a usable identity");
                Err(CertificateError::ApplicationVerificationFailure.into())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Checks the chain and DNS name with webpki, then that the certificate binds the node id
/// the server name asks for.
#[derive(Debug)]
struct NodeServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    path_len: Option<u32>,
}

impl ServerCertVerifier for NodeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        check_path_len(self.path_len, intermediates)?;
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|e| debug!(error = %e, "refused a server certificate"))?;
        let expected = match server_name {
            ServerName::DnsName(name) => node_of_server_name(name.as_ref()),
            _ => None,
        };
        match (expected, PeerIdentity::from_certificate(end_entity)) {
            (Some(id), Ok(PeerIdentity::Node(found))) if found == id => {
                Ok(ServerCertVerified::assertion())
            }
            (expected, found) => {
                debug!(
                    ?expected,
                    ?found,
                    "refused a server certificate for the wrong node"
                );
                Err(CertificateError::NotValidForName.into())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The QUIC transport parameters shared by both directions.
pub(crate) fn transport_config(settings: &Settings) -> Result<Arc<quinn::TransportConfig>, Error> {
    let idle = quinn::IdleTimeout::try_from(settings.idle_timeout)
        .map_err(|_| Error::InvalidSettings("idle_timeout is too long".into()))?;
    let window = u32::try_from(settings.max_frame_len.saturating_mul(2))
        .unwrap_or(u32::MAX)
        .max(1 << 20);
    let mut config = quinn::TransportConfig::default();
    config
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(settings.keep_alive_interval))
        .initial_rtt(settings.initial_rtt)
        // One long-lived stream per direction is all a node uses; a few more allow a
        // stream to be replaced without waiting, and bound what a peer can hold open.
        // Bidirectional streams are status-client requests (a node never accepts them
        // from a peer).
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(4))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(settings.max_client_streams))
        .stream_receive_window(quinn::VarInt::from_u32(window))
        .receive_window(quinn::VarInt::from_u32(window.saturating_mul(2)))
        // Datagrams QUIC received that the node has not read yet: quinn drops the oldest
        // beyond this, silently. As large as the socket's buffer, so that a burst the
        // kernel kept is not lost one step later (at 256 KiB a burst of 1,000 datagrams
        // of 800 bytes lost a tenth of them).
        .datagram_receive_buffer_size(Some(settings.recv_buffer_size))
        .datagram_send_buffer_size(256 * 1024);
    Ok(Arc::new(config))
}

/// The endpoint configuration of a node.
///
/// QUIC's stateless reset lets a restarted node tell its peers at once that their old
/// connections are gone, but only if it survives the restart: the reset key, and the key
/// that makes connection ids recognisable (packets for ids this node could not have
/// issued are dropped unanswered, which also keeps garbage from drawing replies). Both are
/// derived (HMAC-SHA256) from the node's private key, which is secret and stable, so the
/// restarted node answers its peers' packets for old connections with a reset they trust,
/// and they redial at once instead of waiting for their idle timeout.
pub(crate) fn endpoint_config(identity: &Identity) -> quinn::EndpointConfig {
    let private_key = identity.private_key();
    let secret = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, private_key.secret_der());
    let reset = ring::hmac::sign(&secret, b"gen-paxos/1 stateless reset key");
    let cid = ring::hmac::sign(&secret, b"gen-paxos/1 connection id key");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&cid.as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        reset.as_ref(),
    )));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}

/// The server side of a node's endpoint.
pub(crate) fn server_config(
    identity: &Identity,
    ca: &CaCertificate,
    admission: Admission,
    settings: &Settings,
) -> Result<quinn::ServerConfig, Error> {
    let inner = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
        .build()
        .map_err(|e| Error::tls(rustls::Error::General(e.to_string())))?;
    let verifier = Arc::new(ClusterClientVerifier {
        inner,
        admission,
        path_len: ca_path_len(ca)?,
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(Error::tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.cert_chain().to_vec(), identity.private_key())
        .map_err(Error::tls)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.session_storage = Arc::new(NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    tls.max_early_data_size = 0;
    let quic = QuicServerConfig::try_from(tls)
        .map_err(|e| Error::tls(rustls::Error::General(e.to_string())))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config
        .transport_config(transport_config(settings)?)
        .migration(false)
        .max_incoming(settings.max_handshakes.max(1));
    Ok(config)
}

/// A client configuration presenting `identity` and verifying the dialled node against
/// `ca` and the node id in the server name (see [`crate::server_name`]).
///
/// Nodes use this to dial each other; a status client uses it with a client certificate.
pub(crate) fn client_config(
    identity: &Identity,
    ca: &CaCertificate,
    settings: &Settings,
) -> Result<quinn::ClientConfig, Error> {
    let inner = WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider())
        .build()
        .map_err(|e| Error::tls(rustls::Error::General(e.to_string())))?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(Error::tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NodeServerVerifier {
            inner,
            path_len: ca_path_len(ca)?,
        }))
        .with_client_auth_cert(identity.cert_chain().to_vec(), identity.private_key())
        .map_err(Error::tls)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.resumption = rustls::client::Resumption::disabled();
    tls.enable_early_data = false;
    let quic = QuicClientConfig::try_from(tls)
        .map_err(|e| Error::tls(rustls::Error::General(e.to_string())))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport_config(settings)?);
    Ok(config)
}
