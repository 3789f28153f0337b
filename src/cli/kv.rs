//! `gen-paxos kv`: the built-in replicated key-value store (nodes run it with `--kv`),
//! through any node (a follower forwards to the master).
//!
//! Exit codes: 0 done; 1 bad input or local files; 2 refused (a `cas` whose value differed,
//! a value too large: nothing changed); 4 nothing happened (the node could not be reached,
//! or no master is known); 5 outcome unknown (the request left and the answer did not come
//! back, or the master changed meanwhile: read before retrying a `cas`).

use anyhow::Result;
use clap::{Args, Subcommand};

use super::common::complain;
use super::control::{
    self, AskError, EXIT_ERROR, EXIT_OK, EXIT_REFUSED, EXIT_UNKNOWN, EXIT_UNREACHABLE, ToolAnswer,
    ToolRequest,
};
use super::kv_store::{KvOutcome, KvRequest};

/// Arguments of `gen-paxos kv`.
#[derive(Debug, Args)]
pub struct KvArgs {
    #[command(flatten)]
    pub target: control::Target,
    /// Print one JSON object (`ok`, `value`, `index`, `outcome`, `error`) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub op: KvOp,
}

/// What to do with the store.
#[derive(Debug, Subcommand)]
pub enum KvOp {
    /// Set KEY to VALUE.
    Put { key: String, value: String },
    /// Read KEY (a lease read on the master).
    Get { key: String },
    /// Set KEY to NEW if it is OLD: `cas KEY OLD NEW`, or `cas --absent KEY NEW` if it must
    /// have no value.
    Cas {
        key: String,
        /// OLD NEW, or NEW with --absent.
        #[arg(num_args = 1..=2, required = true)]
        values: Vec<String>,
        /// Expect the key to have no value.
        #[arg(long)]
        absent: bool,
    },
    /// Remove KEY.
    Delete { key: String },
    /// Load the store from this process and print the latencies (`--op put|get|ping`,
    /// `--clients N`, `--duration 5s`, `--rate R`).
    Bench(super::kv_bench::BenchArgs),
}

/// Sends the request, prints one line, returns the exit code.
pub async fn run(args: &KvArgs) -> Result<u8> {
    let request = match &args.op {
        KvOp::Put { key, value } => KvRequest::Put {
            key: key.clone(),
            value: value.clone().into_bytes(),
        },
        KvOp::Get { key } => KvRequest::Get { key: key.clone() },
        KvOp::Delete { key } => KvRequest::Delete { key: key.clone() },
        KvOp::Bench(bench) => return super::kv_bench::run(&args.target, bench, args.json).await,
        KvOp::Cas {
            key,
            values,
            absent,
        } => {
            let (old, new) = match (absent, values.as_slice()) {
                (true, [new]) => (None, new.clone()),
                (false, [old, new]) => (Some(old.clone().into_bytes()), new.clone()),
                _ => {
                    complain("cas needs KEY OLD NEW, or --absent KEY NEW");
                    return Ok(EXIT_ERROR);
                }
            };
            KvRequest::Cas {
                key: key.clone(),
                old,
                new: new.into_bytes(),
            }
        }
    };
    let outcome = match control::ask(&args.target, &ToolRequest::Kv(request)).await {
        Ok(ToolAnswer::Kv(outcome)) => outcome,
        Ok(other) => KvOutcome::Unknown(format!("unexpected answer: {other:?}")),
        Err(AskError::NoAnswer(why)) => KvOutcome::Unknown(why),
        Err(e) => return Ok(control::report(e)),
    };
    Ok(print(&outcome, args.json))
}

fn text(value: &Option<Vec<u8>>) -> Option<String> {
    value
        .as_ref()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Prints one line for `outcome` and returns its exit code.
fn print(outcome: &KvOutcome, json: bool) -> u8 {
    let (code, ok, value, index, name, error) = match outcome {
        KvOutcome::Done { value, index } => (EXIT_OK, true, text(value), *index, "done", None),
        KvOutcome::Refused { value, why } => (
            EXIT_REFUSED,
            false,
            text(value),
            None,
            "refused",
            Some(why.clone()),
        ),
        KvOutcome::Unknown(why) => (
            EXIT_UNKNOWN,
            false,
            None,
            None,
            "unknown",
            Some(why.clone()),
        ),
        KvOutcome::Unavailable(why) => (
            EXIT_UNREACHABLE,
            false,
            None,
            None,
            "unavailable",
            Some(why.clone()),
        ),
    };
    if json {
        let line = serde_json::json!({
            "ok": ok, "value": value, "index": index, "outcome": name, "error": error,
        });
        outln!("{line}");
    } else {
        match (ok, &value, index, &error) {
            (true, _, Some(index), _) => outln!("ok index={index}"),
            (true, Some(v), None, _) => outln!("{v}"),
            (true, None, None, _) => outln!("(absent)"),
            (false, _, _, why) => {
                let why = why.as_deref().unwrap_or("");
                match &value {
                    Some(v) => complain(&format!("{name}: {why} (value {v:?})")),
                    None => complain(&format!("{name}: {why}")),
                }
            }
        }
    }
    code
}
