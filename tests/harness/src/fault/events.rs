//! The nodes' event lines, read back with the tool's own type (`EventLine`).

use super::Token;
use gen_paxos_election::{EventLine, LineEvent};

/// One event line of one node process.
#[derive(Debug, Clone)]
pub struct Ev {
    pub node: u64,
    /// Which start of that node (0 for the first process, 1 after the first restart, ...).
    pub run: u32,
    pub ts: f64,
    pub kind: String,
    pub lease: String,
    pub token: Option<Token>,
    pub deadline: Option<f64>,
    /// For `master` events: the master named (`None` when no master is known).
    pub master: Option<u64>,
    pub reason: Option<String>,
}

impl Ev {
    /// Reads one line a node printed (`None` if it is not an event line).
    pub fn parse(run: u32, line: &str) -> Option<Ev> {
        let line: EventLine = serde_json::from_str(line).ok()?;
        let (deadline, master, reason) = match &line.event {
            LineEvent::Elected { deadline_ms, .. } | LineEvent::Renewed { deadline_ms, .. } => {
                (Some(*deadline_ms), None, None)
            }
            LineEvent::Surrendered { reason, .. } => (None, None, Some(reason.clone())),
            LineEvent::Master { master, .. } => (None, *master, None),
            LineEvent::Ready { .. } => (None, None, None),
        };
        Some(Ev {
            node: line.node,
            run,
            ts: line.ts_ms,
            kind: line.event.kind().to_string(),
            lease: line.event.lease().to_string(),
            token: line.event.token(),
            deadline,
            master,
            reason,
        })
    }
}
