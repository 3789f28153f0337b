//! `QuicNode`: three nodes started from one member list and a certificate directory elect
//! one master; bad input is a clear error, never a panic.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use gen_paxos_core::NodeId;
use gen_paxos_election::{Candidacy, NoCallbacks};
use gen_paxos_quic::{QuicNode, StartError, write_cluster_certs};

fn certs(name: &str, ids: &[u64]) -> anyhow::Result<PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("gen-paxos-quicnode-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ids: Vec<NodeId> = ids.iter().copied().map(NodeId).collect();
    write_cluster_certs(&dir, &ids, false)?;
    Ok(dir)
}

fn free_addr() -> anyhow::Result<String> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_from_one_member_list_elect_one_master() -> anyhow::Result<()> {
    let dir = certs("cluster", &[1, 2, 3])?;
    let members: Vec<(u64, String)> = (1..=3)
        .map(|id| Ok((id, free_addr()?)))
        .collect::<anyhow::Result<_>>()?;
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let election = QuicNode::new(NodeId(id), &dir)
            .voters(members.clone())
            .lease_duration(Duration::from_millis(500))
            .start()?;
        election
            .join("db", NoCallbacks, Candidacy::candidate())
            .await?;
        nodes.push(election);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let master = loop {
        let masters: Vec<NodeId> = nodes
            .iter()
            .filter(|e| e.is_master("db"))
            .map(|e| e.id())
            .collect();
        let known = nodes.iter().all(|e| e.master("db").is_some());
        if masters.len() == 1 && known {
            break masters[0];
        }
        assert!(masters.len() <= 1, "two masters: {masters:?}");
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no master elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The lease duration reached the election: authority ends within one lease.
    let info = nodes[0].master("db").expect("known");
    assert_eq!(info.node, master);
    assert!(info.expires <= tokio::time::Instant::now() + Duration::from_millis(500));
    for e in &nodes {
        e.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test]
async fn bad_input_is_a_clear_error() -> anyhow::Result<()> {
    let dir = certs("bad", &[1, 2, 3])?;
    let (a, b, c) = (free_addr()?, free_addr()?, free_addr()?);
    let start = |id: u64, members: Vec<(u64, String)>| {
        QuicNode::new(NodeId(id), &dir).voters(members).start()
    };

    let e = start(4, vec![(1, a.clone()), (2, b.clone()), (3, c.clone())]).expect_err("refused");
    assert!(matches!(e, StartError::NotAMember(NodeId(4))), "{e}");

    let e = start(1, vec![(1, a.clone()), (2, b.clone()), (2, c.clone())]).expect_err("refused");
    assert!(matches!(e, StartError::ListedTwice(NodeId(2))), "{e}");

    let e = start(
        1,
        vec![(1, a.clone()), (2, "node two:7000".into()), (3, c.clone())],
    )
    .expect_err("refused");
    assert!(
        matches!(
            e,
            StartError::Address {
                node: NodeId(2),
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("node two:7000"), "{e}");

    // Certificates of another node set: node-4's files do not exist.
    let e = QuicNode::new(NodeId(4), &dir)
        .voters([(4, a.clone()), (5, b.clone()), (6, c.clone())])
        .start()
        .expect_err("refused");
    assert!(matches!(e, StartError::Certs { .. }), "{e}");
    assert!(e.to_string().contains("node-4.pem"), "{e}");

    // A one-voter list is refused unless a single-node cluster is meant.
    let e = start(1, vec![(1, a.clone())]).expect_err("refused");
    assert!(matches!(e, StartError::Election(_)), "{e}");
    let single = QuicNode::new(NodeId(1), &dir)
        .voters([(1, a.clone())])
        .configure(|c| c.single_node = true)
        .start()?;
    single.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
