//! `gen-paxos certs`: a cluster CA and certificates for nodes and status clients, and more
//! certificates later from the same CA.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use gen_paxos_core::NodeId;

/// Arguments of `gen-paxos certs`. One of `--nodes` (a new cluster: a new CA), `--add-node`
/// or `--add-client` (more certificates from the CA already in `--out`).
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory to write ca.pem, ca.key, node-<id>.pem/.key and client.pem/.key into
    /// (created if missing); for --add-node and --add-client, where ca.pem and ca.key are.
    #[arg(long)]
    pub out: PathBuf,
    /// A new cluster: a new CA, and certificates for these node ids, comma-separated (e.g.
    /// 1,2,3), and client.pem.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["add_node", "add_client"])]
    pub nodes: Vec<u64>,
    /// Node ids to add (comma-separated), signed by the existing CA in --out, which is
    /// never rewritten.
    #[arg(long, value_delimiter = ',')]
    pub add_node: Vec<u64>,
    /// A status client to add (client-<NAME>.pem/.key), signed by the existing CA; use it
    /// with `status --client NAME`.
    #[arg(long)]
    pub add_client: Vec<String>,
    /// Overwrite existing files: with --nodes the whole set (a new CA); with --add-node or
    /// --add-client only those files (never the CA).
    #[arg(long)]
    pub force: bool,
}

/// Writes the certificates; refuses to overwrite unless `--force`.
pub fn run(args: &CertsArgs) -> Result<()> {
    let adding = !args.add_node.is_empty() || !args.add_client.is_empty();
    if args.nodes.is_empty() && !adding {
        bail!(
            "give --nodes 1,2,3 for a new cluster, or --add-node ID / --add-client NAME to add to one"
        );
    }
    let overwrite = |path: PathBuf, what: &str| {
        anyhow::anyhow!(
            "{} already exists (use --force to overwrite {what})",
            path.display()
        )
    };
    let mut written = Vec::new();
    if adding {
        let ca = args.out.join("ca.key");
        if !ca.exists() {
            bail!(
                "{} not found: --add-node and --add-client sign with the CA made by --nodes",
                ca.display()
            );
        }
        let nodes: Vec<NodeId> = args.add_node.iter().copied().map(NodeId).collect();
        if !nodes.is_empty() {
            match gen_paxos_quic::add_node_certs(&args.out, &nodes, args.force) {
                Err(gen_paxos_quic::CertError::WouldOverwrite(path)) => {
                    return Err(overwrite(path, "that node's files; the CA is kept"));
                }
                other => written.extend(other?),
            }
        }
        for name in &args.add_client {
            match gen_paxos_quic::add_client_cert(&args.out, name, args.force) {
                Err(gen_paxos_quic::CertError::WouldOverwrite(path)) => {
                    return Err(overwrite(path, "that client's files; the CA is kept"));
                }
                other => written.extend(other?),
            }
        }
    } else {
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        let nodes: Vec<NodeId> = args.nodes.iter().copied().map(NodeId).collect();
        match gen_paxos_quic::write_cluster_certs(&args.out, &nodes, args.force) {
            Err(gen_paxos_quic::CertError::WouldOverwrite(path)) => {
                return Err(overwrite(path, "the whole set"));
            }
            other => written.extend(other?),
        }
    }
    for path in written {
        outln!("wrote {}", path.display());
    }
    Ok(())
}
