//! Peers may be given by host name (`--peer 2=node2.example:7002`): resolved at every dial
//! (so a replaced machine is found again on reconnect). On loopback: `localhost`.

mod procs;

use std::time::Duration;

use procs::{Proc, make_certs, overlaps, serial, status, temp_dir, within};

#[test]
fn a_cluster_whose_peers_are_host_names_elects_and_answers() {
    let _serial = serial();
    let certs = temp_dir("by-name");
    make_certs(&certs, "1,2,3");
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            procs::free_addr()
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .expect("a port")
        })
        .collect();
    let nodes: Vec<Proc> = (1..=3u64)
        .map(|id| {
            let mut args = vec!["--lease-duration".to_string(), "1s".to_string()];
            for peer in (1..=3u64).filter(|&p| p != id) {
                args.push("--peer".into());
                args.push(format!("{peer}=localhost:{}", ports[peer as usize - 1]));
            }
            let listen = format!("127.0.0.1:{}", ports[id as usize - 1]);
            Proc::start(id, &listen, &certs, &args)
        })
        .collect();
    assert!(
        within(Duration::from_secs(10), || nodes.iter().any(Proc::holds)),
        "no election: {}",
        nodes[0].stderr()
    );
    // Every node learns the master, and `status` reaches a node by name too.
    assert!(within(Duration::from_secs(5), || nodes
        .iter()
        .all(|n| n.known_master().is_some())));
    let out = std::process::Command::new(procs::BIN)
        .args([
            "status",
            "--json",
            "--peer",
            &format!("2=localhost:{}", ports[1]),
            "--certs",
        ])
        .arg(&certs)
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(status(&certs, &nodes[0]).is_some());
    assert_eq!(
        overlaps(&nodes.iter().collect::<Vec<_>>()),
        Vec::<String>::new()
    );
    let _ = std::fs::remove_dir_all(&certs);
}
