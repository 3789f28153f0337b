//! Load shedding (liveness only). When the pacing says this node's attempts are answered
//! too late to keep everything it holds (`pacing.rs`), the node gives some leases up on
//! purpose, each as a resignation would (P6: surrender, then Release), with reason
//! `Overload`: fewer leases kept rather than all of them lost at once. The lowest
//! candidate priority goes first, then the latest joined, so the same leases go each time.

use std::cmp::Reverse;

use super::Node;
use crate::time::Timestamp;

impl Node {
    /// Gives up as many held leases as the pacing asks for at `now`.
    pub(super) fn shed_load(&mut self, now: Timestamp) {
        if self.shutting_down || self.peers.in_conflict() {
            return;
        }
        let wanted = self.pacer.shed(now, self.stats.held);
        if wanted == 0 {
            return;
        }
        let mut held: Vec<(u8, Reverse<usize>)> = self
            .leases
            .iter()
            .enumerate()
            .filter(|(_, l)| l.proposer.active.is_some())
            .map(|(idx, l)| (l.proposer.priority.unwrap_or(0), Reverse(idx)))
            .collect();
        let n = usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .min(held.len());
        if n < held.len() {
            held.select_nth_unstable(n);
        }
        for &(_, Reverse(idx)) in &held[..n] {
            let (l, mut cx) = self.parts(idx);
            l.proposer.shed(&mut cx, &l.name, now);
            self.schedule(idx);
        }
    }
}
