//! `gen-paxos status`: asks a running node who is master, with exit codes for scripts.

use anyhow::Result;
use clap::Args;
use gen_paxos_election::{NodeId, StatusReply, StatusRequest};

use super::common::complain;
use super::control::{self, EXIT_ERROR, EXIT_NO_MASTER, EXIT_OK, ToolAnswer, ToolRequest};

/// Arguments of `gen-paxos status`.
///
/// Exit codes: 0 every lease asked about has a known master; 3 the node answered but some
/// lease has none (or the node joined none); 4 the node did not answer in time or refused
/// the client; 1 bad input (flags, certificate files, a lease the node has not joined).
/// A node with many leases is asked page by page ([`PAGE`] leases per request).
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
    /// Print the node, its load and how many leases have a master, not each lease (for a
    /// node with many leases). Exit code 0 if every joined lease has a known master.
    #[arg(long, conflicts_with = "lease")]
    pub summary: bool,
    /// Leases asked for per request (tests page with a few leases).
    #[arg(long, default_value_t = PAGE, hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
}

/// Leases asked for per request: a page of the longest names (255 bytes) stays far under
/// the 16 MiB a status reply may take, and 300,000 leases do not fit one.
const PAGE: u32 = 10_000;

/// Asks one question; an answer that is not a status is an error (exit code inside).
async fn ask_status(args: &StatusArgs, question: StatusRequest) -> Result<StatusReply, u8> {
    let node = args.target.peer.0;
    match control::ask(&args.target, &ToolRequest::Status(question)).await {
        Ok(ToolAnswer::Status(answer)) => Ok(answer),
        Ok(other) => {
            complain(&format!("node {node} gave an unexpected answer: {other:?}"));
            Err(EXIT_ERROR)
        }
        Err(e) => Err(control::report(e)),
    }
}

/// The answer about every lease asked about: one lease, none (`--summary`), or all of
/// them page by page (the header and the counts are the first page's).
async fn ask_all(args: &StatusArgs) -> Result<StatusReply, u8> {
    if let Some(name) = &args.lease {
        return ask_status(args, StatusRequest::lease(name.clone())).await;
    }
    let first = if args.summary { 0 } else { args.page_size };
    let mut answer = ask_status(args, StatusRequest::page(None, first)).await?;
    while answer.more && !args.summary {
        let after = answer.leases.last().map(|l| l.lease.as_str().to_string());
        if after.is_none() {
            break;
        }
        let next = ask_status(args, StatusRequest::page(after, args.page_size)).await?;
        answer.leases.extend(next.leases);
        answer.more = next.more;
    }
    Ok(answer)
}

/// Asks, prints, and returns the exit code.
pub async fn run(args: &StatusArgs) -> Result<u8> {
    let node = args.target.peer.0;
    let answer = match ask_all(args).await {
        Ok(answer) => answer,
        Err(code) => return Ok(code),
    };
    if let Some(name) = &args.lease
        && !answer.leases.iter().any(|l| l.lease.as_str() == name)
    {
        complain(&format!("node {node} has not joined lease {name:?}"));
        return Ok(EXIT_ERROR);
    }
    let all_have_masters = if args.summary {
        answer.joined > 0 && answer.with_master == answer.joined
    } else {
        !answer.leases.is_empty() && answer.leases.iter().all(|l| l.master.is_some())
    };
    let code = if all_have_masters {
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
                "joined": answer.joined, "with_master": answer.with_master,
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
        outln!(
            "  joined {} lease(s), {} with a known master",
            answer.joined,
            answer.with_master
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
