//! `gen-paxos resign`: asks a running node to resign a lease (or all of them), like a
//! `resign` line on its stdin used to, authenticated with the client certificate.

use anyhow::Result;
use clap::Args;

use super::common::complain;
use super::control::{self, EXIT_ERROR, EXIT_OK, ToolAnswer, ToolRequest};

/// Arguments of `gen-paxos resign`.
///
/// Exit codes: 0 resigned (whether or not the node was master); 1 the node has not joined
/// the lease, or bad input; 4 the node did not answer in time or refused the client.
#[derive(Debug, Args)]
pub struct ResignArgs {
    #[command(flatten)]
    pub target: control::Target,
    /// The lease to resign (default: every lease the node joined).
    #[arg(long)]
    pub lease: Option<String>,
}

/// Asks, prints one line per lease, and returns the exit code.
pub async fn run(args: &ResignArgs) -> Result<u8> {
    let node = args.target.peer.0;
    let request = ToolRequest::Resign {
        lease: args.lease.clone(),
    };
    let results = match control::ask(&args.target, &request).await {
        Ok(ToolAnswer::Resigned(results)) => results,
        Ok(other) => {
            complain(&format!("node {node} gave an unexpected answer: {other:?}"));
            return Ok(EXIT_ERROR);
        }
        Err(e) => return Ok(control::report(e)),
    };
    let mut code = EXIT_OK;
    for (lease, outcome) in results {
        match outcome {
            Ok(true) => outln!("node {node} resigned {lease} (it was master)"),
            Ok(false) => outln!("node {node} resigned {lease} (it was not master)"),
            Err(why) => {
                complain(&format!("node {node} could not resign {lease:?}: {why}"));
                code = EXIT_ERROR;
            }
        }
    }
    Ok(code)
}
