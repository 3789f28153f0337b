//! Applying the core's events: the state guards and `is_master` read, the lease's
//! callbacks, the published events, and the calls that follow a master change.

use gen_paxos_core::{Event, LeaseName, Master};
use tracing::debug;

use super::{Driver, LeaseMsg};
use crate::error::CallError;
use crate::events::ElectionEvent;
use crate::leader::LeaseInfo;
use crate::transport::Transport;
use crate::view::{LeaseGuard, MasterInfo};
use crate::wire::Wire;

impl<T: Transport<Wire>> Driver<T> {
    pub(super) fn master_info(&self, m: Master) -> MasterInfo {
        MasterInfo {
            node: m.node,
            token: m.token,
            expires: self.instant(m.expires),
            exact: m.exact,
        }
    }

    /// One core event: the state guards and `is_master` read first, then the callbacks and
    /// the published events.
    pub(super) fn apply(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Elected {
                lease,
                token,
                deadline,
            } => {
                let deadline = self.instant(deadline);
                let Some(rt) = self.leases.get(&lease) else {
                    return;
                };
                let term = {
                    let mut view = rt.shared.view();
                    view.term += 1;
                    view.hold(now, self.id, token, deadline);
                    view.term
                };
                debug!(node = %self.id, %lease, %token, "elected");
                let info = LeaseInfo {
                    name: lease.clone(),
                    token,
                    deadline,
                    guard: LeaseGuard::new(rt.shared.clone(), term),
                };
                // R2: a replicated lease's Leader hears of it once the log is ready.
                if let Some(info) = self.defer_elected(&lease, info)
                    && let Some(rt) = self.leases.get_mut(&lease)
                {
                    rt.tell(LeaseMsg::Elected(info));
                }
                self.node.publish(ElectionEvent::Elected {
                    lease,
                    token,
                    deadline,
                });
            }
            Event::Renewed {
                lease,
                token,
                deadline,
            } => {
                let deadline = self.instant(deadline);
                let Some(rt) = self.leases.get(&lease) else {
                    return;
                };
                rt.shared.view().hold(now, self.id, token, deadline);
                if self.node.renewal_events {
                    self.node.publish(ElectionEvent::Renewed {
                        lease,
                        token,
                        deadline,
                    });
                }
            }
            Event::Surrendered {
                lease,
                token,
                reason,
            } => {
                let master = self.core.master(&lease).map(|m| self.master_info(m));
                let Some(rt) = self.leases.get(&lease) else {
                    return;
                };
                {
                    // Authority ends here, before any Release is sent (P6).
                    let mut view = rt.shared.view();
                    view.held = None;
                    view.note_master(now, master);
                }
                self.node.count_surrender(reason);
                debug!(node = %self.id, %lease, %token, %reason, "surrendered");
                if self.end_tenure(&lease)
                    && let Some(rt) = self.leases.get_mut(&lease)
                {
                    rt.tell(LeaseMsg::Surrendered { token, reason });
                }
                self.node.publish(ElectionEvent::Surrendered {
                    lease,
                    token,
                    reason,
                });
            }
            Event::MasterChanged { lease, master } => {
                let info = master.map(|m| self.master_info(m));
                let Some(rt) = self.leases.get_mut(&lease) else {
                    return;
                };
                rt.shared.master_changed(now, info);
                rt.tell(LeaseMsg::MasterChanged(info));
                self.node.publish(ElectionEvent::MasterChanged {
                    lease: lease.clone(),
                    master: info,
                });
                self.master_changed(&lease, info);
            }
            Event::MasterRenewed { lease, master } => {
                // Another node renewed: its estimated expiry moved (L1).
                let info = self.master_info(master);
                if let Some(rt) = self.leases.get(&lease) {
                    rt.shared.view().note_master(now, Some(info));
                }
            }
            Event::Log { lease, event } => self.apply_log(lease, event),
            Event::Ask(event) => self.apply_ask(event),
        }
    }

    /// Calls in flight to a master that is no more fail; calls waiting for one go.
    fn master_changed(&mut self, lease: &LeaseName, master: Option<MasterInfo>) {
        let new = master.map(|m| m.node);
        let mut failed = Vec::new();
        let mut waiting = Vec::new();
        for (&id, call) in &self.calls {
            if &call.lease != lease {
                continue;
            }
            match call.target {
                Some(target) if Some(target) != new => failed.push(id),
                None if new.is_some() => waiting.push(id),
                _ => {}
            }
        }
        for id in failed {
            if let Some(call) = self.calls.remove(&id) {
                let _ = call
                    .reply
                    .send(Err(CallError::MasterChanged(lease.clone())));
            }
        }
        // Sent once the core's transmits are (`flush_as`): events first, then the outputs.
        waiting.sort_unstable();
        self.ready_calls.extend(waiting);
    }
}
