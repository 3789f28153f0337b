//! The smallest program that runs one node of a real cluster: three of them are a cluster.
//!
//! ```text
//! cargo run --release -- certs --out /tmp/certs --nodes 1,2,3
//! cargo run --example quic_cluster -- 1 /tmp/certs &
//! cargo run --example quic_cluster -- 2 /tmp/certs &
//! cargo run --example quic_cluster -- 3 /tmp/certs
//! ```
//!
//! Each node prints when it becomes master and when it stops; Ctrl-C resigns and exits.

use std::time::Duration;

use gen_paxos::{Candidacy, Leader, LeaseInfo, NodeId, QuicNode, SurrenderInfo, async_trait};

struct Printer;

#[async_trait]
impl Leader for Printer {
    type Message = ();
    async fn on_elected(&mut self, lease: &LeaseInfo) -> Option<()> {
        println!(
            "master of {} with token {}: start writing",
            lease.name, lease.token
        );
        None
    }
    async fn on_surrendered(&mut self, info: SurrenderInfo<()>) {
        if info.reason.was_master() {
            println!("lease {} over ({}): stop writing", info.lease, info.reason);
        } else {
            println!(
                "node {:?} is master of {}",
                info.master.map(|m| m.node),
                info.lease
            );
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: quic_cluster ID CERT_DIR";
    let mut args = std::env::args().skip(1);
    let id = NodeId(args.next().ok_or(usage)?.parse()?);
    let certs = args.next().ok_or(usage)?;

    let election = QuicNode::new(id, certs)
        .voters([
            (1, "127.0.0.1:7001"),
            (2, "127.0.0.1:7002"),
            (3, "127.0.0.1:7003"),
        ])
        .lease_duration(Duration::from_secs(2))
        .start()?;
    election
        .join("default", Printer, Candidacy::candidate())
        .await?;
    println!("node {id} up; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    election.shutdown().await;
    Ok(())
}
