//! What a node knows of its peers' fingerprints, and the hellos that spread them.
//!
//! Every batch a node sends carries its fingerprint digest (the runtime puts it in each
//! frame). A receiver admits a batch only if the digest equals its own (F1). To learn a
//! peer's fingerprint before any protocol message is at stake, a node *probes* every
//! member it has not yet settled, at start and then every retransmission interval: a
//! hello that asks for one back. A node answers a probe, and a protocol batch it refused,
//! with a hello of its own (at most one per peer per half retransmission interval), also
//! to nodes outside its configuration: that is how a node learns that a node it counts as
//! a voter runs with another voter set (F3; what F2 does on a mismatch is in `node.rs`).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::id::NodeId;
use crate::message::Hello;
use crate::time::Timestamp;

/// Outsiders (nodes not in this configuration) remembered for rate-limiting replies.
const MAX_OUTSIDERS: usize = 64;

#[derive(Debug, Clone, Copy, Default, Hash)]
struct PeerState {
    /// The digest last heard from this member.
    digest: Option<u64>,
    /// Its fingerprint is known: a matching batch or its hello arrived. Until then it is
    /// probed.
    settled: bool,
    /// When this node last answered it with a hello (probes are not counted: a probe may
    /// have been lost, an answer to the peer's probe is still owed).
    last_reply: Option<Timestamp>,
}

/// What one input told the node about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Heard {
    /// The sender is a member with this node's fingerprint: process its messages.
    pub(crate) admitted: bool,
    /// The set of voters with another fingerprint went from empty to non-empty (`Some(true)`)
    /// or back (`Some(false)`).
    pub(crate) conflict: Option<bool>,
}

/// The fingerprint view of one node.
#[derive(Debug, Clone)]
pub(crate) struct Peers {
    me: NodeId,
    digest: u64,
    members: Vec<NodeId>,
    voters: Vec<NodeId>,
    state: Vec<PeerState>,
    /// Voters (bit = index in `voters`) last heard with another fingerprint.
    mismatched_voters: u64,
    outsiders: HashMap<NodeId, (u64, Timestamp)>,
    hellos: VecDeque<Hello>,
    probe_every: Duration,
    probe_at: Timestamp,
    /// The `no-fingerprint` unsafe rule: admit every member, conflict never.
    ignore: bool,
}

impl Peers {
    pub(crate) fn new(
        me: NodeId,
        digest: u64,
        members: &[NodeId],
        voters: &[NodeId],
        probe_every: Duration,
        now: Timestamp,
        ignore: bool,
    ) -> Self {
        let mut peers = Peers {
            me,
            digest,
            members: members.to_vec(),
            voters: voters.to_vec(),
            state: vec![PeerState::default(); members.len()],
            mismatched_voters: 0,
            outsiders: HashMap::new(),
            hellos: VecDeque::new(),
            probe_every: probe_every.max(Duration::from_micros(100)),
            probe_at: Timestamp::MAX,
            ignore,
        };
        if let Ok(i) = peers.members.binary_search(&me) {
            peers.state[i].settled = true;
        }
        peers.probe(now);
        peers
    }

    pub(crate) fn digest(&self) -> u64 {
        self.digest
    }

    /// Whether some voter was last heard with another fingerprint (F2: stop acting).
    pub(crate) fn in_conflict(&self) -> bool {
        self.mismatched_voters != 0
    }

    /// Members and the digest last heard from each (`None`: never heard).
    pub(crate) fn view(&self) -> impl Iterator<Item = (NodeId, Option<u64>)> + '_ {
        self.members
            .iter()
            .zip(&self.state)
            .filter(|(id, _)| **id != self.me)
            .map(|(id, s)| (*id, s.digest))
    }

    pub(crate) fn poll_hello(&mut self) -> Option<Hello> {
        self.hellos.pop_front()
    }

    /// When probes are due next (none once every member is settled).
    pub(crate) fn next_probe(&self) -> Option<Timestamp> {
        (self.probe_at != Timestamp::MAX && self.state.iter().any(|s| !s.settled))
            .then_some(self.probe_at)
    }

    /// Probes every member not settled yet, and schedules the next round.
    pub(crate) fn probe(&mut self, now: Timestamp) {
        if now < self.probe_at && self.probe_at != Timestamp::MAX {
            return;
        }
        let mut any = false;
        for i in 0..self.members.len() {
            if !self.state[i].settled {
                any = true;
                self.hellos.push_back(Hello {
                    to: self.members[i],
                    wants_reply: true,
                });
            }
        }
        self.probe_at = if any {
            now + self.probe_every
        } else {
            Timestamp::MAX
        };
    }

    /// Records that `from` sent something carrying fingerprint `digest`: a batch
    /// (`hello == None`; `nonempty` if it held protocol messages) or a hello (`Some(wants
    /// reply)`). Queues the hello this node owes in answer.
    pub(crate) fn hear(
        &mut self,
        now: Timestamp,
        from: NodeId,
        digest: u64,
        hello: Option<bool>,
        nonempty: bool,
    ) -> Heard {
        let matches = digest == self.digest || self.ignore;
        let mut conflict = None;
        let member = self
            .members
            .binary_search(&from)
            .ok()
            .filter(|_| from != self.me);
        if let Some(i) = member {
            let s = &mut self.state[i];
            if matches || hello.is_some() {
                s.settled = true;
            } else if s.digest != Some(digest) {
                // A new fingerprint seen only in a batch: ask for its hello (the details).
                s.settled = false;
                self.probe_at = now;
            }
            s.digest = Some(digest);
            if let Ok(v) = self.voters.binary_search(&from) {
                let before = self.in_conflict();
                if matches {
                    self.mismatched_voters &= !(1 << v);
                } else {
                    self.mismatched_voters |= 1 << v;
                }
                if before != self.in_conflict() {
                    conflict = Some(self.in_conflict());
                }
            }
        }
        // Answer a probe (always), and a refused protocol batch (so its sender learns
        // why it is ignored), at most once per half probe interval per peer.
        let owed = hello == Some(true) || (!matches && nonempty);
        if owed && self.may_reply(now, from, member, digest) {
            self.hellos.push_back(Hello {
                to: from,
                wants_reply: false,
            });
        }
        Heard {
            admitted: matches && member.is_some(),
            conflict,
        }
    }

    fn may_reply(
        &mut self,
        now: Timestamp,
        from: NodeId,
        member: Option<usize>,
        digest: u64,
    ) -> bool {
        let gap = self.probe_every / 2;
        let last = match member {
            Some(i) => &mut self.state[i].last_reply,
            None => {
                if !self.outsiders.contains_key(&from) && self.outsiders.len() >= MAX_OUTSIDERS {
                    let horizon = now.saturating_sub(self.probe_every);
                    self.outsiders.retain(|_, (_, at)| *at >= horizon);
                    if self.outsiders.len() >= MAX_OUTSIDERS {
                        return false;
                    }
                }
                let entry = self
                    .outsiders
                    .entry(from)
                    .or_insert((digest, Timestamp::ZERO));
                if entry.0 != digest {
                    // It changed its configuration: answer at once.
                    *entry = (digest, Timestamp::ZERO);
                }
                let ok = entry.1 == Timestamp::ZERO || now >= entry.1 + gap;
                if ok {
                    entry.1 = now.max(Timestamp::from_nanos(1));
                }
                return ok;
            }
        };
        let ok = last.is_none_or(|at| now >= at + gap);
        if ok {
            *last = Some(now);
        }
        ok
    }
}

impl std::hash::Hash for Peers {
    /// Outsiders in id order (for the model checker, `state_hash.rs`).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.me.hash(state);
        self.digest.hash(state);
        self.members.hash(state);
        self.voters.hash(state);
        self.state.hash(state);
        self.mismatched_voters.hash(state);
        crate::state_hash::hash_map_sorted(&self.outsiders, state);
        self.hellos.hash(state);
        self.probe_every.hash(state);
        self.probe_at.hash(state);
        self.ignore.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().copied().map(NodeId).collect()
    }
    fn t(ms: u64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000)
    }
    const EVERY: Duration = Duration::from_millis(100);

    /// Node `me` with fingerprint `digest`, knowing `known`, `voters` voting, at time 0.
    fn peers(me: u64, digest: u64, known: &[u64], voters: &[u64]) -> Peers {
        Peers::new(
            NodeId(me),
            digest,
            &ids(known),
            &ids(voters),
            EVERY,
            t(0),
            false,
        )
    }

    fn drain(p: &mut Peers) -> Vec<(u64, bool)> {
        std::iter::from_fn(|| p.poll_hello())
            .map(|h| (h.to.0, h.wants_reply))
            .collect()
    }

    #[test]
    fn members_are_probed_until_settled() {
        let mut p = peers(1, 7, &[1, 2, 3], &[1, 2, 3]);
        assert_eq!(drain(&mut p), vec![(2, true), (3, true)]);
        let heard = p.hear(t(10), NodeId(2), 7, None, true);
        assert!(heard.admitted);
        p.probe(t(50));
        assert!(drain(&mut p).is_empty(), "not due yet");
        p.probe(t(100));
        assert_eq!(drain(&mut p), vec![(3, true)], "node 2 is settled");
        p.hear(t(120), NodeId(3), 7, Some(false), false);
        p.probe(t(200));
        assert!(drain(&mut p).is_empty());
        assert_eq!(p.next_probe(), None);
    }

    #[test]
    fn a_voter_with_another_fingerprint_is_refused_and_is_a_conflict_until_it_matches() {
        let mut p = peers(1, 7, &[1, 2, 3], &[1, 2, 3]);
        drain(&mut p);
        p.hear(t(1), NodeId(2), 7, None, false);
        let heard = p.hear(t(60), NodeId(3), 9, None, true);
        assert_eq!(
            heard,
            Heard {
                admitted: false,
                conflict: Some(true)
            }
        );
        // Refused protocol messages are answered with a hello; the sender is probed for
        // its details (its hello names the fields that differ).
        assert_eq!(drain(&mut p), vec![(3, false)]);
        p.probe(t(60));
        assert_eq!(drain(&mut p), vec![(3, true)]);
        // Rate-limited: another refused batch right away gets no second answer.
        p.hear(t(70), NodeId(3), 9, None, true);
        assert!(drain(&mut p).is_empty());
        // Its hello settles it; still a conflict.
        p.hear(t(80), NodeId(3), 9, Some(false), false);
        p.probe(t(200));
        assert!(drain(&mut p).is_empty());
        assert!(p.in_conflict());
        assert_eq!(
            p.hear(t(300), NodeId(3), 7, None, true),
            Heard {
                admitted: true,
                conflict: Some(false)
            }
        );
        assert!(!p.in_conflict());
    }

    #[test]
    fn outsiders_get_answers_but_are_never_admitted_nor_a_conflict() {
        let mut p = peers(3, 9, &[3, 4, 5], &[3, 4, 5]);
        drain(&mut p);
        let heard = p.hear(t(10), NodeId(1), 7, Some(true), false);
        assert_eq!(
            heard,
            Heard {
                admitted: false,
                conflict: None
            }
        );
        assert_eq!(drain(&mut p), vec![(1, false)]);
        // An observer with another fingerprint is refused but is no conflict either.
        let mut q = peers(1, 7, &[1, 2, 3, 4], &[1, 2, 3]);
        assert_eq!(q.hear(t(1), NodeId(4), 9, None, true).conflict, None);
        assert!(!q.in_conflict());
    }
}
