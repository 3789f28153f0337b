//! Admission of fresh acquisitions under the pacing: a lease whose attempt the pacing
//! refused waits in the node's queue (its timer off) and starts when its turn comes, at
//! the rate in force then (`pacing.rs` adapts it to how late attempts are answered).
//! Renewals never wait here.

use super::Node;
use crate::proposer::Hold;
use crate::time::Timestamp;

impl Node {
    /// One lease's timer work; a lease the pacing refused joins the waiting queue.
    pub(super) fn lease_timeout(&mut self, idx: usize, now: Timestamp, hold: Hold) {
        let (l, mut cx) = self.parts(idx);
        let was_queued = l.proposer.queued;
        l.handle_timeout(&mut cx, now, hold);
        if !was_queued && l.proposer.queued {
            self.waiting.push_back(idx);
        }
        self.schedule(idx);
    }

    /// Starts the fresh acquisitions whose turn has come, in queue order, as far as the
    /// pacing allows at `now`.
    pub(super) fn admit_waiting(&mut self, now: Timestamp, hold: Hold) {
        if hold.conflict || hold.shutting_down {
            return;
        }
        while let Some(&idx) = self.waiting.front() {
            let p = &mut self.leases[idx].proposer;
            if !p.deferred() {
                // Something else was planned for it meanwhile (a master learned, a resign).
                p.queued = false;
                self.waiting.pop_front();
                continue;
            }
            if !self.pacer.try_take(now, self.stats.held) {
                return;
            }
            self.waiting.pop_front();
            p.queued = false;
            p.admitted = true;
            p.next_attempt = now;
            self.lease_timeout(idx, now, hold);
        }
    }
}
