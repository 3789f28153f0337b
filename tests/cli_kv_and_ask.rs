//! End to end with real processes: three `gen-paxos node --kv --data-dir` over QUIC on
//! loopback; `gen-paxos kv` put/get/cas/delete through any node with its exit codes and
//! JSON; SIGKILL of the kv master keeps every acknowledged write; the killed node restarts
//! on its data directory and serves it; a node whose data directory was emptied is refused;
//! `gen-paxos ask` agrees through every node; a node without a data directory refuses
//! `--kv` and `ask` clearly.

mod procs;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use procs::{BIN, Proc, free_addr, make_certs, peer_args, temp_dir};

struct Cluster {
    dir: PathBuf,
    addrs: Vec<(u64, String)>,
}

impl Cluster {
    fn new(name: &str) -> Cluster {
        let dir = temp_dir(&format!("kv-{name}"));
        std::fs::create_dir_all(&dir).expect("dir");
        make_certs(&dir.join("certs"), "1,2,3");
        let addrs = (1..=3).map(|i| (i, free_addr())).collect();
        Cluster { dir, addrs }
    }

    fn certs(&self) -> PathBuf {
        self.dir.join("certs")
    }

    fn addr(&self, id: u64) -> &str {
        &self.addrs[id as usize - 1].1
    }

    fn start(&self, id: u64, data: bool) -> Proc {
        self.start_with(id, data, true)
    }

    /// Starts node `id`; `data`: with its data directory (made on the first start).
    fn start_with(&self, id: u64, data: bool, kv: bool) -> Proc {
        let mut args: Vec<String> = vec!["--lease-duration".into(), "500ms".into()];
        if kv {
            args.push("--kv".into());
        }
        if data {
            let dir = self.dir.join(format!("data-{id}"));
            if !dir.exists() {
                args.push("--init-data-dir".into());
            }
            args.push("--data-dir".into());
            args.push(dir.display().to_string());
        }
        let peers: Vec<(u64, &str)> = self
            .addrs
            .iter()
            .filter(|(i, _)| *i != id)
            .map(|(i, a)| (*i, a.as_str()))
            .collect();
        args.extend(peer_args("--peer", &peers));
        Proc::start(id, self.addr(id), &self.certs(), &args)
    }

    fn tool(&self, via: u64, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg(args[0])
            .arg("--certs")
            .arg(self.certs())
            .args(["--peer", &format!("{via}={}", self.addr(via))])
            .args(["--timeout", "5s"])
            .args(&args[1..])
            .output()
            .expect("run the tool")
    }

    /// Node `id`'s view of the `kv` lease (`status --json`): master, applied, ready.
    fn kv_status(&self, id: u64) -> serde_json::Value {
        let out = self.tool(id, &["status", "--json", "--lease", "kv"]);
        json(String::from_utf8_lossy(&out.stdout).trim())["leases"][0].clone()
    }

    /// Retries `args` through `via` until it exits `code` (the cluster may still be
    /// electing); returns its stdout.
    fn until(&self, via: u64, args: &[&str], code: i32) -> String {
        let start = Instant::now();
        loop {
            let out = self.tool(via, args);
            if out.status.code() == Some(code) {
                return String::from_utf8_lossy(&out.stdout).trim().to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{args:?} via {via}: exit {:?}, {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {text:?}: {e}"))
}

#[test]
fn kv_writes_survive_a_killed_master_and_a_restart_and_ask_agrees() {
    let c = Cluster::new("main");
    let mut nodes: Vec<Option<Proc>> = (1..=3).map(|i| Some(c.start(i, true))).collect();
    // Any node takes the request (a follower forwards it to the master).
    let put = json(&c.until(2, &["kv", "--json", "put", "color", "red"], 0));
    assert_eq!(put["ok"], true);
    assert!(put["index"].is_u64(), "{put}");
    assert_eq!(c.until(3, &["kv", "get", "color"], 0), "red");
    assert_eq!(
        c.until(1, &["kv", "cas", "color", "red", "blue"], 0)
            .split(' ')
            .next(),
        Some("ok")
    );
    // A compare-and-set whose value differs is refused (exit 2) and says what it found.
    let refused = c.tool(1, &["kv", "--json", "cas", "color", "red", "green"]);
    assert_eq!(refused.status.code(), Some(2));
    let refused = json(String::from_utf8_lossy(&refused.stdout).trim());
    assert_eq!(
        (refused["ok"].clone(), refused["value"].clone()),
        (false.into(), "blue".into())
    );
    c.until(2, &["kv", "put", "shape", "circle"], 0);
    c.until(2, &["kv", "delete", "shape"], 0);
    assert_eq!(c.until(2, &["kv", "get", "shape"], 0), "(absent)");
    // `kv bench`: load through a follower (it forwards), every request done and counted
    // (a run that met a lease change on a busy machine is tried again).
    let leader = (1..=3)
        .find(|&i| c.kv_status(i)["ready"] == true)
        .expect("a kv master");
    let follower = (1..=3).find(|&i| i != leader).expect("a follower");
    for op in ["put", "get", "ping"] {
        let args = [
            "kv",
            "--json",
            "bench",
            "--op",
            op,
            "--clients",
            "2",
            "--duration",
            "300ms",
            "--warmup",
            "100ms",
            "--keys",
            "3",
        ];
        let mut tries = 0;
        let v = loop {
            tries += 1;
            let out = c.tool(follower, &args);
            let v = json(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.code() == Some(0) || tries == 3 {
                assert_eq!(out.status.code(), Some(0), "{op}: {v}");
                break v;
            }
        };
        assert!(v["done"].as_u64() > Some(0), "{op}: {v}");
        assert_eq!(
            (v["failed"].as_u64(), v["unknown"].as_u64()),
            (Some(0), Some(0)),
            "{v}"
        );
    }
    // The bench's puts were real writes: `bench-0`..`bench-2` hold 16-byte values.
    assert_eq!(c.until(1, &["kv", "get", "bench-0"], 0).len(), 16);

    // SIGKILL whichever node is the kv master: the next one serves every acknowledged write.
    let master = (1..=3)
        .find(|&i| c.kv_status(i)["master"].as_u64() == Some(i))
        .expect("a kv master");
    // Status tells the log's progress: the master serves it, having applied every write;
    // the others apply them too (a follower learns the last commit with the next renewal).
    let on_master = c.kv_status(master);
    assert_eq!(on_master["ready"], true, "{on_master}");
    assert!(on_master["applied"].as_u64() >= Some(5), "{on_master}");
    for i in (1..=3).filter(|&i| i != master) {
        assert!(
            procs::within(Duration::from_secs(5), || c.kv_status(i)["applied"]
                == on_master["applied"]),
            "node {i}: {} (the master: {on_master})",
            c.kv_status(i)
        );
        assert_eq!(c.kv_status(i)["ready"], false);
    }
    nodes[master as usize - 1] = None;
    let other = (1..=3).find(|&i| i != master).expect("another node");
    assert_eq!(c.until(other, &["kv", "get", "color"], 0), "blue");
    c.until(other, &["kv", "put", "after", "failover"], 0);
    // The killed node restarts on its data directory and serves the store again.
    nodes[master as usize - 1] = Some(c.start(master, true));
    assert_eq!(c.until(master, &["kv", "get", "after"], 0), "failover");
    // ask: the first value chosen is every caller's answer, through any node.
    let first = c.until(1, &["ask", "config/a", "one"], 0);
    assert_eq!(first, "one");
    assert_eq!(c.until(2, &["ask", "config/a", "two"], 0), "one");
    assert_eq!(
        json(&c.until(3, &["ask", "--json", "--get", "config/a"], 0))["value"],
        "one"
    );
    assert_eq!(
        c.until(3, &["ask", "--forget", "config/a"], 0),
        "forgot instance 0"
    );
    assert_eq!(c.until(1, &["ask", "--get", "config/a"], 0), "(undecided)");
    // A node whose data directory was emptied is refused, not trusted as new.
    let victim = (1..=3).find(|&i| i != master).expect("a node");
    nodes[victim as usize - 1] = None;
    let data = c.dir.join(format!("data-{victim}"));
    for entry in std::fs::read_dir(&data).expect("list") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove");
    }
    let mut refused = c.start_with(victim, true, true);
    assert!(
        procs::within(Duration::from_secs(10), || refused.exited().is_some()),
        "a node on an emptied data directory must not start"
    );
    // The exit can be seen before the reader thread has taken the last line of stderr.
    assert!(
        procs::within(Duration::from_secs(5), || refused
            .stderr()
            .contains("holds no gen-paxos data")),
        "{}",
        refused.stderr()
    );

    drop(nodes);
}

#[test]
fn without_a_data_directory_kv_and_ask_are_refused_clearly() {
    let c = Cluster::new("nodata");
    let out = Command::new(BIN)
        .args([
            "node",
            "--id",
            "1",
            "--listen",
            c.addr(1),
            "--kv",
            "--certs",
        ])
        .arg(c.certs())
        .args(["--peer", &format!("2={}", c.addr(2))])
        .args(["--peer", &format!("3={}", c.addr(3))])
        .output()
        .expect("run");
    assert!(
        !out.status.success(),
        "--kv without --data-dir must not start"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--data-dir"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    // A node without a data directory answers `ask` with why it cannot (exit 1).
    let _node = c.start_with(1, false, false);
    let start = Instant::now();
    let out = loop {
        let out = c.tool(1, &["ask", "config/a", "one"]);
        if out.status.code() != Some(4) || start.elapsed() > Duration::from_secs(20) {
            break out;
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("storage"),
        "{out:?}"
    );
}

#[test]
fn a_follower_behind_a_snapshot_of_megabytes_catches_up() {
    // A 2.4 MB state: its snapshot is larger than a default 1 MiB frame, and a follower
    // that fell behind the others' snapshot must still receive it.
    let c = Cluster::new("bigsnap");
    let nodes: Vec<Proc> = (1..=3).map(|i| c.start(i, true)).collect();
    c.until(1, &["kv", "put", "warm", "up"], 0);
    let master = (1..=3)
        .find(|&i| c.kv_status(i)["ready"] == true)
        .expect("a kv master");
    // (A single argument may not pass 128 KiB.)
    let big = "x".repeat(100_000);
    for k in 0..24 {
        c.until(master, &["kv", "put", &format!("big-{k}"), &big], 0);
    }
    let follower = (1..=3).find(|&i| i != master).expect("a follower");
    let pid = nodes[follower as usize - 1].pid().to_string();
    let signal = |s: &str| {
        Command::new("kill").args([s, &pid]).status().expect("kill");
    };
    signal("-STOP");
    // Over 10,000 small writes (a snapshot every 10,000 entries): the others snapshot
    // and cut their logs below what the stopped follower has.
    let start = Instant::now();
    let target = loop {
        c.tool(
            master,
            &[
                "kv",
                "bench",
                "--op",
                "put",
                "--clients",
                "16",
                "--duration",
                "2s",
                "--warmup",
                "0s",
                "--keys",
                "5",
                "--value-size",
                "8",
            ],
        );
        let applied = c.kv_status(master)["applied"].as_u64().expect("applied");
        if applied > 11_000 {
            break applied;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {applied} writes"
        );
    };
    signal("-CONT");
    let caught_up = procs::within(Duration::from_secs(30), || {
        c.kv_status(follower)["applied"].as_u64() >= Some(target)
    });
    assert!(
        caught_up,
        "the follower applied {} of {target}",
        c.kv_status(follower)["applied"]
    );
    drop(nodes);
}
