//! The smallest program that runs one node of a real cluster from files.
//!
//! ```text
//! cargo run --release -- certs --out /tmp/certs --nodes 1,2,3
//! cargo run --example quic_cluster -- 1 127.0.0.1:7001 /tmp/certs 2=127.0.0.1:7002 3=127.0.0.1:7003
//! cargo run --example quic_cluster -- 2 127.0.0.1:7002 /tmp/certs 1=127.0.0.1:7001 3=127.0.0.1:7003
//! cargo run --example quic_cluster -- 3 127.0.0.1:7003 /tmp/certs 1=127.0.0.1:7001 2=127.0.0.1:7002
//! ```
//!
//! Each node prints when it becomes master and when it stops; Ctrl-C releases and exits.

use std::net::SocketAddr;
use std::path::PathBuf;

use election::{
    Candidacy, Config, Election, Leader, LeaseInfo, NodeId, SurrenderInfo, Wire, async_trait,
};
use transport_quic::{CaCertificate, Identity, QuicTransport, Settings};

struct Printer;

#[async_trait]
impl Leader for Printer {
    type Message = ();
    async fn on_elected(&mut self, lease: &LeaseInfo) -> Option<()> {
        println!(
            "master of {} with fencing token {}",
            lease.name, lease.token
        );
        None
    }
    async fn on_surrendered(&mut self, info: SurrenderInfo<()>) {
        println!("not master of {}: {}", info.lease, info.reason);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: quic_cluster ID LISTEN CERT_DIR PEER_ID=ADDR...";
    let id = NodeId(args.next().ok_or(usage)?.parse()?);
    let listen: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let certs = PathBuf::from(args.next().ok_or(usage)?);
    let mut peers = Vec::new();
    for peer in args {
        let (peer_id, addr) = peer.split_once('=').ok_or(usage)?;
        peers.push((NodeId(peer_id.parse()?), addr.parse::<SocketAddr>()?));
    }

    let identity = Identity::load(
        &certs.join(format!("node-{id}.pem")),
        &certs.join(format!("node-{id}.key")),
    )?;
    let ca = CaCertificate::load(&certs.join("ca.pem"))?;
    let mut quic =
        transport_quic::Config::new(id, listen, identity, ca).with_settings(Settings::default());
    let mut voters = vec![id];
    for &(peer, addr) in &peers {
        quic = quic.with_peer(peer, addr);
        voters.push(peer);
    }
    let election = Election::start(Config::new(id, voters), QuicTransport::<Wire>::bind(quic)?)?;
    let _lease = election
        .join("default", Printer, Candidacy::candidate())
        .await?;
    println!("node {id} up on {listen}; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    election.shutdown().await;
    Ok(())
}
