//! Three `Node`s with the log on, a hand-driven network and hand-driven disks, for the
//! replicated log's tests (`replication.rs`) and its scenarios (`log_scenarios.rs`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use gen_paxos_core::log::{AppendError, LogEvent, Value};
use gen_paxos_core::{
    Config, Envelope, Event, Incarnation, LeaseName, Message, Node, NodeId, Record, Timestamp,
    UnsafeRule,
};

pub const LEASE: Duration = Duration::from_secs(1);
pub const STEP: Duration = Duration::from_millis(5);

pub fn lease() -> LeaseName {
    LeaseName::new("db").expect("valid")
}

pub struct Host {
    pub node: Node,
    /// What the runtime made durable.
    pub disk: Vec<Record>,
    pub events: Vec<Event>,
}

/// Three nodes on a lossless network with instant delivery and instant, confirmed writes
/// (unless held), stepping time by `STEP`.
pub struct Cluster {
    pub hosts: BTreeMap<NodeId, Host>,
    pub now: Timestamp,
    pub down: Vec<NodeId>,
    /// Every host's writes wait (nothing reaches a disk, nothing is confirmed).
    pub hold_writes: bool,
    /// These hosts' writes wait.
    pub held: Vec<NodeId>,
    /// Links (from, to) that lose everything.
    pub cut: Vec<(NodeId, NodeId)>,
    /// Messages (from, message) this says yes to are lost.
    pub lose: Option<fn(NodeId, &Message) -> bool>,
    /// Messages this says yes to arrive twice.
    pub duplicate: Option<fn(&Message) -> bool>,
    pub rule: Option<UnsafeRule>,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster::with(None, [Some(3); 3])
    }

    /// Three nodes breaking `rule`, each standing with its priority (`None`: no candidate).
    pub fn with(rule: Option<UnsafeRule>, priorities: [Option<u8>; 3]) -> Cluster {
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
            held: Vec::new(),
            cut: Vec::new(),
            lose: None,
            duplicate: None,
            rule,
        }
    }

    /// Restarts `id` from `disk` (its own, or an empty one for a host that lost it).
    pub fn restart(&mut self, id: NodeId, disk: Vec<Record>, priority: Option<u8>) {
        let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let (now, rule) = (self.now, self.rule);
        let host = self.hosts.get_mut(&id).expect("host");
        host.node = start_with(id, &ids, now, disk.clone(), rule, priority);
        host.disk = disk;
        host.events.clear();
        self.down.retain(|d| *d != id);
    }

    /// Moves every output: writes (confirmed at once), events, messages; until quiet.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            let mut wire = Vec::new();
            for (&id, host) in &mut self.hosts {
                if self.down.contains(&id) {
                    continue;
                }
                if !self.hold_writes && !self.held.contains(&id) {
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
                let (lose, duplicate) = (self.lose, self.duplicate);
                let mut messages: Vec<Envelope> = Vec::new();
                for e in t.messages {
                    if lose.is_some_and(|lose| lose(from, &e.message)) {
                        continue;
                    }
                    if duplicate.is_some_and(|dup| dup(&e.message)) {
                        messages.push(e.clone());
                    }
                    messages.push(e);
                }
                if let Some(host) = self.hosts.get_mut(&t.to) {
                    let digest = host.node.fingerprint_digest();
                    host.node.handle_message(self.now, from, digest, messages);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Advances time to `until`, firing timers on the way.
    pub fn run_until(&mut self, until: Timestamp) {
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

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    pub fn master(&self) -> Option<NodeId> {
        self.hosts
            .iter()
            .find(|(id, h)| !self.down.contains(id) && h.node.is_master(self.now, &lease()))
            .map(|(id, _)| *id)
    }

    pub fn ready_master(&mut self) -> NodeId {
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

    pub fn append(&mut self, id: NodeId, text: &str) -> Result<u64, AppendError> {
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

    pub fn chosen(&self, id: NodeId) -> Vec<(u64, Value)> {
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

    pub fn acked(&self, id: NodeId) -> Vec<u64> {
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

pub fn start(id: NodeId, ids: &[NodeId], now: Timestamp, disk: Vec<Record>) -> Node {
    start_with(id, ids, now, disk, None, Some(3))
}

pub fn start_with(
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

pub fn data(text: &str) -> Value {
    Value::Data(text.as_bytes().into())
}

impl Cluster {
    /// The events of `id`'s log since it started.
    pub fn log_events(&self, id: NodeId) -> Vec<LogEvent> {
        self.hosts[&id]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Log { event, .. } => Some(event.clone()),
                _ => None,
            })
            .collect()
    }

    /// Node 2 (the only other candidate left) takes over, recovers and appends `text`;
    /// returns what it delivered.
    pub fn node_2_takes_over_and_appends(&mut self, text: &str) -> Vec<Value> {
        self.run_for(LEASE * 3);
        assert_eq!(self.ready_master(), NodeId(2));
        assert!(self.append(NodeId(2), text).is_ok());
        self.run_for(Duration::from_millis(20));
        self.values(NodeId(2))
    }

    /// The values `id` delivered, in order.
    pub fn values(&self, id: NodeId) -> Vec<Value> {
        self.chosen(id).into_iter().map(|(_, v)| v).collect()
    }
}
