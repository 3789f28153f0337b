//! The snippets of docs/deploy.md marked "(tested)": the node's TOML configuration runs a
//! node, the nftables ruleset passes `nft -c`, the systemd units pass `systemd-analyze
//! verify`. Only what cannot exist here is replaced: the binary's path, the certificate
//! directory, the peers' names and the ports.

mod procs;

use std::process::Command;
use std::time::Duration;

use procs::{BIN, free_addr, make_certs, temp_dir, within};

/// The fenced blocks of docs/deploy.md whose info string is `lang`, in order.
fn blocks(lang: &str) -> Vec<String> {
    let doc = include_str!("../docs/deploy.md");
    let fence = format!("```{lang}\n");
    doc.split(&fence)
        .skip(1)
        .filter_map(|rest| rest.split("```").next().map(str::to_string))
        .collect()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_node_toml_of_the_guide_runs_a_node() {
    let dir = temp_dir("deploy-toml");
    make_certs(&dir, "1,2,3");
    let toml = blocks("toml").into_iter().next().expect("a toml block");
    let listen = free_addr();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a tcp port")
        .to_string();
    let port = |a: &str| a.rsplit(':').next().unwrap_or("0").to_string();
    let text = toml
        .replace("0.0.0.0:7001", &listen)
        .replace("/etc/gen-paxos/certs", &dir.display().to_string())
        .replace("0.0.0.0:9101", &metrics)
        .replace(
            "node2.example:7001",
            &format!("localhost:{}", port(&free_addr())),
        )
        .replace(
            "node3.example:7001",
            &format!("localhost:{}", port(&free_addr())),
        );
    let file = dir.join("node.toml");
    std::fs::write(&file, text).expect("write node.toml");
    let mut child = Command::new(BIN)
        .args(["node", "--config"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Two of three voters are missing: no election, but the node runs and says so.
    let answered = within(Duration::from_secs(10), || {
        std::net::TcpStream::connect(&metrics).is_ok()
    });
    assert!(child.try_wait().expect("wait").is_none(), "the node exited");
    assert!(answered, "the metrics endpoint never answered");
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_nftables_ruleset_of_the_guide_is_valid() {
    if !have("nft") {
        println!("SKIPPED: nft is not installed");
        return;
    }
    let ruleset = blocks("nft").into_iter().next().expect("an nft block");
    let dir = temp_dir("deploy-nft");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("gen-paxos.nft");
    std::fs::write(&file, ruleset).expect("write");
    let out = Command::new("nft")
        .args(["-c", "-f"])
        .arg(&file)
        .output()
        .expect("nft");
    if !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("Operation not permitted")
    {
        println!("SKIPPED: nft -c needs privileges here");
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_systemd_units_of_the_guide_verify() {
    if !have("systemd-analyze") {
        println!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let units = blocks("ini");
    let unit = units
        .first()
        .expect("the unit")
        .replace("/usr/local/bin/gen-paxos", BIN);
    // The `run` variant replaces ExecStart and adds KillMode.
    let variant = units
        .get(1)
        .expect("the run variant")
        .replace("/usr/local/bin/gen-paxos", BIN);
    let exec = variant
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("its ExecStart")
        // The program it runs would be the service's own; `true` stands in for it.
        .replace("/usr/local/bin/db-primary --token-from-env", "/bin/true");
    let with_run: String = unit
        .lines()
        .map(|l| {
            if l.starts_with("ExecStart=") {
                format!("{exec}\nKillMode=mixed")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    // The real-time lines for short leases go into `[Service]`.
    let realtime = units.get(2).expect("the real-time lines");
    assert!(
        realtime.contains("CPUSchedulingPolicy="),
        "the third ini block is the real-time one: {realtime}"
    );
    let with_realtime = unit.replace("[Service]\n", &format!("[Service]\n{realtime}"));
    let dir = temp_dir("deploy-unit");
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, text) in [
        ("gen-paxos.service", unit),
        ("gen-paxos-run.service", with_run),
        ("gen-paxos-fifo.service", with_realtime),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, text).expect("write");
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&file)
            .output()
            .expect("systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        // A setting systemd cannot parse is only a warning ("..., ignoring"), exit 0.
        assert!(!stderr.contains("ignoring"), "{name}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
