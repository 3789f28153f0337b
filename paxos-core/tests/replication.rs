//! The replicated log and `ask` through `Node` (docs/REPLICATION.md): the lease admits the
//! log's proposer (R1), recovery comes before appends (R2), the runtime makes records
//! durable before replies leave (R3), every replica applies the same entries in order
//! (R5), an acknowledged append survives a failover, and `ask` answers alike everywhere.

use std::collections::BTreeMap;
use std::time::Duration;

use gen_paxos_core::ask::AskEvent;
use gen_paxos_core::log::{AppendError, LogEvent, Value};
use gen_paxos_core::{
    Config, Event, Incarnation, LeaseName, Node, NodeId, Record, Timestamp, UnsafeRule,
};

const LEASE: Duration = Duration::from_secs(1);
const STEP: Duration = Duration::from_millis(5);

fn lease() -> LeaseName {
    LeaseName::new("db").expect("valid")
}

struct Host {
    node: Node,
    /// What the runtime made durable.
    disk: Vec<Record>,
    events: Vec<Event>,
}

/// Three nodes on a lossless network with instant delivery and instant, confirmed writes
/// (unless `hold_writes`), stepping time by `STEP`.
struct Cluster {
    hosts: BTreeMap<NodeId, Host>,
    now: Timestamp,
    down: Vec<NodeId>,
    hold_writes: bool,
    /// Links (from, to) that lose everything.
    cut: Vec<(NodeId, NodeId)>,
    rule: Option<UnsafeRule>,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster::with(None, [Some(3); 3])
    }

    /// Three nodes breaking `rule`, each standing with its priority (`None`: no candidate).
    fn with(rule: Option<UnsafeRule>, priorities: [Option<u8>; 3]) -> Cluster {
        let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let mut hosts = BTreeMap::new();
        for &id in &ids {
            let priority = priorities[id.0 as usize - 1];
            hosts.insert(
                id,
                Host {
                    node: start_with(id, &ids, Timestamp::ZERO, Vec::new(), rule, priority),
                    disk: Vec::new(),
                    events: Vec::new(),
                },
            );
        }
        Cluster {
            hosts,
            now: Timestamp::ZERO,
            down: Vec::new(),
            hold_writes: false,
            cut: Vec::new(),
            rule,
        }
    }

    /// Restarts `id` from `disk` (its own, or an empty one for a host that lost it).
    fn restart(&mut self, id: NodeId, disk: Vec<Record>, priority: Option<u8>) {
        let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let (now, rule) = (self.now, self.rule);
        let host = self.hosts.get_mut(&id).expect("host");
        host.node = start_with(id, &ids, now, disk.clone(), rule, priority);
        host.disk = disk;
        host.events.clear();
        self.down.retain(|d| *d != id);
    }

    /// Moves every output: writes (confirmed at once), events, messages; until quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            let mut wire = Vec::new();
            for (&id, host) in &mut self.hosts {
                if self.down.contains(&id) {
                    continue;
                }
                if !self.hold_writes {
                    while let Some(req) = host.node.poll_persist() {
                        host.disk.extend(req.records);
                        host.node.handle_persisted(self.now, req.token);
                        moved = true;
                    }
                }
                while let Some(e) = host.node.poll_event() {
                    host.events.push(e);
                }
                while let Some(t) = host.node.poll_transmit() {
                    wire.push((id, t));
                }
                while host.node.poll_hello().is_some() {}
            }
            for (from, t) in wire {
                moved = true;
                if self.down.contains(&t.to)
                    || self.down.contains(&from)
                    || self.cut.contains(&(from, t.to))
                {
                    continue;
                }
                if let Some(host) = self.hosts.get_mut(&t.to) {
                    let digest = host.node.fingerprint_digest();
                    host.node.handle_message(self.now, from, digest, t.messages);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Advances time to `until`, firing timers on the way.
    fn run_until(&mut self, until: Timestamp) {
        while self.now < until {
            self.now = self.now + STEP;
            for (id, host) in &mut self.hosts {
                if !self.down.contains(id) {
                    host.node.handle_timeout(self.now);
                }
            }
            self.pump();
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn master(&self) -> Option<NodeId> {
        self.hosts
            .iter()
            .find(|(id, h)| !self.down.contains(id) && h.node.is_master(self.now, &lease()))
            .map(|(id, _)| *id)
    }

    fn ready_master(&mut self) -> NodeId {
        for _ in 0..2000 {
            if let Some(m) = self.master()
                && self.hosts[&m].node.is_ready(self.now, &lease())
            {
                return m;
            }
            self.run_for(STEP);
        }
        panic!("no ready master");
    }

    fn append(&mut self, id: NodeId, text: &str) -> Result<u64, AppendError> {
        let now = self.now;
        let r = self
            .hosts
            .get_mut(&id)
            .map_or(Err(AppendError::NotMaster), |h| {
                h.node.append(now, &lease(), text.as_bytes())
            });
        self.pump();
        r
    }

    fn chosen(&self, id: NodeId) -> Vec<(u64, Value)> {
        self.hosts[&id]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Log {
                    event: LogEvent::Chosen { slot, value },
                    ..
                } => Some((*slot, value.clone())),
                _ => None,
            })
            .collect()
    }

    fn acked(&self, id: NodeId) -> Vec<u64> {
        self.hosts[&id]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Log {
                    event: LogEvent::Appended { slot },
                    ..
                } => Some(*slot),
                _ => None,
            })
            .collect()
    }
}

fn start(id: NodeId, ids: &[NodeId], now: Timestamp, disk: Vec<Record>) -> Node {
    start_with(id, ids, now, disk, None, Some(3))
}

fn start_with(
    id: NodeId,
    ids: &[NodeId],
    now: Timestamp,
    disk: Vec<Record>,
    rule: Option<UnsafeRule>,
    priority: Option<u8>,
) -> Node {
    let mut config = Config::new(id, ids.to_vec());
    config.set_lease_duration(LEASE);
    config.unsafe_rule = rule;
    let mut node = Node::new(config, now, Incarnation(id.0 * 7 + now.as_nanos()), 1, id.0)
        .expect("valid config");
    node.restore(disk);
    node.enable_log(&lease()).expect("a voter");
    node.join(now, lease(), priority).expect("joins");
    node
}

fn data(text: &str) -> Value {
    Value::Data(text.as_bytes().into())
}

#[test]
fn the_master_recovers_then_appends_reach_every_replica_in_order() {
    let mut c = Cluster::new();
    assert_eq!(c.append(NodeId(1), "early"), Err(AppendError::NotMaster));
    let m = c.ready_master();
    for text in ["a", "b", "c"] {
        assert!(c.append(m, text).is_ok());
    }
    c.run_for(Duration::from_millis(50));
    assert_eq!(c.acked(m), vec![0, 1, 2]);
    let want = vec![(0, data("a")), (1, data("b")), (2, data("c"))];
    for id in (1..=3).map(NodeId) {
        assert_eq!(c.chosen(id), want, "node {id}");
    }
    // R3: what an acceptor answered is on its disk.
    let other = (1..=3)
        .map(NodeId)
        .find(|id| *id != m)
        .expect("another node");
    let accepted = c.hosts[&other]
        .disk
        .iter()
        .filter(|r| matches!(r, Record::Accepted { .. }))
        .count();
    assert!(accepted >= 3, "{accepted} acceptances written");
    // R7: a snapshot lets the entries below it go, never past what is known chosen.
    let now = c.now;
    let node = &mut c.hosts.get_mut(&other).expect("host").node;
    assert_eq!(node.compact_log(now, &lease(), 2), 2);
    assert_eq!(node.compact_log(now, &lease(), 99), 3);
}

#[test]
fn acknowledged_appends_survive_a_crash_of_the_master_and_a_restart_from_disk() {
    let mut c = Cluster::new();
    let first = c.ready_master();
    for text in ["a", "b"] {
        assert!(c.append(first, text).is_ok());
    }
    c.run_for(Duration::from_millis(20));
    assert_eq!(c.acked(first), vec![0, 1]);
    // The master crashes; another is elected after the lease and recovers the log.
    c.down.push(first);
    c.run_for(LEASE * 3);
    let second = c.ready_master();
    assert_ne!(second, first);
    assert_eq!(c.chosen(second)[..2], [(0, data("a")), (1, data("b"))]);
    assert!(c.append(second, "c").is_ok());
    c.run_for(Duration::from_millis(20));
    let slots: Vec<u64> = c.acked(second);
    assert_eq!(
        slots.last(),
        Some(&2),
        "after the recovered entries, not over them"
    );
    // The old master restarts from its disk and catches up.
    let disk = c.hosts[&first].disk.clone();
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let now = c.now;
    let host = c.hosts.get_mut(&first).expect("host");
    host.node = start(first, &ids, now, disk);
    host.events.clear();
    c.down.clear();
    assert!(c.append(second, "d").is_ok());
    c.run_for(Duration::from_millis(100));
    let replayed: Vec<Value> = c.chosen(first).into_iter().map(|(_, v)| v).collect();
    assert_eq!(replayed, vec![data("a"), data("b"), data("c"), data("d")]);
}

#[test]
fn no_reply_leaves_before_the_runtime_confirms_the_write() {
    let mut c = Cluster::new();
    let m = c.ready_master();
    c.hold_writes = true;
    assert!(c.append(m, "x").is_ok());
    c.run_for(Duration::from_millis(50));
    assert!(
        c.acked(m).is_empty(),
        "no acceptance was durable, so none was sent"
    );
    c.hold_writes = false;
    c.run_for(Duration::from_millis(50));
    assert_eq!(c.acked(m), vec![0]);
}

#[test]
fn ask_answers_the_same_value_on_every_node() {
    let mut c = Cluster::new();
    c.run_for(LEASE * 2);
    let key = LeaseName::new("config").expect("valid");
    let now = c.now;
    for (id, value) in [(1, "one"), (2, "two"), (3, "three")] {
        let host = c.hosts.get_mut(&NodeId(id)).expect("host");
        host.node.ask(now, &key, value.as_bytes());
    }
    c.run_for(Duration::from_millis(500));
    let answers: Vec<Vec<u8>> = (1..=3)
        .map(NodeId)
        .filter_map(|id| {
            c.hosts[&id].events.iter().find_map(|e| match e {
                Event::Ask(AskEvent::Decided { value, .. }) => Some(value.to_vec()),
                _ => None,
            })
        })
        .collect();
    assert_eq!(answers.len(), 3, "every node got an answer");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    // Every node was told the decision: a local read (maybe stale) has it too.
    for id in (1..=3).map(NodeId) {
        let (instance, value) = c.hosts[&id].node.ask_local(&key);
        assert_eq!(
            (instance, value.map(|v| v.to_vec())),
            (0, Some(answers[0].clone()))
        );
    }
}

// ---- the log's known mistakes, each shape with the rule intact and broken ---------------

/// Node 1 (priority 3) is master of a cluster breaking `rule` whose node 2 (priority 0)
/// hears nothing while node 1 appends `texts` (acknowledged by acceptors 1 and 3); node 3
/// stands for nothing. Returns the cluster, links restored.
fn acknowledged_without_node_2(rule: Option<UnsafeRule>, texts: &[&str]) -> Cluster {
    let mut c = Cluster::with(rule, [Some(3), Some(0), None]);
    let first = c.ready_master();
    assert_eq!(first, NodeId(1));
    c.cut = vec![(NodeId(1), NodeId(2)), (NodeId(3), NodeId(2))];
    for text in texts {
        assert!(c.append(first, text).is_ok());
    }
    c.run_for(Duration::from_millis(20));
    assert_eq!(c.acked(first), (0..texts.len() as u64).collect::<Vec<_>>());
    c.cut.clear();
    c
}

/// Node 1 is master and appends "a" and "b" while node 2 hears nothing (acked by 1 and 3);
/// node 1 crashes, node 2 (the only other candidate) takes over knowing none of it, and
/// appends "c". Returns what each live node delivered.
fn failover_to_an_uninformed_master(rule: Option<UnsafeRule>) -> (Vec<Value>, Vec<Value>) {
    let mut c = acknowledged_without_node_2(rule, &["a", "b"]);
    c.down.push(NodeId(1));
    c.run_for(LEASE * 3);
    let second = c.ready_master();
    assert_eq!(second, NodeId(2));
    assert!(c.append(second, "c").is_ok());
    c.run_for(Duration::from_millis(50));
    let values = |id| c.chosen(id).into_iter().map(|(_, v)| v).collect::<Vec<_>>();
    (values(NodeId(2)), values(NodeId(3)))
}

#[test]
fn scenario_recovery_keeps_what_an_earlier_master_acknowledged() {
    let (two, three) = failover_to_an_uninformed_master(None);
    let want = vec![data("a"), data("b"), data("c")];
    assert_eq!((two, three), (want.clone(), want));
}

#[test]
fn scenario_skip_recovery_overwrites_an_acknowledged_append() {
    let (two, three) = failover_to_an_uninformed_master(Some(UnsafeRule::SkipRecovery));
    assert_eq!(
        two.first(),
        Some(&data("c")),
        "slot 0 chosen again, with another value"
    );
    assert_eq!(
        three.first(),
        Some(&data("a")),
        "where node 3 delivered \"a\""
    );
}

#[test]
fn scenario_no_repair_overwrites_an_acknowledged_append() {
    let (two, three) = failover_to_an_uninformed_master(Some(UnsafeRule::NoRepair));
    assert_eq!(two.first(), Some(&data("c")));
    assert_eq!(three.first(), Some(&data("a")));
}

/// "a" is chosen by acceptors 1 and 3 (node 2 hears nothing); node 3 crashes and comes
/// back with `disk` (its own, or none); node 1 crashes; node 2 takes over and appends "c".
fn failover_after_a_restart(keep_disk: bool) -> Vec<Value> {
    let mut c = acknowledged_without_node_2(None, &["a"]);
    let disk = if keep_disk {
        c.hosts[&NodeId(3)].disk.clone()
    } else {
        Vec::new() // what the forgetful-acceptor switch does to a crashed host
    };
    c.restart(NodeId(3), disk, None);
    c.down.push(NodeId(1));
    c.run_for(LEASE * 3);
    let second = c.ready_master();
    assert_eq!(second, NodeId(2));
    assert!(c.append(second, "c").is_ok());
    c.run_for(Duration::from_millis(50));
    c.chosen(second).into_iter().map(|(_, v)| v).collect()
}

#[test]
fn scenario_an_acceptor_that_keeps_its_disk_keeps_what_it_accepted() {
    assert_eq!(failover_after_a_restart(true), vec![data("a"), data("c")]);
}

#[test]
fn scenario_a_forgetful_acceptor_loses_an_acknowledged_append() {
    assert_eq!(
        failover_after_a_restart(false),
        vec![data("c")],
        "the acknowledged \"a\" is gone"
    );
}

/// Node 2 wins the lease knowing nothing of the two appends node 1 had acknowledged, and
/// its recovery cannot finish yet (its first write is not confirmed). Returns whether it
/// would answer a read, and the state such a read would see.
fn read_on_a_master_still_recovering(rule: Option<UnsafeRule>) -> (bool, Option<u64>) {
    let mut c = acknowledged_without_node_2(rule, &["a", "b"]);
    c.down.push(NodeId(1));
    c.hold_writes = true;
    for _ in 0..2000 {
        if c.master() == Some(NodeId(2)) {
            break;
        }
        c.run_for(STEP);
    }
    assert_eq!(c.master(), Some(NodeId(2)));
    let node = &c.hosts[&NodeId(2)].node;
    (node.is_ready(c.now, &lease()), node.log_applied(&lease()))
}

#[test]
fn scenario_a_master_answers_reads_only_once_recovered() {
    assert_eq!(read_on_a_master_still_recovering(None), (false, Some(0)));
}

#[test]
fn scenario_stale_read_answers_before_recovery_and_misses_acknowledged_appends() {
    // It would answer from a state of 0 slots, though slots 0 and 1 were acknowledged.
    assert_eq!(
        read_on_a_master_still_recovering(Some(UnsafeRule::StaleRead)),
        (true, Some(0))
    );
}
