//! Certificate chains the cluster CA does not allow are refused, at start and on the wire.
//!
//! The CA that `gen-paxos certs` makes says "path length 0": it signs leaves only. Whoever
//! holds the CA key could still sign an intermediate CA and let it issue leaves; webpki
//! checks the intermediate's own constraints but not the trust anchor's, so such a leaf
//! was admitted. Now the transport counts the intermediates against the CA's constraint.

mod common;

use std::time::Duration;

use common::{Msg, node, raw_connect, recv_within, socket, stats_eventually};
use gen_paxos_core::NodeId;
use gen_paxos_quic::{CertError, ClusterCa, Config, Error, Identity, IssuedCert, QuicTransport};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A leaf for node `id` issued by an intermediate CA that the cluster CA signed: the
/// chain `[leaf, intermediate]` in one PEM.
fn leaf_below_an_intermediate(ca: &ClusterCa, id: u64) -> anyhow::Result<IssuedCert> {
    let ca_key = KeyPair::from_pem(&ca.key_pem())?;
    let root = Issuer::from_ca_cert_der(ca.certificate().der(), ca_key)?;
    let mut inter = CertificateParams::default();
    inter.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    inter.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    inter.use_authority_key_identifier_extension = true;
    let inter_key = KeyPair::generate()?;
    let inter_cert = inter.signed_by(&inter_key, &root)?;
    let inter_issuer = Issuer::new(inter, inter_key);
    let mut leaf = CertificateParams::default();
    leaf.subject_alt_names = vec![
        SanType::URI(format!("gen-paxos://node/{id}").try_into()?),
        SanType::DnsName(gen_paxos_quic::server_name(NodeId(id)).try_into()?),
    ];
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    leaf.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &inter_issuer)?;
    Ok(IssuedCert {
        cert_pem: format!("{}{}", leaf_cert.pem(), inter_cert.pem()),
        key_pem: leaf_key.serialize_pem(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_below_an_intermediate_is_refused_everywhere() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("cluster")?;
    let issued = leaf_below_an_intermediate(&ca, 2)?;
    let identity = Identity::from_pem(&issued.cert_pem, &issued.key_pem)?;
    assert_eq!(identity.cert_chain().len(), 2);

    // 1. A node holding it does not start, with a clear error.
    let config = Config::new(
        NodeId(2),
        "127.0.0.1:0".parse()?,
        identity.clone(),
        ca.certificate(),
    );
    match QuicTransport::<Msg>::bind(config) {
        Err(e @ Error::Cert(CertError::ChainTooLong { .. })) => {
            assert!(e.to_string().contains("1 intermediate"), "{e}");
        }
        other => anyhow::bail!("expected a refusal to start, got {other:?}"),
    }

    // 2. As a client, node 1 refuses it, although node 2 is a configured peer.
    let n1 = node(&ca, 1, socket()?, &[(2, "127.0.0.1:9".parse()?)])?;
    if let Ok((_endpoint, conn)) =
        raw_connect(&issued, &ca.certificate(), n1.local_addr()?, 1).await
    {
        let frame = gen_paxos_quic::codec::encode(&Msg::Ping(2), 1 << 20)?;
        if let Ok(mut uni) = conn.open_uni().await {
            let _ = uni.write_all(&common::stream_frame(&frame)).await;
        }
    }
    assert!(recv_within(&n1, Duration::from_millis(300)).await.is_none());
    stats_eventually(&n1, "a rejected handshake", |s| s.rejected_handshakes >= 1).await?;
    assert_eq!(n1.stats().connections_accepted, 0);

    // 3. As a server, node 3 dialling it refuses it too.
    let server = common::raw_server(&issued)?;
    let n3 = node(&ca, 3, socket()?, &[(2, server.local_addr()?)])?;
    gen_paxos_election::Transport::send(
        &n3,
        NodeId(2),
        Msg::Ping(0),
        gen_paxos_election::Delivery::Reliable,
    );
    stats_eventually(&n3, "a failed dial", |s| s.dial_failures >= 1).await?;
    assert_eq!(n3.stats().connections_dialled, 0);
    Ok(())
}

/// A node's key that does not belong to its certificate is one clear error at start.
#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_at_start() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let _guard = runtime.enter();
    let ca = ClusterCa::generate("cluster")?;
    let mine = ca.issue_node(NodeId(1))?;
    let other = ca.issue_node(NodeId(2))?;
    let identity = Identity::from_pem(&mine.cert_pem, &other.key_pem)?;
    let config = Config::new(
        NodeId(1),
        "127.0.0.1:0".parse()?,
        identity,
        ca.certificate(),
    );
    match QuicTransport::<Msg>::bind(config) {
        Err(e @ Error::Cert(CertError::LeafKeyMismatch)) => {
            assert_eq!(
                e.to_string(),
                "the private key does not belong to the certificate"
            );
        }
        other => anyhow::bail!("expected a key mismatch, got {other:?}"),
    }
    Ok(())
}
