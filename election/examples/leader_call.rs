//! Followers forward requests to the master with `leader_call`; the master answers.
//!
//! A key-value counter lives on whoever is master. Every node sends increments through its
//! own lease handle; the call reaches the master wherever it is. Midway the master resigns:
//! calls in flight fail with a clear error (never hang) and are retried, and the new master
//! picks up the state through the sync payload of `on_elected`.
//!
//! ```text
//! cargo run -p gen-paxos-election --example leader_call
//! ```

use std::time::Duration;

use gen_paxos_election::memory::MemoryNetwork;
use gen_paxos_election::{
    CallError, Candidacy, Config, Election, Leader, LeaseInfo, NodeId, SurrenderInfo, Wire,
    async_trait,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Msg {
    /// A follower asks the master to add to the counter.
    Add(u64),
    /// The master's answer, and the state it hands to the others when elected.
    Total(u64),
}

struct Counter {
    id: NodeId,
    total: u64,
}

#[async_trait]
impl Leader for Counter {
    type Message = Msg;

    async fn on_elected(&mut self, lease: &LeaseInfo) -> Option<Msg> {
        println!(
            "node {} is master (token {}), total {}",
            self.id, lease.token, self.total
        );
        Some(Msg::Total(self.total))
    }

    async fn on_surrendered(&mut self, info: SurrenderInfo<Msg>) {
        // The new master's state arrives as its sync payload.
        if let Some(Msg::Total(total)) = info.sync {
            self.total = total;
        }
    }

    async fn handle_leader_call(&mut self, from: NodeId, request: Msg) -> Option<Msg> {
        match request {
            Msg::Add(n) => {
                self.total += n;
                Some(Msg::Total(self.total))
            }
            Msg::Total(_) => {
                println!("node {}: ignoring a Total from node {from}", self.id);
                None
            }
        }
    }

    async fn from_leader(&mut self, _from: NodeId, message: Msg) {
        // The master broadcasts its total; followers keep a copy for the next election.
        if let Msg::Total(total) = message {
            self.total = total;
        }
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let network = MemoryNetwork::<Wire>::new(11);
    network.set_delay(Duration::from_micros(200), Duration::from_millis(2));
    let mut leases = Vec::new();
    for &id in &voters {
        let config = Config::new(id, voters.clone()).with_lease_duration(Duration::from_secs(1));
        let election = Election::start(config, network.transport(id))?;
        leases.push(
            election
                .join("counter", Counter { id, total: 0 }, Candidacy::candidate())
                .await?,
        );
    }
    leases[0].watch().wait_for(|m| m.is_some()).await?;

    let (mut sent, mut failed, mut last_total) = (0u64, 0u64, 0u64);
    for round in 0..30u64 {
        if round == 15
            && let Some(master) = leases.iter().find(|l| l.is_master())
        {
            println!("node {} resigns", master.election().id());
            master.resign().await?;
        }
        for lease in &leases {
            // Retry on the errors a change of master produces; each attempt is bounded.
            loop {
                match lease.call(Msg::Add(1)).await {
                    Ok(Msg::Total(total)) => {
                        sent += 1;
                        last_total = total;
                        if round % 10 == 0 {
                            println!("node {} added 1: total {total}", lease.election().id());
                        }
                        break;
                    }
                    Ok(other) => return Err(format!("unexpected reply {other:?}").into()),
                    Err(
                        e @ (CallError::MasterChanged(_)
                        | CallError::NoMaster { .. }
                        | CallError::Timeout { .. }),
                    ) => {
                        failed += 1;
                        println!("node {}: {e}; retrying", lease.election().id());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // The master shares its state with everyone, ready for the next election.
        if let Some(master) = leases.iter().find(|l| l.is_master()) {
            master.broadcast(Msg::Total(last_total))?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{sent} increments acknowledged, {failed} calls failed cleanly during the master change"
    );
    if last_total != sent {
        return Err(
            format!("the total is {last_total}, but {sent} increments were acknowledged").into(),
        );
    }
    println!("the total survived the change of master: {last_total}");
    for lease in &leases {
        lease.election().shutdown().await;
    }
    Ok(())
}
