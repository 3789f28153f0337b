//! End to end with real processes: `gen-paxos certs`, three `gen-paxos node` processes over
//! QUIC on loopback, `gen-paxos status` and its exit codes; SIGKILL of the master,
//! `gen-paxos resign`, SIGTERM.
//! Also checks that every event line follows the documented JSON fields exactly.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gen-paxos");

struct NodeProc {
    id: u64,
    addr: String,
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl NodeProc {
    fn events(&self, kind: &str) -> Vec<Value> {
        let lines = self.lines.lock().expect("lock");
        lines
            .iter()
            .filter(|v| v["event"] == kind)
            .cloned()
            .collect()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token(v: &Value) -> Vec<u64> {
    v["token"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start(id: u64, addrs: &[(u64, String)], certs: &Path) -> NodeProc {
    let addr = addrs
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, a)| a.clone())
        .expect("own address");
    let mut cmd = Command::new(BIN);
    cmd.args([
        "node",
        "--id",
        &id.to_string(),
        "--listen",
        &addr,
        "--lease-duration",
        "1s",
        "--certs",
    ])
    .arg(certs);
    for (peer, a) in addrs.iter().filter(|(i, _)| *i != id) {
        cmd.args(["--peer", &format!("{peer}={a}")]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node");
    let stdout = child.stdout.take().expect("stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let value: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
            sink.lock().expect("lock").push(value);
        }
    });
    NodeProc {
        id,
        addr,
        child,
        lines,
    }
}

fn status(certs: &Path, node: &NodeProc) -> Option<Value> {
    let out = Command::new(BIN)
        .args([
            "status",
            "--json",
            "--lease",
            "default",
            "--peer",
            &format!("{}={}", node.id, node.addr),
            "--certs",
        ])
        .arg(certs)
        .output()
        .expect("run status");
    // Exit 0 with a known master, 3 without one; the JSON is printed either way.
    matches!(out.status.code(), Some(0 | 3))
        .then(|| serde_json::from_slice::<Value>(&out.stdout).expect("status prints JSON"))
        .inspect(|v| {
            let known = !v["leases"][0]["master"].is_null();
            assert_eq!(out.status.code(), Some(if known { 0 } else { 3 }), "{v}");
        })
}

fn check_fields(v: &Value) {
    let keys: BTreeSet<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let expected: &[&str] = match v["event"].as_str() {
        Some("elected" | "renewed") => &["ts_ms", "node", "event", "lease", "token", "deadline_ms"],
        Some("surrendered") => &["ts_ms", "node", "event", "lease", "token", "reason"],
        Some("master") => &["ts_ms", "node", "event", "lease", "master", "token"],
        other => panic!("unexpected event {other:?} in {v}"),
    };
    assert_eq!(keys, expected.iter().copied().collect(), "fields of {v}");
    assert!(
        v["ts_ms"].is_f64() && v["node"].is_u64() && v["lease"].is_string(),
        "{v}"
    );
    let token_ok = |t: &Value| {
        t.as_array()
            .is_some_and(|a| a.len() == 3 && a.iter().all(Value::is_u64))
    };
    match v["event"].as_str() {
        Some("master") => {
            assert!(v["master"].is_u64() || v["master"].is_null(), "{v}");
            assert!(token_ok(&v["token"]) || v["token"].is_null(), "{v}");
            assert_eq!(v["master"].is_null(), v["token"].is_null(), "{v}");
        }
        Some("surrendered") => {
            assert!(token_ok(&v["token"]), "{v}");
            assert!(
                ["expired", "resigned", "shutdown", "lost"]
                    .contains(&v["reason"].as_str().unwrap_or("")),
                "{v}"
            );
        }
        _ => assert!(token_ok(&v["token"]) && v["deadline_ms"].is_f64(), "{v}"),
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gen-paxos-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn three_node_processes_fail_over_hand_over_and_shut_down_cleanly() {
    let certs = temp_dir();
    let made = Command::new(BIN)
        .args(["certs", "--nodes", "1,2,3", "--out"])
        .arg(&certs)
        .output()
        .expect("certs");
    assert!(
        made.status.success(),
        "certs failed: {}",
        String::from_utf8_lossy(&made.stderr)
    );

    let addrs: Vec<(u64, String)> = (1..=3)
        .map(|i| (i, format!("127.0.0.1:{}", free_port())))
        .collect();
    let mut nodes: Vec<NodeProc> = (1..=3).map(|i| start(i, &addrs, &certs)).collect();

    // One master, and every node's status names it.
    wait_until("a first election", Duration::from_secs(15), || {
        nodes.iter().any(|n| !n.events("elected").is_empty())
    });
    let mut agreed = None;
    wait_until(
        "all nodes to agree on the master",
        Duration::from_secs(10),
        || {
            let masters: Vec<Option<u64>> = nodes
                .iter()
                .map(|n| status(&certs, n).and_then(|s| s["leases"][0]["master"].as_u64()))
                .collect();
            let first = masters[0];
            let same = first.is_some() && masters.iter().all(|m| *m == first);
            if same {
                agreed = first;
            }
            same
        },
    );
    let first_master = agreed.expect("agreed master");
    let electeds: Vec<u64> = nodes
        .iter()
        .filter(|n| !n.events("elected").is_empty())
        .map(|n| n.id)
        .collect();
    assert_eq!(electeds, vec![first_master], "exactly one node was elected");

    // SIGKILL the master: exactly one other node is elected, with a larger token.
    let idx = nodes
        .iter()
        .position(|n| n.id == first_master)
        .expect("master process");
    let mut dead = nodes.remove(idx);
    let dead_token = dead
        .lines
        .lock()
        .expect("lock")
        .iter()
        .filter(|v| v["event"] == "elected" || v["event"] == "renewed")
        .map(token)
        .max()
        .expect("the master printed its token");
    dead.child.kill().expect("SIGKILL");
    let _ = dead.child.wait();
    wait_until(
        "a new master after SIGKILL",
        Duration::from_secs(10),
        || nodes.iter().any(|n| !n.events("elected").is_empty()),
    );
    thread::sleep(Duration::from_millis(500));
    let new: Vec<&NodeProc> = nodes
        .iter()
        .filter(|n| !n.events("elected").is_empty())
        .collect();
    assert_eq!(new.len(), 1, "exactly one survivor is elected");
    let new_master = new[0].id;
    assert!(
        token(&new[0].events("elected")[0]) > dead_token,
        "fencing token grew past the dead master's"
    );

    // The dead node does not answer: `status` exits 4.
    let out = Command::new(BIN)
        .args([
            "status",
            "--timeout",
            "500ms",
            "--peer",
            &format!("{}={}", dead.id, dead.addr),
            "--certs",
        ])
        .arg(&certs)
        .output()
        .expect("run status");
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `gen-paxos resign` (client certificate) hands the new master's lease over to the
    // other survivor.
    let m = nodes
        .iter()
        .find(|n| n.id == new_master)
        .expect("new master");
    let last_token = m
        .events("renewed")
        .last()
        .map(token)
        .unwrap_or_else(|| token(&m.events("elected")[0]));
    let resign = |lease: &str| {
        Command::new(BIN)
            .args([
                "resign",
                "--lease",
                lease,
                "--peer",
                &format!("{}={}", m.id, m.addr),
                "--certs",
            ])
            .arg(&certs)
            .output()
            .expect("run resign")
    };
    let out = resign("nosuch");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not joined"),
        "{out:?}"
    );
    let out = resign("default");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("node {new_master} resigned default (it was master)")
    );
    let other = nodes
        .iter()
        .position(|n| n.id != new_master)
        .expect("the other survivor");
    wait_until("a handover after resign", Duration::from_secs(5), || {
        !nodes[other].events("elected").is_empty()
    });
    assert!(token(&nodes[other].events("elected")[0]) > last_token);
    let m = nodes
        .iter()
        .find(|n| n.id == new_master)
        .expect("former master");
    assert!(
        m.events("surrendered")
            .iter()
            .any(|v| v["reason"] == "resigned"),
        "the resigned master said so"
    );

    // SIGTERM: both exit 0, the master after surrendering with reason "shutdown".
    for n in &nodes {
        let ok = Command::new("kill")
            .args(["-TERM", &n.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success());
    }
    for n in &mut nodes {
        let start = Instant::now();
        let code = loop {
            if let Some(status) = n.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "node {} did not exit after SIGTERM",
                n.id
            );
            thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(code.code(), Some(0), "node {} exit status", n.id);
    }
    thread::sleep(Duration::from_millis(100));
    assert!(
        nodes[other]
            .events("surrendered")
            .iter()
            .any(|v| v["reason"] == "shutdown")
    );

    // Every line of every node follows the documented fields.
    let mut count = 0;
    for n in nodes.iter().chain(std::iter::once(&dead)) {
        for v in n.lines.lock().expect("lock").iter() {
            check_fields(v);
            assert_eq!(v["node"].as_u64(), Some(n.id));
            count += 1;
        }
    }
    assert!(count > 10, "only {count} event lines");
    let _ = std::fs::remove_dir_all(&certs);
}

/// A node whose peers never started: `status` answers but exits 3 (no master known), and
/// lists the peers as down, not alive.
#[test]
fn a_lone_node_reports_no_master_and_its_peers_down() {
    let certs = std::env::temp_dir().join(format!("gen-paxos-lone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&certs);
    let made = Command::new(BIN)
        .args(["certs", "--nodes", "1,2,3", "--out"])
        .arg(&certs)
        .output()
        .expect("certs");
    assert!(made.status.success());
    let addrs: Vec<(u64, String)> = (1..=3)
        .map(|i| (i, format!("127.0.0.1:{}", free_port())))
        .collect();
    let node = start(1, &addrs, &certs);
    let mut answer = None;
    wait_until("node 1 to answer status", Duration::from_secs(10), || {
        let out = Command::new(BIN)
            .args([
                "status",
                "--json",
                "--peer",
                &format!("1={}", node.addr),
                "--certs",
            ])
            .arg(&certs)
            .output()
            .expect("run status");
        answer = (out.status.code() != Some(4)).then_some(out);
        answer.is_some()
    });
    let out = answer.expect("answered");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["alive"], serde_json::json!([1]), "{v}");
    assert_eq!(v["down"], serde_json::json!([2, 3]), "{v}");
    assert!(v["leases"][0]["master"].is_null(), "{v}");
    let _ = std::fs::remove_dir_all(&certs);
}
