//! A service that keeps real state through failovers: a counter replicated by the lease's
//! log. The master adds one every half second; every node applies the same increments in
//! order; kill the master and the next goes on from the last acknowledged value.
//!
//! ```text
//! cargo run --release -- certs --out /tmp/certs --nodes 1,2,3
//! cargo run --example replicated_counter -- 1 /tmp/certs /tmp/data-1 --init &
//! cargo run --example replicated_counter -- 2 /tmp/certs /tmp/data-2 --init &
//! cargo run --example replicated_counter -- 3 /tmp/certs /tmp/data-3 --init
//! ```
//! `--init` makes the data directory on a node's first start; restart without it.

use std::time::Duration;

use gen_paxos::{
    Candidacy, Leader, LeaseInfo, NodeId, QuicNode, StateMachine, SurrenderInfo, async_trait,
};

/// The replicated state: a number. A command is the amount to add, as 8 bytes.
#[derive(Default)]
struct Counter(u64);

impl StateMachine for Counter {
    fn apply(&mut self, _index: u64, command: &[u8]) {
        let add = command.try_into().map(u64::from_le_bytes).unwrap_or(0);
        self.0 += add;
    }
    fn snapshot(&self) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }
    fn restore(&mut self, snapshot: &[u8]) {
        self.0 = snapshot.try_into().map(u64::from_le_bytes).unwrap_or(0);
    }
}

struct Printer;

#[async_trait]
impl Leader for Printer {
    type Message = ();
    // On a replicated lease this runs once the log is recovered: the state is complete.
    async fn on_elected(&mut self, lease: &LeaseInfo) -> Option<()> {
        println!(
            "master of {} (token {}): counting on",
            lease.name, lease.token
        );
        None
    }
    async fn on_surrendered(&mut self, info: SurrenderInfo<()>) {
        println!("not master: {}", info.reason);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: replicated_counter ID CERT_DIR DATA_DIR [--init]";
    let mut args = std::env::args().skip(1);
    let id = NodeId(args.next().ok_or(usage)?.parse()?);
    let certs = args.next().ok_or(usage)?;
    let data = args.next().ok_or(usage)?;
    let init = args.next().as_deref() == Some("--init");
    let peers = [
        (1, "127.0.0.1:7101"),
        (2, "127.0.0.1:7102"),
        (3, "127.0.0.1:7103"),
    ];
    let node = QuicNode::new(id, certs)
        .voters(peers)
        .lease_duration(Duration::from_secs(1));
    let election = if init {
        node.init_data_dir(data)
    } else {
        node.data_dir(data)
    }
    .start()?;
    let (name, state) = ("counter", Counter::default());
    let counter = election
        .join_replicated(name, Printer, Candidacy::candidate(), state)
        .await?;
    println!("node {id} up; Ctrl-C to stop");
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        match counter.read(|c| c.0) {
            // The master adds one; a follower prints its own copy (which may lag a little).
            Ok(value) => match counter.append(1u64.to_le_bytes()).await {
                Ok(index) => println!("master: {} (entry {index})", value + 1),
                Err(e) => println!("append refused: {e}"),
            },
            Err(_) => println!("follower: {}", counter.read_stale(|c| c.0)),
        }
    }
    election.shutdown().await;
    Ok(())
}
