//! What one input to a log role leads to, collected for the node to act on.

use super::{LogEvent, LogMessage, Slot, Value};
use crate::durable::Record;
use crate::id::NodeId;

/// Where a log message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum To {
    /// Every voter, this node included.
    Voters,
    /// One node.
    Node(NodeId),
}

/// What one input to a log role led to: messages, events and records to make durable.
#[derive(Debug, Clone, Default, Hash)]
pub(crate) struct Effects {
    pub(crate) sends: Vec<(To, LogMessage)>,
    pub(crate) events: Vec<LogEvent>,
    pub(crate) records: Vec<Record>,
    /// Slots the proposer saw chosen, for this node's learner (which delivers them).
    pub(crate) chosen: Vec<(Slot, Value)>,
    /// The proposer's events (`Ready`, `Appended`, `AppendFailed`): they go out after the
    /// learner delivered `chosen`, so an acknowledgement never precedes its `Chosen`.
    pub(crate) acks: Vec<LogEvent>,
}

impl Effects {
    /// Whether there is nothing to act on.
    pub(crate) fn is_empty(&self) -> bool {
        self.sends.is_empty()
            && self.events.is_empty()
            && self.records.is_empty()
            && self.chosen.is_empty()
            && self.acks.is_empty()
    }
}
