//! `gen-paxos status`: asks a running node who is master.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use election::{NodeId, StatusReply, StatusRequest};
use transport_quic::{Settings, StatusClient};

use super::common::{load_identity, parse_peer};

/// Arguments of `gen-paxos status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Directory with ca.pem and client.pem/.key.
    #[arg(long)]
    pub certs: PathBuf,
    /// The node to ask, as ID=ADDR (its id authenticates its certificate).
    #[arg(long, value_parser = parse_peer)]
    pub peer: (NodeId, SocketAddr),
    /// Only this lease.
    #[arg(long)]
    pub lease: Option<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
    /// Give up after this long.
    #[arg(long, value_parser = super::common::parse_duration, default_value = "3s")]
    pub timeout: Duration,
}

/// Asks and prints.
pub async fn run(args: &StatusArgs) -> Result<()> {
    let (identity, ca) = load_identity(&args.certs, None)?;
    let (node, addr) = args.peer;
    let mut settings = Settings::default();
    settings.connect_timeout = args.timeout;
    let question = match &args.lease {
        Some(name) => StatusRequest::lease(name.clone()),
        None => StatusRequest::all(),
    };
    let ask = async {
        let client = StatusClient::connect(addr, node, &identity, &ca, &settings).await?;
        let answer: StatusReply = client.request(&question).await?;
        client.close().await;
        Ok::<_, transport_quic::Error>(answer)
    };
    let answer = tokio::time::timeout(args.timeout, ask)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "node {node} at {addr} did not answer within {:?}",
                args.timeout
            )
        })?
        .with_context(|| format!("cannot ask node {node} at {addr}"))?;
    if let Some(name) = &args.lease
        && !answer.leases.iter().any(|l| &l.lease == name)
    {
        bail!("node {node} has not joined lease {name:?}");
    }
    if args.json {
        let leases: Vec<_> = answer
            .leases
            .iter()
            .map(|l| {
                serde_json::json!({
                    "lease": l.lease, "master": l.master.map(|m| m.0), "token": l.token,
                    "expires_in_ms": l.expires_in.map(|d| d.as_secs_f64() * 1000.0), "exact": l.exact,
                })
            })
            .collect();
        let down: Vec<u64> = answer.down.iter().map(|n| n.0).collect();
        let alive: Vec<u64> = answer.alive.iter().map(|n| n.0).collect();
        let refused: Vec<_> = answer
            .peers
            .iter()
            .filter(|p| p.fingerprint.is_some() && !p.matches)
            .map(|p| {
                serde_json::json!({
                    "node": p.node.0, "member": p.member, "refused_frames": p.refused,
                    "differences": p.differences,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "node": answer.node.0, "alive": alive, "down": down, "leases": leases,
                "fingerprint": format!("{:016x}", answer.fingerprint),
                "in_conflict": answer.in_conflict, "mismatched_peers": refused,
            })
        );
    } else {
        let ids = |v: &[NodeId]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        outln!(
            "node {} (alive: {}; down: {})",
            answer.node,
            ids(&answer.alive),
            ids(&answer.down)
        );
        if answer.in_conflict {
            outln!(
                "  NOT ACTING: a voter runs with another cluster configuration (no lease held, no vote given until it matches)"
            );
        }
        for p in answer
            .peers
            .iter()
            .filter(|p| p.fingerprint.is_some() && !p.matches)
        {
            let what = if p.differences.is_empty() {
                "details not received yet".to_string()
            } else {
                p.differences.join("; ")
            };
            outln!(
                "  refusing node {}{} ({} frames): another cluster configuration: {what}",
                p.node,
                if p.member { "" } else { " (not a member here)" },
                p.refused
            );
        }
        for l in &answer.leases {
            match (l.master, l.token, l.expires_in) {
                (Some(m), Some(t), Some(e)) => outln!(
                    "  {}: master {m}, token {:?}, expires in {:.0} ms ({})",
                    l.lease,
                    t,
                    e.as_secs_f64() * 1000.0,
                    if l.exact {
                        "exact, this node is master"
                    } else {
                        "estimate"
                    }
                ),
                _ => outln!("  {}: no master known", l.lease),
            }
        }
    }
    Ok(())
}
