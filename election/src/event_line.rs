//! The event line: one JSON object per line for what happened to a lease on a node, as
//! the `gen-paxos` tool prints it and the test and benchmark harnesses read it back. One
//! type for both sides, so the format cannot drift between writer and readers.

use serde::{Deserialize, Serialize};

use crate::events::ElectionEvent;

/// One event line: `{"ts_ms":…,"node":2,"event":"elected","lease":"default",…}`.
///
/// ```
/// use gen_paxos_election::{EventLine, LineEvent};
/// let line: EventLine = serde_json::from_str(
///     r#"{"ts_ms":1.5,"node":2,"event":"surrendered","lease":"db","token":[7,9,2],"reason":"expired"}"#,
/// )?;
/// assert_eq!(line.event.kind(), "surrendered");
/// assert!(matches!(line.event, LineEvent::Surrendered { ref reason, .. } if reason == "expired"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLine {
    /// When the line was written, in milliseconds of the writer's wall clock since the
    /// Unix epoch (for reading and ordering, never for deadlines).
    pub ts_ms: f64,
    /// The node that saw it.
    pub node: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: LineEvent,
}

/// What an [`EventLine`] says happened. A fencing token is `[counter, incarnation, node]`,
/// compared lexicographically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum LineEvent {
    /// This node became master.
    Elected {
        /// The lease.
        lease: String,
        /// The fencing token.
        token: [u64; 3],
        /// The end of its authority (the surrender deadline), on the wall clock.
        deadline_ms: f64,
    },
    /// This node renewed its lease.
    Renewed {
        /// The lease.
        lease: String,
        /// The fencing token of the renewed lease.
        token: [u64; 3],
        /// The new end of its authority, on the wall clock.
        deadline_ms: f64,
    },
    /// This node, master of a replicated lease, has its log ready: its state holds every
    /// entry chosen before (`entries` of them) and it serves reads and appends.
    Ready {
        /// The lease.
        lease: String,
        /// The fencing token of the tenure.
        token: [u64; 3],
        /// Entries chosen, all applied.
        entries: u64,
    },
    /// This node's authority ended.
    Surrendered {
        /// The lease.
        lease: String,
        /// The token it held.
        token: [u64; 3],
        /// Why (`expired`, `resigned`, `lost`, `shutdown`, `config-mismatch`).
        reason: String,
    },
    /// The master this node knows of changed (`master` is `null` when none is known).
    Master {
        /// The lease.
        lease: String,
        /// The master.
        master: Option<u64>,
        /// Its fencing token.
        token: Option<[u64; 3]>,
    },
}

impl LineEvent {
    /// The `event` field: `elected`, `renewed`, `ready`, `surrendered` or `master`.
    pub fn kind(&self) -> &'static str {
        match self {
            LineEvent::Elected { .. } => "elected",
            LineEvent::Renewed { .. } => "renewed",
            LineEvent::Ready { .. } => "ready",
            LineEvent::Surrendered { .. } => "surrendered",
            LineEvent::Master { .. } => "master",
        }
    }

    /// The lease it is about.
    pub fn lease(&self) -> &str {
        match self {
            LineEvent::Elected { lease, .. }
            | LineEvent::Renewed { lease, .. }
            | LineEvent::Ready { lease, .. }
            | LineEvent::Surrendered { lease, .. }
            | LineEvent::Master { lease, .. } => lease,
        }
    }

    /// The token it names, if any.
    pub fn token(&self) -> Option<[u64; 3]> {
        match self {
            LineEvent::Elected { token, .. }
            | LineEvent::Renewed { token, .. }
            | LineEvent::Ready { token, .. }
            | LineEvent::Surrendered { token, .. } => Some(*token),
            LineEvent::Master { token, .. } => *token,
        }
    }

    /// The line for an election event, or `None` for events that are logged rather than
    /// printed. `wall_ms` turns a deadline (a monotonic instant) into wall-clock
    /// milliseconds.
    pub fn of(
        event: &ElectionEvent,
        wall_ms: impl Fn(tokio::time::Instant) -> f64,
    ) -> Option<LineEvent> {
        Some(match event {
            ElectionEvent::Elected {
                lease,
                token,
                deadline,
            } => LineEvent::Elected {
                lease: lease.to_string(),
                token: token.to_array(),
                deadline_ms: wall_ms(*deadline),
            },
            ElectionEvent::Renewed {
                lease,
                token,
                deadline,
            } => LineEvent::Renewed {
                lease: lease.to_string(),
                token: token.to_array(),
                deadline_ms: wall_ms(*deadline),
            },
            ElectionEvent::Ready {
                lease,
                token,
                entries,
            } => LineEvent::Ready {
                lease: lease.to_string(),
                token: token.to_array(),
                entries: *entries,
            },
            ElectionEvent::Surrendered {
                lease,
                token,
                reason,
            } => LineEvent::Surrendered {
                lease: lease.to_string(),
                token: token.to_array(),
                reason: reason.as_str().to_string(),
            },
            ElectionEvent::MasterChanged { lease, master } => LineEvent::Master {
                lease: lease.to_string(),
                master: master.map(|m| m.node.0),
                token: master.map(|m| m.token.to_array()),
            },
            ElectionEvent::PeerDown { .. }
            | ElectionEvent::PeerUp { .. }
            | ElectionEvent::LeaderFailed { .. }
            | ElectionEvent::ConfigMismatch { .. }
            | ElectionEvent::ConfigMatched { .. }
            | ElectionEvent::Stopped => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_field_order_and_read_back() {
        let line = EventLine {
            ts_ms: 12.5,
            node: 2,
            event: LineEvent::Master {
                lease: "db".into(),
                master: None,
                token: None,
            },
        };
        let text = serde_json::to_string(&line).expect("serializes");
        assert_eq!(
            text,
            r#"{"ts_ms":12.5,"node":2,"event":"master","lease":"db","master":null,"token":null}"#
        );
        assert_eq!(serde_json::from_str::<EventLine>(&text).ok(), Some(line));
        let elected = r#"{"ts_ms":1.0,"node":1,"event":"elected","lease":"a","token":[5,6,1],"deadline_ms":9.5}"#;
        let parsed: EventLine = serde_json::from_str(elected).expect("parses");
        assert_eq!(parsed.event.token(), Some([5, 6, 1]));
        assert_eq!(serde_json::to_string(&parsed).expect("serializes"), elected);
        assert!(
            serde_json::from_str::<EventLine>(r#"{"ts_ms":1.0,"node":1,"event":"bogus"}"#).is_err()
        );
    }
}
