//! The learner of one lease on one node (L1): who else is master, as a hint for timing
//! attempts and answering queries, never as authority.

use std::time::Duration;

use crate::ballot::Ballot;
use crate::context::Cx;
use crate::event::{Event, Master};
use crate::id::{LeaseName, Owner};
use crate::time::Timestamp;

/// A master learned from another node (L1): a hint, never authority.
#[derive(Debug, Clone, Copy, Hash)]
pub(crate) struct Remote {
    pub(crate) owner: Owner,
    pub(crate) ballot: Ballot,
    /// Estimated end of its lease `d` on this node's clock.
    pub(crate) expires: Timestamp,
}

/// Learner state for one joined lease.
#[derive(Debug, Clone, Default, Hash)]
pub(crate) struct Learner {
    pub(crate) master: Option<Remote>,
    /// The highest ballot whose Release this learner has heard: a Learn of that owner at or
    /// below it arrived late (overtaken by the Release) and is ignored.
    released: Option<Ballot>,
}

impl Learner {
    /// When the known master's lease ends, if one is known.
    pub(crate) fn master_expires(&self) -> Option<Timestamp> {
        self.master.map(|m| m.expires)
    }

    /// The known master as the application sees it: its estimated end less the margin.
    pub(crate) fn view(&self, margin: Duration) -> Option<Master> {
        self.master.map(|m| Master {
            node: m.owner.node,
            token: m.ballot,
            expires: m.expires.saturating_sub(margin),
            exact: false,
        })
    }

    /// Whether `ballot`'s owner already released it (its Release overtook this Learn).
    pub(crate) fn was_released(&self, ballot: Ballot) -> bool {
        self.released
            .is_some_and(|r| r.owner() == ballot.owner() && ballot <= r)
    }

    /// L1: another owner activated `ballot` with `remaining` left. Records it unless an
    /// equal or newer master is known and live; returns the estimated expiry if recorded.
    pub(crate) fn handle_learn(
        &mut self,
        cx: &mut Cx<'_>,
        lease: &LeaseName,
        now: Timestamp,
        ballot: Ballot,
        remaining: Duration,
    ) -> Option<Timestamp> {
        let owner = ballot.owner();
        let expires = now + remaining.min(cx.setup.timing.lease);
        let (newer, changed) = match self.master {
            None => (true, true),
            Some(m) => (ballot >= m.ballot || now >= m.expires, m.owner != owner),
        };
        if !newer {
            cx.stats.stale_responses += 1;
            return None;
        }
        self.master = Some(Remote {
            owner,
            ballot,
            expires,
        });
        let view = self.view(cx.setup.timing.margin);
        match view {
            Some(master) if !changed => cx.event(Event::MasterRenewed {
                lease: lease.clone(),
                master,
            }),
            _ => cx.event(Event::MasterChanged {
                lease: lease.clone(),
                master: view,
            }),
        }
        Some(expires)
    }

    /// A Release of `ballot`: remembered against late Learns of other owners, and the
    /// known master forgotten if it is the one released. Returns whether it was.
    pub(crate) fn handle_release(
        &mut self,
        cx: &mut Cx<'_>,
        lease: &LeaseName,
        ballot: Ballot,
    ) -> bool {
        if ballot.owner() != cx.setup.owner() {
            // One slot, kept for other owners' Learns (this node never learns from itself).
            self.released = self.released.max(Some(ballot));
        }
        if !self
            .master
            .is_some_and(|m| m.owner == ballot.owner() && ballot >= m.ballot)
        {
            return false;
        }
        self.master = None;
        cx.event(Event::MasterChanged {
            lease: lease.clone(),
            master: None,
        });
        true
    }

    /// The known master's lease is over by now.
    pub(crate) fn handle_timeout(&mut self, cx: &mut Cx<'_>, lease: &LeaseName, now: Timestamp) {
        if self.master.is_some_and(|m| now >= m.expires) {
            self.master = None;
            cx.event(Event::MasterChanged {
                lease: lease.clone(),
                master: None,
            });
        }
    }
}
