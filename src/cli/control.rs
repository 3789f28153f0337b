//! The tool's control channel: what `gen-paxos status` and `gen-paxos resign` ask a running
//! node, over the transport's status-client streams (authenticated with `client.pem`),
//! and how the node answers. Also the exit codes scripts and orchestrators rely on.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use gen_paxos_election::{Election, NodeId, StatusReply, StatusRequest};
use gen_paxos_quic::{ClientRequests, PeerAddr, Settings, StatusClient};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::common::{load_identity_named, parse_duration, parse_peer};

/// Exit code: done (for `status`: every lease asked about has a known master).
pub const EXIT_OK: u8 = 0;
/// Exit code: bad input or local files (and anything unexpected).
pub const EXIT_ERROR: u8 = 1;
/// Exit code of `status`: the node answered, and some lease asked about has no known master.
pub const EXIT_NO_MASTER: u8 = 3;
/// Exit code of `kv` and `ask`: refused (a compare-and-set whose value differed, a value too
/// large): nothing changed.
pub const EXIT_REFUSED: u8 = 2;
/// Exit code: the node did not answer in time, or refused the client.
pub const EXIT_UNREACHABLE: u8 = 4;
/// Exit code of `kv` and `ask`: the outcome is unknown (the request left, and the answer
/// did not come back, or the master changed meanwhile): read before retrying.
pub const EXIT_UNKNOWN: u8 = 5;

/// Key-value and `ask` requests a node works on at once (each holds its request, at most
/// 1 MiB, until answered).
const MAX_IN_FLIGHT: usize = 4096;

/// Which node a control client asks, and with which certificate: the options `status` and
/// `resign` share.
#[derive(Debug, Args)]
pub struct Target {
    /// Directory with ca.pem and client.pem/.key.
    #[arg(long)]
    pub certs: PathBuf,
    /// Use client-<NAME>.pem/.key (made by `certs --add-client NAME`) instead of client.pem.
    #[arg(long)]
    pub client: Option<String>,
    /// The node to ask, as ID=ADDR (its id authenticates its certificate).
    #[arg(long, value_parser = parse_peer)]
    pub peer: (NodeId, PeerAddr),
    /// Give up after this long.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    pub timeout: Duration,
}

/// A question from the tool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToolRequest {
    /// Who is master, peers, fingerprints.
    Status(StatusRequest),
    /// Resign one lease, or every lease the node joined.
    Resign {
        /// The lease; `None` for all.
        lease: Option<String>,
    },
    /// A request to the built-in key-value store (`node --kv`).
    Kv(super::kv_store::KvRequest),
    /// `ask`, `get` or `forget` of per-key consensus.
    Ask {
        /// The key.
        key: String,
        /// What to do.
        op: AskOp,
    },
    /// Nothing: answered with [`ToolAnswer::Pong`] at once (the client path's own round
    /// trip, for `kv bench --op ping`).
    Ping,
}

/// Per-key consensus from the tool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AskOp {
    /// Propose a value; the answer is the value chosen.
    Ask(Vec<u8>),
    /// The value chosen, if any.
    Get,
    /// Close the instance.
    Forget,
}

/// The answer to [`ToolRequest::Ask`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AskAnswer {
    /// The value chosen (`None`: a `get` found none), or the instance a `forget` closed.
    Done {
        value: Option<Vec<u8>>,
        instance: Option<u64>,
    },
    /// No majority answered in time: the outcome is unknown.
    Unknown(String),
    /// Nothing happened (no storage, a bad key).
    Error(String),
}

/// A node's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToolAnswer {
    /// The status.
    Status(StatusReply),
    /// One entry per lease resigned: whether the node was master, or why it could not.
    Resigned(Vec<(String, Result<bool, String>)>),
    /// What became of a key-value request.
    Kv(super::kv_store::KvOutcome),
    /// What became of an `ask`, `get` or `forget`.
    Ask(AskAnswer),
    /// The answer to [`ToolRequest::Ping`].
    Pong,
}

/// The node side: answers every request until the transport closes; resigns through
/// `resigner` (which `gen-paxos run` uses to stop its command first).
pub fn serve(
    mut requests: ClientRequests,
    election: Election,
    leases: Vec<String>,
    resigner: std::sync::Arc<dyn super::node::Resign>,
    kv: Option<super::kv_store::KvService>,
) {
    // Requests that wait for the cluster are answered concurrently, this many at most;
    // beyond, a request is refused at once (nothing happened: the client may retry).
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let busy = || format!("this node has {MAX_IN_FLIGHT} requests in flight: retry");
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let answer = match request.decode::<ToolRequest>() {
                Ok(waiting @ (ToolRequest::Kv(_) | ToolRequest::Ask { .. }))
                    if in_flight.available_permits() == 0 =>
                {
                    let answer = match waiting {
                        ToolRequest::Kv(_) => {
                            ToolAnswer::Kv(super::kv_store::KvOutcome::Unavailable(busy()))
                        }
                        _ => ToolAnswer::Ask(AskAnswer::Error(busy())),
                    };
                    let _ = request.respond(&answer);
                    continue;
                }
                Ok(ToolRequest::Kv(kv_request)) => {
                    let kv = kv.clone();
                    let permit = in_flight.clone().try_acquire_owned();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let outcome = match kv {
                            Some(kv) => kv.handle(kv_request).await,
                            None => super::kv_store::KvOutcome::Unavailable(
                                "this node does not run the kv store (start it with --kv)".into(),
                            ),
                        };
                        let _ = request.respond(&ToolAnswer::Kv(outcome));
                    });
                    continue;
                }
                Ok(ToolRequest::Ask { key, op }) => {
                    let election = election.clone();
                    let permit = in_flight.clone().try_acquire_owned();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let answer = ToolAnswer::Ask(ask_here(&election, &key, op).await);
                        let _ = request.respond(&answer);
                    });
                    continue;
                }
                Ok(ToolRequest::Status(question)) => ToolAnswer::Status(election.status(&question)),
                Ok(ToolRequest::Ping) => ToolAnswer::Pong,
                Ok(ToolRequest::Resign { lease }) => {
                    let names = lease.map_or_else(|| leases.clone(), |l| vec![l]);
                    let mut results = Vec::with_capacity(names.len());
                    for name in names {
                        let outcome = resigner.resign(&name).await;
                        tracing::info!(lease = %name, ?outcome, "resign asked by a client");
                        results.push((name, outcome));
                    }
                    ToolAnswer::Resigned(results)
                }
                Err(e) => {
                    debug!(error = %e, "malformed request from a client");
                    continue;
                }
            };
            if let Err(e) = request.respond(&answer) {
                debug!(error = %e, "answer not sent");
            }
        }
    });
}

/// Runs per-key consensus for a client.
async fn ask_here(election: &Election, key: &str, op: AskOp) -> AskAnswer {
    use gen_paxos_election::AskError as E;
    let result = match op {
        AskOp::Ask(value) => election.ask(key, value).await.map(|v| (Some(v), None)),
        AskOp::Get => election.get(key).await.map(|v| (v, None)),
        AskOp::Forget => election.forget(key).await.map(|i| (None, Some(i))),
    };
    match result {
        Ok((value, instance)) => AskAnswer::Done { value, instance },
        Err(e @ E::Timeout(_)) => AskAnswer::Unknown(e.to_string()),
        Err(e) => AskAnswer::Error(e.to_string()),
    }
}

/// Why a question got no answer.
#[derive(Debug)]
pub enum AskError {
    /// Local trouble (certificate files): exit [`EXIT_ERROR`].
    Local(anyhow::Error),
    /// The node could not be reached or refused: exit [`EXIT_UNREACHABLE`].
    Unreachable(String),
    /// The request left and no answer came back in time (for a write: outcome unknown).
    NoAnswer(String),
}

/// Asks node `peer` one question with the client certificate in `certs` (`client.pem`,
/// or `client-<NAME>.pem` for `client`).
pub async fn ask(target: &Target, request: &ToolRequest) -> Result<ToolAnswer, AskError> {
    let Target {
        certs,
        client,
        peer,
        timeout,
    } = target;
    let (certs, client, timeout) = (certs.as_path(), client.as_deref(), *timeout);
    let (identity, ca) = load_identity_named(certs, None, client).map_err(AskError::Local)?;
    let node = peer.0;
    let addr = super::common::resolve(&peer.1)
        .await
        .map_err(AskError::Unreachable)?;
    let mut settings = Settings::default();
    settings.connect_timeout = timeout;
    let started = tokio::time::Instant::now();
    let connect = StatusClient::connect(addr, node, &identity, &ca, &settings);
    let client = match tokio::time::timeout(timeout, connect).await {
        Err(_) => {
            return Err(AskError::Unreachable(format!(
                "node {node} at {addr} did not answer within {timeout:?}"
            )));
        }
        // A certificate the node's CA does not vouch for is the caller's problem.
        Ok(Err(gen_paxos_quic::Error::Cert(e))) => {
            return Err(AskError::Local(anyhow::Error::new(e).context(format!(
                "cannot use client.pem from {}",
                certs.display()
            ))));
        }
        Ok(Err(e)) => {
            return Err(AskError::Unreachable(format!(
                "cannot ask node {node} at {addr}: {e}"
            )));
        }
        Ok(Ok(client)) => client,
    };
    let left = timeout.saturating_sub(started.elapsed());
    let exchange = async {
        let answer: ToolAnswer = client.request(request).await?;
        client.close().await;
        Ok::<_, gen_paxos_quic::Error>(answer)
    };
    match tokio::time::timeout(left, exchange).await {
        Err(_) => Err(AskError::NoAnswer(format!(
            "node {node} at {addr} did not answer within {timeout:?}"
        ))),
        Ok(Err(e)) => Err(AskError::NoAnswer(format!(
            "node {node} at {addr} did not answer: {e}"
        ))),
        Ok(Ok(answer)) => Ok(answer),
    }
}

/// Prints an [`AskError`] as one line and returns its exit code.
pub fn report(error: AskError) -> u8 {
    match error {
        AskError::Local(e) => {
            super::common::complain(&format!("{e:#}"));
            EXIT_ERROR
        }
        AskError::Unreachable(why) | AskError::NoAnswer(why) => {
            super::common::complain(&why);
            EXIT_UNREACHABLE
        }
    }
}
