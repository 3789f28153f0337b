//! `gen-paxos node`'s event output: one JSON line per event on stdout.

use std::io::Write;

use gen_paxos_election::{ElectionEvent, NodeId};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};

use super::common::event_json;

/// Writes each event as one JSON line on stdout. Lines are buffered while more events are
/// already waiting and flushed as soon as none is: every line is out before the printer
/// waits again, without a write call per line in a burst of thousands of renewals.
pub async fn print_events(
    node: NodeId,
    mut events: tokio::sync::broadcast::Receiver<ElectionEvent>,
    renewals: bool,
) {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    let mut next = events.recv().await;
    loop {
        match next {
            Ok(ElectionEvent::Stopped) | Err(RecvError::Closed) => {
                let _ = out.flush();
                return;
            }
            Ok(ElectionEvent::Renewed { .. }) if !renewals => {}
            Ok(event) => match event_json(node, &event) {
                Some(line) => {
                    if writeln!(out, "{line}").is_err() {
                        return;
                    }
                }
                None => debug!(?event, "event"),
            },
            Err(RecvError::Lagged(missed)) => {
                warn!(missed, "event output fell behind; events were skipped")
            }
        }
        next = match events.try_recv() {
            Ok(event) => Ok(event),
            Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Empty) => {
                if out.flush().is_err() {
                    return;
                }
                events.recv().await
            }
        };
    }
}
