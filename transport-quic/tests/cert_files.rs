//! `write_cluster_certs` writes a usable set, keeps keys private, never clobbers silently.

use std::path::PathBuf;

use gen_paxos_core::NodeId;
use gen_paxos_quic::{
    CaCertificate, CertError, ClusterCa, Identity, PeerIdentity, node_file_names,
    write_cluster_certs,
};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> anyhow::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("gen-paxos-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn written_certificates_load_with_owner_only_keys_and_are_not_overwritten() -> anyhow::Result<()> {
    let tmp = TempDir::new("certs")?;
    let dir = tmp.0.join("certs");
    let nodes = [NodeId(1), NodeId(2), NodeId(3)];
    let written = write_cluster_certs(&dir, &nodes, false)?;
    let mut names: Vec<String> = written
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca.key",
            "ca.pem",
            "client.key",
            "client.pem",
            "node-1.key",
            "node-1.pem",
            "node-2.key",
            "node-2.pem",
            "node-3.key",
            "node-3.pem"
        ]
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for path in &written {
            let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
            if path.extension().is_some_and(|e| e == "key") {
                assert_eq!(mode, 0o600, "{}", path.display());
            } else {
                assert_eq!(
                    mode & 0o077 & !0o044,
                    0,
                    "{} is writable by others",
                    path.display()
                );
            }
        }
    }

    let ca = CaCertificate::load(&dir.join("ca.pem"))?;
    for &id in &nodes {
        let (cert, key) = node_file_names(id);
        let identity = Identity::load(&dir.join(cert), &dir.join(key))?;
        assert_eq!(identity.peer_identity()?, PeerIdentity::Node(id));
    }
    let client = Identity::load(&dir.join("client.pem"), &dir.join("client.key"))?;
    assert_eq!(client.peer_identity()?, PeerIdentity::Client);
    // The saved CA can issue more certificates under the same name.
    let saved = ClusterCa::load(&dir.join("ca.pem"), &dir.join("ca.key"))?;
    assert_eq!(saved.certificate(), ca);
    let _ = saved.issue_node(NodeId(4))?;

    // A second run refuses, and changes nothing.
    let before = std::fs::read(dir.join("node-1.key"))?;
    match write_cluster_certs(&dir, &nodes, false) {
        Err(CertError::WouldOverwrite(path)) => assert!(path.starts_with(&dir)),
        other => anyhow::bail!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read(dir.join("node-1.key"))?, before);
    let message = match write_cluster_certs(&dir, &nodes, false) {
        Err(e) => e.to_string(),
        Ok(_) => String::new(),
    };
    assert!(
        message.contains("already exists") && message.contains("force"),
        "{message}"
    );

    // With force, a key made world-readable by hand is replaced and private again.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("node-1.key"),
            std::fs::Permissions::from_mode(0o644),
        )?;
    }
    write_cluster_certs(&dir, &nodes, true)?;
    assert_ne!(std::fs::read(dir.join("node-1.key"))?, before);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("node-1.key"))?
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    // Duplicates are a mistake, not something to paper over.
    assert!(matches!(
        write_cluster_certs(&tmp.0.join("dup"), &[NodeId(1), NodeId(1)], false),
        Err(CertError::DuplicateNode(NodeId(1)))
    ));
    Ok(())
}
