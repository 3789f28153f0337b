//! `gen-paxos demo`: three nodes over QUIC with mutual TLS in one process, and the story of
//! an election told as a timeline: first election, renewals, a graceful resign, the master
//! cut off from the others, replicated state written by the master, the master crashing
//! (and the next one going on with every acknowledged write), and many named leases.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use clap::Args;
use gen_paxos_election::{
    Ballot, Candidacy, Delivery, Election, ElectionEvent, Incoming, NoCallbacks, NodeId, Transport,
    Wire,
};
use gen_paxos_quic::{CaCertificate, Identity, QuicTransport, Settings};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::common::{event_json, parse_duration};
use super::demo_ledger;
use gen_paxos_election::storage::DiskStorage;

/// Arguments of `gen-paxos demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Lease duration.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub lease_duration: Duration,
    /// How many nodes (3 to 7).
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Print every event as a JSON line (the `gen-paxos node` format) plus scene summaries.
    #[arg(long)]
    pub json: bool,
}

const LEASE: &str = "default";

/// A transport that can be cut off from every peer (both directions), for the partition
/// scene.
struct Switchable<T> {
    inner: T,
    cut: Arc<AtomicBool>,
}

#[async_trait]
impl<T: Transport<Wire>> Transport<Wire> for Switchable<T> {
    fn local_id(&self) -> NodeId {
        self.inner.local_id()
    }
    fn send(&self, to: NodeId, message: Wire, delivery: Delivery) {
        if !self.cut.load(Ordering::Relaxed) {
            self.inner.send(to, message, delivery);
        }
    }
    async fn recv(&self) -> Option<Incoming<Wire>> {
        loop {
            let incoming = self.inner.recv().await?;
            if !self.cut.load(Ordering::Relaxed) {
                return Some(incoming);
            }
        }
    }
    fn try_recv(&self) -> Option<Incoming<Wire>> {
        loop {
            let incoming = self.inner.try_recv()?;
            if !self.cut.load(Ordering::Relaxed) {
                return Some(incoming);
            }
        }
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}

struct DemoNode {
    id: NodeId,
    election: Election,
    cut: Arc<AtomicBool>,
    /// Set when the node "crashes": its events are no longer told.
    dead: Arc<AtomicBool>,
    alive: bool,
}

impl DemoNode {
    /// A crash as the others see it: every link cut at once, so no Release and no renewal
    /// leaves; then the node is shut down behind the cut, silently, as a dead process
    /// would be.
    fn crash(&mut self) {
        self.dead.store(true, Ordering::Relaxed);
        self.cut.store(true, Ordering::Relaxed);
        self.alive = false;
        let election = self.election.clone();
        tokio::spawn(async move { election.shutdown().await });
    }
}

type Log = Arc<Mutex<Vec<(Instant, NodeId, ElectionEvent)>>>;

struct Cluster {
    nodes: Vec<DemoNode>,
    log: Log,
    notify: Arc<Notify>,
    start: Instant,
    json: bool,
}

impl Cluster {
    fn ms(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64() * 1000.0
    }

    fn say(&self, text: &str) {
        if self.json {
            outln!("{}", serde_json::json!({"demo": text}));
        } else {
            outln!("{text}");
        }
    }

    /// The first `Elected` of `lease` at or after `since`, by a node other than `not`.
    async fn elected_after(
        &self,
        lease: &str,
        since: Instant,
        not: Option<NodeId>,
        limit: Duration,
    ) -> Result<(Instant, NodeId, Ballot)> {
        let until = Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            let found = self
                .log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find_map(|(at, id, e)| match e {
                    ElectionEvent::Elected {
                        lease: l, token, ..
                    } if *at >= since && l.as_str() == lease && Some(*id) != not => {
                        Some((*at, *id, *token))
                    }
                    _ => None,
                });
            if let Some(found) = found {
                return Ok(found);
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                bail!("no node was elected for {lease} within {limit:?}");
            }
        }
    }

    fn surrendered_after(&self, node: NodeId, since: Instant) -> Option<(Instant, String)> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find_map(|(at, id, e)| match e {
                ElectionEvent::Surrendered { lease, reason, .. }
                    if *id == node && *at >= since && lease.as_str() == LEASE =>
                {
                    Some((*at, reason.as_str().to_string()))
                }
                _ => None,
            })
    }

    fn count_renewals(&self, node: NodeId, since: Instant) -> (usize, Option<Ballot>) {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let renewals: Vec<Ballot> = log
            .iter()
            .filter_map(|(at, id, e)| match e {
                ElectionEvent::Renewed { lease, token, .. }
                    if *id == node && *at >= since && lease.as_str() == LEASE =>
                {
                    Some(*token)
                }
                _ => None,
            })
            .collect();
        (renewals.len(), renewals.last().copied())
    }

    fn node(&self, id: NodeId) -> Result<&DemoNode> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .context("unknown node")
    }
}

fn token(b: &Ballot) -> String {
    format!("{:?}", b.to_array())
}

/// Runs the demo; fails if a safety check does not hold.
pub async fn run(args: &DemoArgs) -> Result<()> {
    if !(3..=7).contains(&args.nodes) {
        bail!("--nodes must be 3 to 7, got {}", args.nodes);
    }
    let lease = args.lease_duration;
    if lease < Duration::from_millis(200) || lease > Duration::from_secs(3) {
        bail!("--lease-duration must be between 200ms and 3s for the demo, got {lease:?}");
    }
    let dir = std::env::temp_dir().join(format!("gen-paxos-demo-{}", std::process::id()));
    let ids: Vec<NodeId> = (1..=args.nodes).map(NodeId).collect();
    let result = story(args, &dir, &ids).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn story(args: &DemoArgs, dir: &std::path::Path, ids: &[NodeId]) -> Result<()> {
    let lease = args.lease_duration;
    gen_paxos_quic::write_cluster_certs(dir, ids, true)
        .context("cannot write the demo certificates")?;
    let ca = CaCertificate::load(&dir.join("ca.pem"))?;
    let sockets: Vec<UdpSocket> = ids
        .iter()
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addrs: Vec<SocketAddr> = sockets
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    let config = gen_paxos_election::Config::new(ids[0], ids.to_vec()).with_lease_duration(lease);
    let (d_a, margin) = (config.acceptor_duration(), config.surrender_margin());

    let mut c = Cluster {
        nodes: Vec::new(),
        log: Arc::default(),
        notify: Arc::new(Notify::new()),
        start: Instant::now(),
        json: args.json,
    };
    c.say(&format!(
        "gen-paxos demo: {} nodes over QUIC with mutual TLS on 127.0.0.1 ({}), lease {lease:?}, acceptor exclusion D_A {:.0} ms, quarantine {:.0} ms, surrender margin {margin:?}",
        ids.len(),
        addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
        d_a.as_secs_f64() * 1e3,
        d_a.as_secs_f64() * 1e3
    ));

    // Scene 1: cold start.
    c.say("\n[1] First election. Every node starts silent for the quarantine (a restarted acceptor may have forgotten a promise), then one wins.");
    for ((&id, socket), _) in ids.iter().zip(sockets).zip(&addrs) {
        let identity = Identity::load(
            &dir.join(format!("node-{id}.pem")),
            &dir.join(format!("node-{id}.key")),
        )?;
        let mut quic =
            gen_paxos_quic::Config::new(id, addrs[(id.0 - 1) as usize], identity, ca.clone())
                .with_settings(Settings::for_lease(lease));
        for (&peer, &addr) in ids.iter().zip(&addrs).filter(|(p, _)| **p != id) {
            quic = quic.with_peer(peer, addr);
        }
        let cut = Arc::new(AtomicBool::new(false));
        let transport = Switchable {
            inner: QuicTransport::<Wire>::with_socket(quic, socket)?,
            cut: cut.clone(),
        };
        let storage = DiskStorage::create(dir.join(format!("data-{id}")))?;
        let election = Election::start_with_storage(
            gen_paxos_election::Config::new(id, ids.to_vec()).with_lease_duration(lease),
            transport,
            storage,
        )?;
        let dead = Arc::new(AtomicBool::new(false));
        let (log, notify, mut events, json, start, silenced) = (
            c.log.clone(),
            c.notify.clone(),
            election.events(),
            args.json,
            c.start,
            dead.clone(),
        );
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if silenced.load(Ordering::Relaxed) {
                    break;
                }
                let now = Instant::now();
                if json {
                    if let Some(line) = event_json(id, &event) {
                        outln!("{line}");
                    }
                } else {
                    timeline(start, now, id, &event);
                }
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((now, id, event));
                notify.notify_waiters();
            }
        });
        c.nodes.push(DemoNode {
            id,
            election,
            cut,
            dead,
            alive: true,
        });
    }
    let t0 = c.start;
    for n in &c.nodes {
        n.election
            .join(LEASE, NoCallbacks, Candidacy::candidate())
            .await?;
    }
    let (at, master, first_token) = c.elected_after(LEASE, t0, None, lease * 10).await?;
    c.say(&format!(
        "    -> node {master} elected {:.0} ms after start (quarantine {:.0} ms); fencing token {}",
        c.ms(at),
        d_a.as_secs_f64() * 1e3,
        token(&first_token)
    ));

    // Scene 2: renewals.
    c.say(&format!("\n[2] Renewals. The master renews when a third of its lease has elapsed, {:?} apart, so it never lapses.", lease / 3));
    tokio::time::sleep(lease * 3).await;
    let (renewals, last) = c.count_renewals(master, at);
    let still = c.node(master)?.election.is_master(LEASE);
    c.say(&format!(
        "    -> node {master} renewed {renewals} times in {:?} and is {} master; token now {}",
        lease * 3,
        if still { "still" } else { "NO LONGER" },
        last.map_or_else(|| "unchanged".into(), |t| token(&t))
    ));

    // Scene 3: graceful resign.
    c.say("\n[3] Graceful resign. The master stops acting, releases the lease, and a waiting candidate takes it at once.");
    let t = Instant::now();
    c.node(master)?.election.resign(LEASE).await?;
    let (at, next, _) = c.elected_after(LEASE, t, Some(master), lease * 5).await?;
    c.say(&format!("    -> node {next} elected {:.1} ms after node {master} resigned (no waiting for the lease to run out)", (at - t).as_secs_f64() * 1e3));
    let master = next;

    // Scene 4: the master is cut off.
    c.say("\n[4] The master is cut off from everyone. It cannot renew, so it surrenders when its lease runs out (minus the margin); only after the acceptors' exclusion ends can the others elect a new master.");
    tokio::time::sleep(lease / 2).await;
    let t = Instant::now();
    c.node(master)?.cut.store(true, Ordering::Relaxed);
    let (elected_at, next, _) = c.elected_after(LEASE, t, Some(master), lease * 5).await?;
    let Some((surrendered_at, reason)) = c.surrendered_after(master, t) else {
        bail!(
            "SAFETY: node {next} was elected while the cut-off node {master} had not surrendered"
        );
    };
    if surrendered_at >= elected_at {
        bail!("SAFETY: node {master} surrendered after node {next} was elected");
    }
    c.say(&format!(
        "    -> node {master} surrendered ({reason}) {:.0} ms after the cut; node {next} was elected {:.0} ms after the cut, {:.0} ms later: never two masters",
        (surrendered_at - t).as_secs_f64() * 1e3,
        (elected_at - t).as_secs_f64() * 1e3,
        (elected_at - surrendered_at).as_secs_f64() * 1e3
    ));
    c.node(master)?.cut.store(false, Ordering::Relaxed);
    let healed = Instant::now();
    tokio::time::sleep(lease * 2).await;
    let stable = c.node(next)?.election.is_master(LEASE)
        && c.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .all(|(at, _, e)| {
                *at < healed
                    || !matches!(e, ElectionEvent::Elected { lease, .. } if lease.as_str() == LEASE)
            });
    c.say(&format!(
        "    -> link healed: node {master} rejoins as a follower; node {next} {} master",
        if stable { "stays" } else { "did NOT stay" }
    ));
    let master = next;

    // Scene 5: replicated state.
    c.say(&format!("\n[5] Replicated state. Every node joins lease `{}` with a replicated log (each node's data directory holds it); its master appends entries, each acknowledged once a majority holds it.", demo_ledger::LEDGER));
    let members: Vec<(NodeId, &Election)> = c.nodes.iter().map(|n| (n.id, &n.election)).collect();
    let ledgers = demo_ledger::join(&members, master).await?;
    let (_, writer, _) = demo_ledger::ready(&ledgers, None, lease * 10).await?;
    let handle = &ledgers
        .iter()
        .find(|(id, _)| *id == writer)
        .context("ledger")?
        .1;
    let (t, mut acked) = (Instant::now(), 0u64);
    for value in 1..=200u64 {
        if handle.append(value.to_le_bytes()).await.is_ok() {
            acked += 1;
        }
    }
    let took = t.elapsed();
    c.say(&format!(
        "    -> node {writer} appended {acked} entries in {:.0} ms ({:.2} ms each, every one durable on a majority before it was acknowledged)",
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3 / acked.max(1) as f64
    ));

    // Scene 6: the master crashes.
    c.say("\n[6] The master crashes (no release). The others wait out the acceptors' exclusion of it, then elect a new master, which recovers the log before it serves.");
    tokio::time::sleep(lease / 3).await;
    let t = Instant::now();
    if let Some(n) = c.nodes.iter_mut().find(|n| n.id == master) {
        n.crash();
    }
    let (at, next, _) = c.elected_after(LEASE, t, Some(master), lease * 5).await?;
    c.say(&format!(
        "    -> node {next} elected {:.0} ms after the crash (lease {:.0} ms, D_A {:.0} ms: the floor is the rest of the exclusion at the crash)",
        (at - t).as_secs_f64() * 1e3,
        lease.as_secs_f64() * 1e3,
        d_a.as_secs_f64() * 1e3
    ));
    if writer == master {
        let (ready_at, heir, entries) =
            demo_ledger::ready(&ledgers, Some(master), lease * 10).await?;
        if entries < acked {
            bail!(
                "SAFETY: node {heir} recovered {entries} ledger entries, {acked} were acknowledged"
            );
        }
        let (elected, _, _) = c
            .elected_after(demo_ledger::LEDGER, t, Some(master), lease * 5)
            .await?;
        c.say(&format!(
            "    -> ledger: node {heir} ready {:.0} ms after the crash with all {entries} entries ({acked} acknowledged before it); recovery (elected to ready) {:.1} ms",
            (ready_at - t).as_secs_f64() * 1e3,
            (ready_at.saturating_duration_since(elected)).as_secs_f64() * 1e3
        ));
    } else {
        c.say(&format!(
            "    -> ledger: its master is node {writer}, which did not crash"
        ));
    }
    drop(ledgers);

    // Scene 7: many leases.
    let names: Vec<String> = (0..12).map(|i| format!("shard-{i:02}")).collect();
    c.say(&format!("\n[7] Many leases. The {} live nodes join {} named leases; each lease prefers a different node (priority), so they spread.", c.nodes.iter().filter(|n| n.alive).count(), names.len()));
    let alive: Vec<&DemoNode> = c.nodes.iter().filter(|n| n.alive).collect();
    let t = Instant::now();
    for (i, name) in names.iter().enumerate() {
        for (j, n) in alive.iter().enumerate() {
            let priority = if i % alive.len() == j { 3 } else { 0 };
            n.election
                .join(name, NoCallbacks, Candidacy::with_priority(priority))
                .await?;
        }
    }
    let mut spread: BTreeMap<NodeId, Vec<&str>> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    for name in &names {
        let (at, id, _) = c.elected_after(name, t, None, lease * 5).await?;
        slowest = slowest.max(at - t);
        spread.entry(id).or_default().push(name);
    }
    for (id, held) in &spread {
        c.say(&format!(
            "    -> node {id} is master of {} leases: {}",
            held.len(),
            held.join(", ")
        ));
    }
    c.say(&format!(
        "    -> all {} leases had a master within {:.0} ms",
        names.len(),
        slowest.as_secs_f64() * 1e3
    ));

    c.say("\nShutting down: every master surrenders (reason shutdown) and releases its leases.");
    for n in c.nodes.iter().filter(|n| n.alive) {
        n.election.shutdown().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.say(&format!(
        "demo finished in {:.1} s",
        c.start.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// One timeline line per interesting event (renewals and learner updates are summarised
/// by the scenes instead).
fn timeline(start: Instant, now: Instant, id: NodeId, event: &ElectionEvent) {
    let at = now.saturating_duration_since(start).as_secs_f64() * 1e3;
    match event {
        ElectionEvent::Elected {
            lease,
            token: t,
            deadline,
        } => outln!(
            "    {at:>8.1} ms  node {id}  ELECTED      {lease:<9} token {}  (authority for {:.0} ms unless renewed)",
            token(t),
            deadline.saturating_duration_since(now).as_secs_f64() * 1e3
        ),
        ElectionEvent::Surrendered { lease, reason, .. } => {
            outln!("    {at:>8.1} ms  node {id}  SURRENDERED  {lease:<9} ({reason})")
        }
        _ => {}
    }
}
