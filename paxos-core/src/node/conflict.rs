//! What the node does with the fingerprints its peers show (F1-F3): admits or refuses
//! their messages, and stops acting while a voter runs with another configuration (F2).

use super::Node;
use crate::id::NodeId;
use crate::time::Timestamp;

impl Node {
    /// Records what `from` said about its fingerprint and applies F2 when the set of
    /// mismatched voters empties or fills. Returns whether its messages are admitted.
    pub(super) fn hear(
        &mut self,
        now: Timestamp,
        from: NodeId,
        digest: u64,
        hello: Option<bool>,
        nonempty: bool,
    ) -> bool {
        let heard = self.peers.hear(now, from, digest, hello, nonempty);
        match heard.conflict {
            Some(true) => self.enter_conflict(),
            Some(false) => self.leave_conflict(now),
            None => {}
        }
        heard.admitted
    }

    /// F2: a voter runs with another configuration, so the majorities this node counts may
    /// not intersect the ones it counts. Stop acting: surrender and release every lease,
    /// abandon every attempt, and (in `Arrival::may_answer`) answer no Prepare or Accept.
    fn enter_conflict(&mut self) {
        self.stats.conflicts += 1;
        for idx in 0..self.leases.len() {
            let (l, mut cx) = self.parts(idx);
            l.proposer.enter_conflict(&mut cx, &l.name);
            self.schedule(idx);
        }
    }

    /// Every voter heard from matches again: candidates try again after a random wait.
    fn leave_conflict(&mut self, now: Timestamp) {
        for idx in 0..self.leases.len() {
            let (l, mut cx) = self.parts(idx);
            l.proposer.leave_conflict(&mut cx, now);
            self.schedule(idx);
        }
    }
}
