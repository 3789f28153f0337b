//! Status clients cannot hold a node's client slots: a connection that asks nothing for
//! `client_idle_timeout` is closed, whatever keep-alives it sends.
//!
//! Found by probing a real node: 8 idle connections holding `client.pem` (the default
//! `max_client_connections`) denied `status` to everyone, for as long as they lived.

mod common;

use std::time::{Duration, Instant};

use gen_paxos_core::NodeId;
use gen_paxos_quic::{ClusterCa, StatusClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_status_clients_give_their_slots_back() -> anyhow::Result<()> {
    let ca = ClusterCa::generate("test")?;
    let s1 = common::socket()?;
    let a1 = s1.local_addr()?;
    let mut settings = common::settings();
    settings.accept_clients = true;
    settings.client_idle_timeout = Duration::from_millis(400);
    let n1 = common::node_settings(&ca, 1, s1, &[(2, "127.0.0.1:9".parse()?)], settings.clone())?;
    let mut requests = n1
        .client_requests()
        .ok_or_else(|| anyhow::anyhow!("no requests"))?;
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let _ = request.respond(&"pong".to_string());
        }
    });
    let identity = ca.issue_client()?.identity()?;
    let ca_cert = ca.certificate();
    let connect = || StatusClient::connect(a1, NodeId(1), &identity, &ca_cert, &settings);
    // Eight clients take every slot and then sit idle (their keep-alives every 500 ms
    // keep the QUIC connections open).
    let mut holders = Vec::new();
    for _ in 0..settings.max_client_connections {
        let client = connect().await?;
        let answer: String = client.request(&"hello".to_string()).await?;
        assert_eq!(answer, "pong");
        holders.push(client);
    }
    // While they hold the slots, a ninth client is turned away.
    let ninth = connect().await?;
    assert!(
        ninth
            .request::<_, String>(&"me too".to_string())
            .await
            .is_err()
    );
    // Within a couple of idle timeouts a new client gets an answer, the holders still
    // connected from their side.
    let start = Instant::now();
    let answered = loop {
        if let Ok(client) = connect().await
            && let Ok(answer) = client.request::<_, String>(&"now?".to_string()).await
        {
            break answer;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(5),
            "no slot came back: {:?}",
            n1.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(answered, "pong");
    assert!(n1.stats().clients_idle_closed >= 1, "{:?}", n1.stats());
    drop(holders);
    Ok(())
}
