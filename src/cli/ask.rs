//! `gen-paxos ask`: per-key consensus, the original gen_paxos's `ask(Key, Value)`, through
//! any node with a data directory (no master needed).
//!
//! Exit codes: 0 done; 1 bad input, local files, or the node cannot (no data directory);
//! 4 the node could not be reached; 5 outcome unknown (no majority answered in time).

use anyhow::Result;
use clap::Args;

use super::common::complain;
use super::control::{
    self, AskAnswer, AskError, AskOp, EXIT_ERROR, EXIT_OK, EXIT_UNKNOWN, ToolAnswer, ToolRequest,
};

/// Arguments of `gen-paxos ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub target: control::Target,
    /// Read the value chosen for KEY instead of proposing one.
    #[arg(long, conflicts_with = "forget")]
    pub get: bool,
    /// Close KEY's instance: later asks choose afresh.
    #[arg(long)]
    pub forget: bool,
    /// Print one JSON object (`ok`, `value`, `instance`, `error`).
    #[arg(long)]
    pub json: bool,
    /// The key.
    pub key: String,
    /// The value to propose (not with --get or --forget).
    pub value: Option<String>,
}

/// Sends the request, prints one line, returns the exit code.
pub async fn run(args: &AskArgs) -> Result<u8> {
    let op = match (args.get, args.forget, &args.value) {
        (true, _, None) => AskOp::Get,
        (_, true, None) => AskOp::Forget,
        (false, false, Some(value)) => AskOp::Ask(value.clone().into_bytes()),
        _ => {
            complain("give KEY VALUE, or --get KEY, or --forget KEY");
            return Ok(EXIT_ERROR);
        }
    };
    let request = ToolRequest::Ask {
        key: args.key.clone(),
        op,
    };
    let answer = match control::ask(&args.target, &request).await {
        Ok(ToolAnswer::Ask(answer)) => answer,
        Ok(other) => AskAnswer::Unknown(format!("unexpected answer: {other:?}")),
        Err(AskError::NoAnswer(why)) => AskAnswer::Unknown(why),
        Err(e) => return Ok(control::report(e)),
    };
    let (code, value, instance, error) = match &answer {
        AskAnswer::Done { value, instance } => (
            EXIT_OK,
            value
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            *instance,
            None,
        ),
        AskAnswer::Unknown(why) => (EXIT_UNKNOWN, None, None, Some(why.clone())),
        AskAnswer::Error(why) => (EXIT_ERROR, None, None, Some(why.clone())),
    };
    if args.json {
        let line = serde_json::json!({
            "ok": code == EXIT_OK, "value": value, "instance": instance, "error": error,
        });
        outln!("{line}");
    } else {
        match (&error, &value, instance) {
            (Some(why), _, _) => complain(why),
            (None, Some(v), _) => outln!("{v}"),
            (None, None, Some(i)) => outln!("forgot instance {i}"),
            (None, None, None) => outln!("(undecided)"),
        }
    }
    Ok(code)
}
