//! Peers may be given by host name (`--peer 2=node2.example:7002`): resolved at every dial,
//! so a machine replaced under the same name is found again on reconnect. On loopback:
//! `localhost`; the replacement in a network namespace with its own hosts file.

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

/// Runs `ip args...`; Err with its stderr if it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// A network namespace with its own `/etc/hosts` (`/etc/netns/<name>/hosts`), deleted on drop.
struct NamedNet {
    name: String,
    hosts: std::path::PathBuf,
}

impl NamedNet {
    fn create(name: &str) -> Result<NamedNet, String> {
        ip(&["netns", "add", name])?;
        let net = NamedNet {
            name: name.to_string(),
            hosts: std::path::Path::new("/etc/netns").join(name).join("hosts"),
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        std::fs::create_dir_all(net.hosts.parent().expect("dir")).map_err(|e| e.to_string())?;
        Ok(net)
    }

    /// Rewrites the namespace's hosts file in place: `ip netns exec` bind-mounts this very
    /// file over /etc/hosts, and the resolver reads it afresh at every lookup.
    fn set_host(&self, name: &str, ip: &str) {
        std::fs::write(&self.hosts, format!("127.0.0.1 localhost\n{ip} {name}\n"))
            .expect("write hosts");
    }
}

impl Drop for NamedNet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.hosts.parent().expect("dir"));
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A machine replaced under the same name: node 2 is `mover.test`, first at 127.0.0.2, then
/// (after it died) at 127.0.0.3. Node 2 is given addresses for its peers where nothing
/// listens, so it never dials them: it can only hear the cluster again if nodes 1 and 3
/// resolve `mover.test` anew when they redial.
#[test]
fn a_peer_replaced_under_its_name_is_dialled_at_its_new_address() {
    let _serial = serial();
    let ns = format!("gpdns{}", std::process::id());
    let net = match NamedNet::create(&ns) {
        Ok(net) => net,
        // Like the fault harness: without root and iproute2 (`.ci/run` installs it) there
        // is no namespace to run this in.
        Err(e) => {
            eprintln!(
                "SKIPPED: cannot create network namespace {ns} (needs root and iproute2): {e}"
            );
            return;
        }
    };
    net.set_host("mover.test", "127.0.0.2");
    let certs = temp_dir("by-name-moved");
    make_certs(&certs, "1,2,3");
    let port = |a: String| {
        a.rsplit_once(':')
            .map(|(_, p)| p.to_string())
            .expect("port")
    };
    let (p1, p2, p3) = (
        port(procs::free_addr()),
        port(procs::free_addr()),
        port(procs::free_addr()),
    );
    let lease = ["--lease-duration".to_string(), "1s".to_string()];
    let peer = |id: u64, addr: String| ["--peer".to_string(), format!("{id}={addr}")];
    let args = |peers: [[String; 2]; 2]| -> Vec<String> {
        lease
            .iter()
            .cloned()
            .chain(peers.into_iter().flatten())
            .collect()
    };
    let start = |id: u64, listen: String, peers| {
        Proc::start_in_netns(&ns, id, &listen, &certs, &args(peers))
    };
    let _n1 = start(
        1,
        format!("127.0.0.1:{p1}"),
        [
            peer(2, format!("mover.test:{p2}")),
            peer(3, format!("127.0.0.1:{p3}")),
        ],
    );
    let _n3 = start(
        3,
        format!("127.0.0.1:{p3}"),
        [
            peer(1, format!("127.0.0.1:{p1}")),
            peer(2, format!("mover.test:{p2}")),
        ],
    );
    // Node 2's peers: addresses where nothing listens.
    let deaf_peers = || {
        [
            peer(1, format!("127.0.0.9:{p1}")),
            peer(3, format!("127.0.0.9:{p3}")),
        ]
    };
    let mut n2 = start(2, format!("127.0.0.2:{p2}"), deaf_peers());
    assert!(
        within(Duration::from_secs(10), || n2.known_master().is_some()),
        "node 2 at its first address never heard a master: {}",
        n2.stderr()
    );
    n2.kill();
    net.set_host("mover.test", "127.0.0.3");
    let n2 = start(2, format!("127.0.0.3:{p2}"), deaf_peers());
    assert!(
        within(Duration::from_secs(15), || n2.known_master().is_some()),
        "node 2 at its new address never heard a master: {}",
        n2.stderr()
    );
    let _ = std::fs::remove_dir_all(&certs);
}
