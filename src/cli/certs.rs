//! `gen-paxos certs`: a cluster CA and certificates for nodes and status clients.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use paxos_core::NodeId;

/// Arguments of `gen-paxos certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write ca.pem, ca.key, node-<id>.pem/.key and client.pem/.key into
    /// (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Node ids, comma-separated (e.g. 1,2,3).
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<u64>,
    /// Overwrite existing keys and certificates.
    #[arg(long)]
    pub force: bool,
}

/// Writes the certificates; refuses to overwrite unless `--force`.
pub fn run(args: &CertsArgs) -> Result<()> {
    if args.nodes.is_empty() {
        bail!("--nodes needs at least one node id");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let nodes: Vec<NodeId> = args.nodes.iter().copied().map(NodeId).collect();
    let written = match transport_quic::write_cluster_certs(&args.out, &nodes, args.force) {
        Err(transport_quic::CertError::WouldOverwrite(path)) => {
            bail!(
                "{} already exists (use --force to overwrite the whole set)",
                path.display()
            )
        }
        other => other?,
    };
    for path in written {
        outln!("wrote {}", path.display());
    }
    Ok(())
}
