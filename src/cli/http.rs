//! `node --metrics ADDR`: an HTTP endpoint for Prometheus and orchestrators.
//!
//! - `GET /metrics`: the node's and its transport's metrics, Prometheus text format
//!   (encoded by `prometheus-client`; see `gen_paxos_election::metrics` for the list).
//! - `GET /healthz`: 200 if this node reaches a majority of voters with a matching
//!   configuration and is not in conflict, else 503; the body says which voters.
//! - `GET /readyz`: 200 if every lease the node joined has a known master, else 503 with
//!   the leases that have none.
//!
//! hyper parses the requests; at most 32 connections are served at once, and a client
//! that sends no request head within 5 s is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use gen_paxos_election::Election;
use gen_paxos_quic::StatsHandle;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use tracing::debug;

const MAX_CONNECTIONS: usize = 32;

/// Binds `addr` now (so a busy port is an error at start) and serves until the process ends.
pub fn serve(addr: SocketAddr, election: Election, transport: StatsHandle) -> Result<()> {
    let std_listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(election.metrics()));
    registry.register_collector(Box::new(transport));
    let registry = Arc::new(registry);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                debug!(%peer, "too many metrics connections: dropped");
                continue;
            };
            let (registry, election) = (registry.clone(), election.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let reply = answer(&request, &registry, &election);
                    async move { Ok::<_, std::convert::Infallible>(reply) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    debug!(%peer, error = %e, "metrics connection ended");
                }
                drop(permit);
            });
        }
    });
    Ok(())
}

fn answer(
    request: &Request<Incoming>,
    registry: &Registry,
    election: &Election,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match request.uri().path() {
        "/metrics" => {
            let mut body = String::new();
            match prometheus_client::encoding::prometheus_text::encode(&mut body, registry) {
                Ok(()) => Response::builder()
                    .header(
                        hyper::header::CONTENT_TYPE,
                        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    )
                    .body(Full::new(Bytes::from(body)))
                    .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, String::new())),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot encode metrics\n".into(),
                ),
            }
        }
        "/healthz" => {
            let h = election.health();
            let ids: Vec<String> = h.reachable.iter().map(ToString::to_string).collect();
            let line = format!(
                "voters reachable with a matching configuration: [{}] (majority {}){}\n",
                ids.join(","),
                h.majority,
                if h.in_conflict {
                    "; NOT ACTING: a voter runs with another configuration"
                } else {
                    ""
                }
            );
            if h.healthy {
                text(StatusCode::OK, format!("ok: {line}"))
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("unhealthy: {line}"),
                )
            }
        }
        "/readyz" => {
            let r = election.readiness();
            if r.ready {
                text(
                    StatusCode::OK,
                    "ready: every joined lease has a known master\n".into(),
                )
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "not ready: no master known for {}\n",
                        r.without_master.join(", ")
                    ),
                )
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
