//! `gen-paxos status`: asks a running node who is master, with exit codes for scripts.

use anyhow::Result;
use clap::Args;
use gen_paxos_election::{NodeId, StatusRequest};

use super::common::complain;
use super::control::{self, EXIT_ERROR, EXIT_NO_MASTER, EXIT_OK, ToolAnswer, ToolRequest};

/// Arguments of `gen-paxos status`.
///
/// Exit codes: 0 every lease asked about has a known master; 3 the node answered but some
/// lease has none (or the node joined none); 4 the node did not answer in time or refused
/// the client; 1 bad input (flags, certificate files, a lease the node has not joined).
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: control::Target,
    /// Only this lease.
    #[arg(long)]
    pub lease: Option<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Asks, prints, and returns the exit code.
pub async fn run(args: &StatusArgs) -> Result<u8> {
    let node = args.target.peer.0;
    let question = match &args.lease {
        Some(name) => StatusRequest::lease(name.clone()),
        None => StatusRequest::all(),
    };
    let answer = match control::ask(&args.target, &ToolRequest::Status(question)).await {
        Ok(ToolAnswer::Status(answer)) => answer,
        Ok(other) => {
            complain(&format!("node {node} gave an unexpected answer: {other:?}"));
            return Ok(EXIT_ERROR);
        }
        Err(e) => return Ok(control::report(e)),
    };
    if let Some(name) = &args.lease
        && !answer.leases.iter().any(|l| l.lease.as_str() == name)
    {
        complain(&format!("node {node} has not joined lease {name:?}"));
        return Ok(EXIT_ERROR);
    }
    let code = if !answer.leases.is_empty() && answer.leases.iter().all(|l| l.master.is_some()) {
        EXIT_OK
    } else {
        EXIT_NO_MASTER
    };
    if args.json {
        let leases: Vec<_> = answer
            .leases
            .iter()
            .map(|l| {
                serde_json::json!({
                    "lease": l.lease.as_str(), "master": l.master.map(|m| m.0),
                    "token": l.token.map(|t| t.to_array()),
                    "expires_in_ms": l.expires_in.map(|d| d.as_secs_f64() * 1000.0), "exact": l.exact,
                    "applied": l.applied, "ready": l.ready,
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
                "load": {
                    "held": answer.load.held, "deferred": answer.load.deferred,
                    "attempt_rate": answer.load.attempt_rate,
                    "attempt_rate_cuts": answer.load.attempt_rate_cuts,
                    "retransmissions": answer.load.retransmissions,
                    "callbacks_busy": answer.load.callbacks_busy,
                    "hold_limit": answer.load.hold_limit, "shed": answer.load.shed,
                },
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
        let load = &answer.load;
        outln!(
            "  holds {} lease(s); fresh acquisitions: {} waiting, {}/s allowed now (cut {} times: attempts answered late); {} retransmissions; callbacks busy for {} lease(s)",
            load.held,
            load.deferred,
            load.attempt_rate,
            load.attempt_rate_cuts,
            load.retransmissions,
            load.callbacks_busy
        );
        if load.shed > 0 {
            outln!(
                "  shed {} lease(s) under overload; takes at most {} now",
                load.shed,
                load.hold_limit
            );
        }
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
                    t.to_array(),
                    e.as_secs_f64() * 1000.0,
                    if l.exact {
                        "exact, this node is master"
                    } else {
                        "estimate"
                    }
                ),
                _ => outln!("  {}: no master known", l.lease),
            }
            if let Some(applied) = l.applied {
                outln!(
                    "    log: {applied} entries applied here{}",
                    if l.ready {
                        "; this node serves it (master, log ready)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(code)
}
