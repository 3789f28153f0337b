//! Certificates with rcgen: the cluster CA, node and client certificates, PEM files.
//!
//! Every node certificate binds one [`NodeId`] (see [`crate::identity`] for the exact
//! form) and is valid both as a TLS server and as a TLS client certificate, because every
//! node both accepts and dials. A client certificate binds the identity "client" and is
//! valid only as a TLS client certificate. Keys are ECDSA P-256.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gen_paxos_core::NodeId;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::error::CertError;
use crate::identity::{self, PeerIdentity};

/// How long a freshly generated CA certificate is valid: 10 years.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How long a node or client certificate is valid unless told otherwise: 5 years.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);

// Certificates start a little in the past so that small clock differences between the
// machine that issued them and the nodes do not make fresh certificates "not yet valid".
const BACKDATE: time::Duration = time::Duration::hours(1);

/// The period a certificate is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before this instant.
    pub not_before: OffsetDateTime,
    /// Not valid after this instant.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// Valid from an hour ago (allowing for clock skew) for `length` from now.
    pub fn from_now(length: Duration) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - BACKDATE,
            not_after: now
                .saturating_add(time::Duration::try_from(length).unwrap_or(time::Duration::MAX)),
        }
    }
}

/// The cluster's certificate authority: its certificate and the key that signs node and
/// client certificates. Keep `ca.key` off the nodes if you can; nodes need only `ca.pem`.
pub struct ClusterCa {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    cert_pem: String,
}

impl fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// Generates a new CA whose certificate is named `name` (e.g. the cluster's name),
    /// valid for [`CA_VALIDITY`].
    pub fn generate(name: &str) -> Result<ClusterCa, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let validity = Validity::from_now(CA_VALIDITY);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA saved with [`ClusterCa::cert_pem`] and [`ClusterCa::key_pem`], to issue
    /// more certificates (e.g. for a node added later).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, CertError> {
        let key = KeyPair::from_pem(key_pem)?;
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| CertError::Parse(e.to_string()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| CertError::Parse(e.to_string()))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CertError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&cert, key)?;
        Ok(ClusterCa {
            issuer,
            cert,
            cert_pem: cert_pem.to_string(),
        })
    }

    /// Loads a CA from `ca.pem` and `ca.key` style files.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ClusterCa, CertError> {
        ClusterCa::from_pem(&read(cert_path)?, &read(key_path)?)
    }

    /// The CA certificate in PEM form (what goes in `ca.pem`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key in PEM form (what goes in `ca.key`). Secret.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// The CA certificate, as nodes trust it.
    pub fn certificate(&self) -> CaCertificate {
        CaCertificate {
            der: self.cert.clone(),
        }
    }

    /// Issues a certificate for node `id`, valid for [`LEAF_VALIDITY`].
    pub fn issue_node(&self, id: NodeId) -> Result<IssuedCert, CertError> {
        self.issue_node_with_validity(id, Validity::from_now(LEAF_VALIDITY))
    }

    /// Issues a certificate for node `id` with an explicit validity period.
    pub fn issue_node_with_validity(
        &self,
        id: NodeId,
        validity: Validity,
    ) -> Result<IssuedCert, CertError> {
        let identity = PeerIdentity::Node(id);
        let sans = vec![
            SanType::URI(Ia5String::try_from(identity.uri())?),
            SanType::DnsName(Ia5String::try_from(identity::server_name(id))?),
        ];
        // Every node both accepts and dials: it needs both purposes.
        let ekus = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(&format!("gen-paxos node {id}"), sans, ekus, validity)
    }

    /// Issues a client certificate (identity "client", for status tools), valid for
    /// [`LEAF_VALIDITY`].
    pub fn issue_client(&self) -> Result<IssuedCert, CertError> {
        self.issue_client_with_validity(Validity::from_now(LEAF_VALIDITY))
    }

    /// Issues a client certificate with an explicit validity period.
    pub fn issue_client_with_validity(&self, validity: Validity) -> Result<IssuedCert, CertError> {
        let sans = vec![SanType::URI(Ia5String::try_from(
            PeerIdentity::Client.uri(),
        )?)];
        // Client authentication only: a status client can never pass as a node's server.
        let ekus = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue("gen-paxos client", sans, ekus, validity)
    }

    fn issue(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        ekus: Vec<ExtendedKeyUsagePurpose>,
        validity: Validity,
    ) -> Result<IssuedCert, CertError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name);
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = ekus;
        params.use_authority_key_identifier_extension = true;
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "gen-paxos");
    dn.push(DnType::CommonName, common_name);
    dn
}

impl From<rcgen::InvalidAsn1String> for CertError {
    fn from(e: rcgen::InvalidAsn1String) -> Self {
        CertError::Parse(e.to_string())
    }
}

/// A freshly issued certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8). Secret.
    pub key_pem: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl IssuedCert {
    /// The certificate and key as a TLS identity.
    pub fn identity(&self) -> Result<Identity, CertError> {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }
}

/// A certificate chain and its private key: what this end presents in the TLS handshake.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("identity", &self.peer_identity().ok())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Parses a PEM certificate chain (leaf first) and a PEM private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Identity, CertError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertError::Parse(e.to_string()))?;
        if chain.is_empty() {
            return Err(CertError::Parse("no certificate in PEM".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| CertError::Parse(e.to_string()))?;
        Ok(Identity { chain, key })
    }

    /// Loads a certificate file (e.g. `node-3.pem`) and its key file (`node-3.key`).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Identity, CertError> {
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        Identity::from_pem(&cert_pem, &key_pem).map_err(|e| match e {
            CertError::Parse(msg) => CertError::Parse(format!(
                "{} / {}: {msg}",
                cert_path.display(),
                key_path.display()
            )),
            other => other,
        })
    }

    /// The identity bound in the leaf certificate.
    pub fn peer_identity(&self) -> Result<PeerIdentity, CertError> {
        let leaf = self.chain.first().ok_or(CertError::NoIdentity)?;
        PeerIdentity::from_certificate(leaf)
    }

    /// The certificate chain, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

/// The cluster CA's certificate: the one trust anchor of every node and client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificate {
    der: CertificateDer<'static>,
}

impl CaCertificate {
    /// Parses a PEM CA certificate (the first certificate in `pem`).
    pub fn from_pem(pem: &str) -> Result<CaCertificate, CertError> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| CertError::Parse(e.to_string()))?;
        Ok(CaCertificate { der })
    }

    /// Loads `ca.pem`.
    pub fn load(path: &Path) -> Result<CaCertificate, CertError> {
        let pem = read(path)?;
        CaCertificate::from_pem(&pem).map_err(|_| CertError::NotFound {
            kind: "certificate",
            path: path.to_path_buf(),
        })
    }

    /// The certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }
}

/// The file names [`write_cluster_certs`] uses for node `id`: `(node-<id>.pem, node-<id>.key)`.
pub fn node_file_names(id: NodeId) -> (String, String) {
    (format!("node-{id}.pem"), format!("node-{id}.key"))
}

/// Creates a cluster CA and certificates for `nodes` and one status client, and writes
/// them to `dir` (created if missing): `ca.pem`, `ca.key`, `node-<id>.pem`,
/// `node-<id>.key` for each node, `client.pem`, `client.key`.
///
/// Private keys are written readable and writable by the owner only (mode 0600 on Unix).
/// If any of these files exists, nothing is written and [`CertError::WouldOverwrite`] is
/// returned, unless `force` is set. Returns the paths written.
pub fn write_cluster_certs(
    dir: &Path,
    nodes: &[NodeId],
    force: bool,
) -> Result<Vec<PathBuf>, CertError> {
    let mut seen = std::collections::BTreeSet::new();
    for &id in nodes {
        if !seen.insert(id) {
            return Err(CertError::DuplicateNode(id));
        }
    }
    // (file name, contents, secret?)
    let mut files: Vec<(String, String, bool)> = Vec::new();
    let ca = ClusterCa::generate("gen-paxos cluster CA")?;
    files.push(("ca.pem".into(), ca.cert_pem().to_string(), false));
    files.push(("ca.key".into(), ca.key_pem(), true));
    for &id in nodes {
        let issued = ca.issue_node(id)?;
        let (cert_name, key_name) = node_file_names(id);
        files.push((cert_name, issued.cert_pem, false));
        files.push((key_name, issued.key_pem, true));
    }
    let client = ca.issue_client()?;
    files.push(("client.pem".into(), client.cert_pem, false));
    files.push(("client.key".into(), client.key_pem, true));
    // Everything is checked before anything is written: never a half-replaced set.
    write_set(dir, files, force)
}

/// Issues certificates for `nodes` with the CA saved in `dir` (`ca.pem` and `ca.key`) and
/// writes `node-<id>.pem`/`.key` next to it, for a node added to a running cluster. The
/// CA is never rewritten. An existing node file is refused unless `force` (which replaces
/// that node's files only). Returns the paths written.
pub fn add_node_certs(
    dir: &Path,
    nodes: &[NodeId],
    force: bool,
) -> Result<Vec<PathBuf>, CertError> {
    let ca = ClusterCa::load(&dir.join("ca.pem"), &dir.join("ca.key"))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut files = Vec::new();
    for &id in nodes {
        if !seen.insert(id) {
            return Err(CertError::DuplicateNode(id));
        }
        let issued = ca.issue_node(id)?;
        let (cert_name, key_name) = node_file_names(id);
        files.push((cert_name, issued.cert_pem, false));
        files.push((key_name, issued.key_pem, true));
    }
    write_set(dir, files, force)
}

/// Issues a status-client certificate named `name` (file names `client-<name>.pem` and
/// `.key`; the identity is "client" like `client.pem`'s) with the CA saved in `dir`. The
/// CA is never rewritten; an existing file is refused unless `force`. Names are 1 to 64
/// ASCII letters, digits, `-` or `_`.
pub fn add_client_cert(dir: &Path, name: &str, force: bool) -> Result<Vec<PathBuf>, CertError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(CertError::Parse(format!(
            "client name {name:?}: use 1 to 64 letters, digits, '-' or '_'"
        )));
    }
    let ca = ClusterCa::load(&dir.join("ca.pem"), &dir.join("ca.key"))?;
    let issued = ca.issue_client()?;
    let files = vec![
        (format!("client-{name}.pem"), issued.cert_pem, false),
        (format!("client-{name}.key"), issued.key_pem, true),
    ];
    write_set(dir, files, force)
}

/// Writes `(file name, contents, secret?)` into `dir`; without `force`, checks that none
/// exists before writing any, so a set is never half written.
fn write_set(
    dir: &Path,
    files: Vec<(String, String, bool)>,
    force: bool,
) -> Result<Vec<PathBuf>, CertError> {
    if !force {
        for (name, _, _) in &files {
            let path = dir.join(name);
            if path.exists() {
                return Err(CertError::WouldOverwrite(path));
            }
        }
    }
    fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::with_capacity(files.len());
    for (name, contents, secret) in files {
        let path = dir.join(name);
        write_file(&path, contents.as_bytes(), secret, force)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `contents` to `path`; secrets get mode 0600. Without `force`, fails if the file
/// exists (atomically, via `create_new`).
pub(crate) fn write_file(
    path: &Path,
    contents: &[u8],
    secret: bool,
    force: bool,
) -> Result<(), CertError> {
    let io_err = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CertError::WouldOverwrite(path.to_path_buf())
        } else {
            io_err(e)
        }
    })?;
    // An existing file keeps its old mode when overwritten: tighten it explicitly.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err)?;
    }
    file.write_all(contents).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

fn read(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_carry_their_identity() -> Result<(), CertError> {
        let ca = ClusterCa::generate("test")?;
        let node = ca.issue_node(NodeId(7))?.identity()?;
        assert_eq!(node.peer_identity()?, PeerIdentity::Node(NodeId(7)));
        let client = ca.issue_client()?.identity()?;
        assert_eq!(client.peer_identity()?, PeerIdentity::Client);
        Ok(())
    }

    #[test]
    fn a_reloaded_ca_issues_certificates_under_the_same_name() -> Result<(), CertError> {
        let ca = ClusterCa::generate("test")?;
        let again = ClusterCa::from_pem(ca.cert_pem(), &ca.key_pem())?;
        assert_eq!(again.certificate(), ca.certificate());
        let other = ClusterCa::generate("other")?;
        assert!(matches!(
            ClusterCa::from_pem(ca.cert_pem(), &other.key_pem()),
            Err(CertError::KeyMismatch)
        ));
        Ok(())
    }
}
