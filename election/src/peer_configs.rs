//! What the runtime knows of its peers' cluster fingerprints: for the error log, the
//! events and `status`. (The core decides what is admitted; this only reports it.)

use std::collections::BTreeMap;

use gen_paxos_core::{Fingerprint, NodeId};
use serde::{Deserialize, Serialize};
use tracing::{error, info};

/// Nodes outside the configuration remembered at once (the oldest entry is forgotten).
const MAX_OUTSIDERS: usize = 64;

/// One peer's configuration as this node sees it, in a [`crate::StatusReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PeerConfig {
    /// The peer.
    pub node: NodeId,
    /// Whether it is a voter or observer of this node's configuration (otherwise it is a
    /// node that contacted this one and lists it as a member).
    pub member: bool,
    /// The fingerprint digest it last sent, if it sent anything.
    pub fingerprint: Option<u64>,
    /// Whether that digest is this node's own (its messages are admitted).
    pub matches: bool,
    /// For a mismatch, each differing field as `field: ours X, theirs Y` (empty until its
    /// hello with the details arrived).
    pub differences: Vec<String>,
    /// Frames refused from it because its fingerprint differed.
    pub refused: u64,
}

#[derive(Debug, Clone)]
struct Record {
    member: bool,
    digest: Option<u64>,
    differences: Vec<String>,
    refused: u64,
    /// The digest whose mismatch was last logged (logged once per peer and change).
    logged: Option<u64>,
    /// Order of first contact, to forget the oldest outsider.
    seen: u64,
}

/// The driver's book of peer fingerprints.
#[derive(Debug)]
pub(crate) struct PeerConfigs {
    me: NodeId,
    ours: Fingerprint,
    digest: u64,
    records: BTreeMap<NodeId, Record>,
    seen: u64,
}

/// A change worth an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Mismatch(Vec<String>),
    Matched,
}

impl PeerConfigs {
    pub(crate) fn new(me: NodeId, ours: Fingerprint, members: &[NodeId]) -> Self {
        let digest = ours.digest();
        let records = members
            .iter()
            .filter(|&&m| m != me)
            .map(|&m| {
                let record = Record {
                    member: true,
                    digest: None,
                    differences: Vec::new(),
                    refused: 0,
                    logged: None,
                    seen: 0,
                };
                (m, record)
            })
            .collect();
        PeerConfigs {
            me,
            ours,
            digest,
            records,
            seen: 0,
        }
    }

    pub(crate) fn fingerprint(&self) -> &Fingerprint {
        &self.ours
    }

    fn record(&mut self, peer: NodeId) -> &mut Record {
        if !self.records.contains_key(&peer) {
            let outsiders = self.records.values().filter(|r| !r.member).count();
            if outsiders >= MAX_OUTSIDERS
                && let Some(oldest) = self
                    .records
                    .iter()
                    .filter(|(_, r)| !r.member)
                    .min_by_key(|(_, r)| r.seen)
                    .map(|(id, _)| *id)
            {
                self.records.remove(&oldest);
            }
            self.seen += 1;
        }
        let seen = self.seen;
        self.records.entry(peer).or_insert_with(|| Record {
            member: false,
            digest: None,
            differences: Vec::new(),
            refused: 0,
            logged: None,
            seen,
        })
    }

    /// A frame from `peer` whose header carried `digest`; `refused` if it was dropped for
    /// it. Returns a change to announce.
    pub(crate) fn frame(&mut self, peer: NodeId, digest: u64, refused: bool) -> Option<Change> {
        let ours = self.digest;
        let me = self.me;
        let r = self.record(peer);
        if refused {
            r.refused += 1;
        }
        let before = r.digest;
        r.digest = Some(digest);
        if digest == ours && before.is_some_and(|d| d != ours) {
            r.differences.clear();
            r.logged = None;
            info!(node = %me, %peer, "peer's cluster configuration matches again: its messages are admitted");
            return Some(Change::Matched);
        }
        None
    }

    /// A hello from `peer` with its whole fingerprint: logs a mismatch at error level, once
    /// per peer and fingerprint.
    pub(crate) fn hello(&mut self, peer: NodeId, theirs: &Fingerprint) -> Option<Change> {
        let digest = theirs.digest();
        let change = self.frame(peer, digest, digest != self.digest);
        if digest == self.digest {
            return change;
        }
        let differences: Vec<String> = self
            .ours
            .differences(theirs)
            .iter()
            .map(ToString::to_string)
            .collect();
        let me = self.me;
        let r = self.record(peer);
        r.differences = differences.clone();
        if r.logged == Some(digest) {
            return None;
        }
        r.logged = Some(digest);
        let role = if r.member {
            "a member of this cluster"
        } else {
            "not in this node's configuration, but lists it"
        };
        error!(
            node = %me,
            %peer,
            "peer {peer} ({role}) runs with another cluster configuration; all its messages are refused until they match: {}",
            differences.join("; ")
        );
        Some(Change::Mismatch(differences))
    }

    /// Every peer heard from (and every member), for `status`.
    pub(crate) fn snapshot(&self) -> Vec<PeerConfig> {
        self.records
            .iter()
            .map(|(&node, r)| PeerConfig {
                node,
                member: r.member,
                fingerprint: r.digest,
                matches: r.digest == Some(self.digest),
                differences: r.differences.clone(),
                refused: r.refused,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn fp(voters: &[u64]) -> Fingerprint {
        let ids: Vec<NodeId> = voters.iter().copied().map(NodeId).collect();
        Fingerprint::new("", 2, &ids, &[], Duration::from_secs(2), 0.001)
    }

    #[test]
    fn a_mismatch_is_announced_once_per_fingerprint_and_a_match_clears_it() {
        let ours = fp(&[1, 2, 3]);
        let mut book =
            PeerConfigs::new(NodeId(1), ours.clone(), &[NodeId(1), NodeId(2), NodeId(3)]);
        let theirs = fp(&[3, 4, 5]);
        assert_eq!(
            book.hello(NodeId(3), &theirs),
            Some(Change::Mismatch(vec![
                "voters: ours [1,2,3], theirs [3,4,5]".into()
            ]))
        );
        assert_eq!(book.hello(NodeId(3), &theirs), None, "logged once");
        assert_eq!(book.frame(NodeId(3), theirs.digest(), true), None);
        let snap = book.snapshot();
        let three = snap.iter().find(|p| p.node == NodeId(3)).expect("listed");
        assert!(three.member && !three.matches);
        assert_eq!(three.refused, 3, "two hellos and a frame");
        assert_eq!(
            book.frame(NodeId(3), ours.digest(), false),
            Some(Change::Matched)
        );
        assert_eq!(
            book.hello(NodeId(3), &fp(&[3])),
            Some(Change::Mismatch(vec![
                "voters: ours [1,2,3], theirs [3]".into()
            ])),
            "a new mismatch is announced again"
        );
        // Outsiders are listed, bounded.
        for id in 100..200 {
            book.hello(NodeId(id), &theirs);
        }
        let outsiders = book.snapshot().iter().filter(|p| !p.member).count();
        assert_eq!(outsiders, MAX_OUTSIDERS);
    }
}
