//! The core scenarios again over real QUIC + mutual TLS on loopback (real time, generous
//! bounds: these prove the stack works together, not its speed).
#![allow(
    clippy::unwrap_used,
    reason = "in tests a failed unwrap is a failed test"
)]

use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::Duration;

use gen_paxos_election::{
    Candidacy, Config, Election, Leader, LeaseHandle, LeaseInfo, NodeId, SurrenderInfo, Wire,
    async_trait,
};
use gen_paxos_quic::{ClusterCa, QuicTransport, Settings};
use tokio::time::Instant;

const LEASE: Duration = Duration::from_millis(500);

struct Echo(NodeId);

#[async_trait]
impl Leader for Echo {
    type Message = String;
    async fn on_elected(&mut self, _lease: &LeaseInfo) -> Option<String> {
        None
    }
    async fn on_surrendered(&mut self, _info: SurrenderInfo<String>) {}
    async fn handle_leader_call(&mut self, _from: NodeId, request: String) -> Option<String> {
        Some(format!("{} says {request}", self.0))
    }
}

async fn cluster() -> anyhow::Result<HashMap<NodeId, (Election, LeaseHandle<String>)>> {
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let ca = ClusterCa::generate("election-test")?;
    let sockets: Vec<UdpSocket> = ids
        .iter()
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let addrs: Vec<_> = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let mut nodes = HashMap::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let id = ids[i];
        let mut settings = Settings::for_lease(LEASE);
        settings.initial_rtt = Duration::from_millis(10);
        settings.reconnect_backoff_min = Duration::from_millis(10);
        let mut config = gen_paxos_quic::Config::new(
            id,
            addrs[i],
            ca.issue_node(id)?.identity()?,
            ca.certificate(),
        )
        .with_settings(settings);
        for (j, &peer) in ids.iter().enumerate() {
            if peer != id {
                config = config.with_peer(peer, addrs[j]);
            }
        }
        let transport = QuicTransport::<Wire>::with_socket(config, socket)?;
        let election = Election::start(
            Config::new(id, ids.clone()).with_lease_duration(LEASE),
            transport,
        )?;
        let lease = election
            .join("main", Echo(id), Candidacy::candidate())
            .await?;
        nodes.insert(id, (election, lease));
    }
    Ok(nodes)
}

fn masters(nodes: &HashMap<NodeId, (Election, LeaseHandle<String>)>) -> Vec<NodeId> {
    let mut m: Vec<NodeId> = nodes
        .iter()
        .filter(|(_, (_, l))| l.is_master())
        .map(|(&id, _)| id)
        .collect();
    m.sort_unstable();
    m
}

async fn wait_master(
    nodes: &HashMap<NodeId, (Election, LeaseHandle<String>)>,
    within: Duration,
) -> anyhow::Result<NodeId> {
    let end = Instant::now() + within;
    loop {
        let m = masters(nodes);
        anyhow::ensure!(m.len() <= 1, "two masters: {m:?}");
        if let [m] = m[..] {
            return Ok(m);
        }
        anyhow::ensure!(Instant::now() < end, "no master within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quic_one_master_keeps_its_lease_answers_calls_and_fails_over() -> anyhow::Result<()> {
    let mut nodes = cluster().await?;
    let master = wait_master(&nodes, LEASE * 6).await?;
    // Kept for ten leases, never two masters.
    let end = Instant::now() + LEASE * 10;
    while Instant::now() < end {
        anyhow::ensure!(
            masters(&nodes) == vec![master],
            "lost the lease: {:?}",
            masters(&nodes)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A follower's call reaches the master.
    let follower = *nodes.keys().find(|&&n| n != master).unwrap_or(&master);
    let reply = nodes[&follower].1.call("hello".into()).await?;
    assert_eq!(reply, format!("{master} says hello"));

    // Crash the master: a new one within D_A plus generous slack.
    let d_a = Config::new(master, vec![master])
        .with_lease_duration(LEASE)
        .acceptor_duration();
    let old_deadline = nodes[&master].1.guard().and_then(|g| g.deadline());
    let old_deadline = old_deadline.ok_or_else(|| anyhow::anyhow!("master without a guard"))?;
    if let Some((election, _)) = nodes.remove(&master) {
        election.crash();
    }
    let new = wait_master(&nodes, d_a + LEASE * 4).await?;
    assert_ne!(new, master);
    assert!(Instant::now() > old_deadline, "the old authority had ended");
    for (election, _) in nodes.values() {
        election.shutdown().await;
    }
    Ok(())
}
