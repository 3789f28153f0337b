//! The key-value store under real faults, checked for linearizability: three
//! `gen-paxos node --kv --data-dir` processes on loopback, client threads running a mixed
//! put/get/cas/delete workload through random nodes with `gen-paxos kv --json`, while the
//! kv master is SIGKILLed and restarted on its data directory, then paused (SIGSTOP) well
//! past its lease and resumed, and read through at once after each. Every operation's
//! call and return times go into a history; an operation whose outcome is unknown (exit 5)
//! counts as possibly applied, one that did not happen (exit 4) is left out. The history
//! must be linearizable (`gen_paxos_harness::linearizability`).
//!
//! A second run puts each node in its own network namespace (`ip netns`, `nft` rules cut
//! links; skipped, saying so, where they cannot be made) with clock rates skewed within
//! `rho` (one node 0.09% fast, one 0.09% slow), and adds partitions around the kv master
//! (isolated, one-way muted, one-way deafened, a chain, a star that loses the quorum) to
//! the kills and pauses; clients run in the namespace of the node they ask, so a client of
//! a cut-off node still reaches it.
//!
//! `KV_SOAK_SECS=1200 cargo test --release --test kv_linearizable -- --nocapture` runs
//! the same for 20 minutes (a kill and restart or a pause every 5-6 s), the soak
//! docs/REPLICATION.md reports.

mod procs;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gen_paxos_harness::fault::{Netns, partition_shape};
use gen_paxos_harness::linearizability::{self, Event, Op};
use procs::{BIN, Proc, free_addr, make_certs, peer_args, temp_dir};

const KEYS: [&str; 3] = ["a", "b", "c"];

struct Cluster {
    dir: PathBuf,
    addrs: Vec<String>,
    nodes: Mutex<Vec<Option<Proc>>>,
    /// One namespace per node, when the run cuts links.
    net: Option<Netns>,
    /// Each node's clock rate (`--clock-rate-for-tests`), when skewed.
    rates: [Option<f64>; 3],
}

impl Cluster {
    /// A cluster in its own temporary directory, `lin-NAME` (tests run side by side).
    fn new(name: &str, net: Option<Netns>, rates: [Option<f64>; 3]) -> Cluster {
        let dir = temp_dir(&format!("lin-{name}"));
        std::fs::create_dir_all(&dir).expect("dir");
        make_certs(&dir.join("certs"), "1,2,3");
        let addrs = match &net {
            // Each node has its namespace's ports to itself.
            Some(_) => (1..=3)
                .map(|id| format!("{}:7000", Netns::ip(id)))
                .collect(),
            None => (0..3).map(|_| free_addr()).collect(),
        };
        let c = Cluster {
            dir,
            addrs,
            nodes: Mutex::new(vec![None, None, None]),
            net,
            rates,
        };
        for id in 1..=3 {
            c.start(id);
        }
        c
    }

    fn start(&self, id: u64) {
        let data = self.dir.join(format!("data-{id}"));
        let mut args: Vec<String> = vec!["--lease-duration".into(), "500ms".into(), "--kv".into()];
        if !data.exists() {
            args.push("--init-data-dir".into());
        }
        args.push("--data-dir".into());
        args.push(data.display().to_string());
        if let Some(rate) = self.rates[id as usize - 1] {
            args.push("--clock-rate-for-tests".into());
            args.push(rate.to_string());
        }
        let peers: Vec<(u64, &str)> = (1..=3u64)
            .filter(|p| *p != id)
            .map(|p| (p, self.addrs[p as usize - 1].as_str()))
            .collect();
        args.extend(peer_args("--peer", &peers));
        let (addr, certs) = (&self.addrs[id as usize - 1], self.dir.join("certs"));
        let node = match &self.net {
            Some(net) => Proc::start_in_netns(&net.ns(id), id, addr, &certs, &args),
            None => Proc::start(id, addr, &certs, &args),
        };
        self.nodes.lock().expect("lock")[id as usize - 1] = Some(node);
    }

    /// The tool, run where node `via` can be reached (in its namespace, if it has one),
    /// with the client certificate and `--peer via=ADDR` after `command`.
    fn tool(&self, via: u64, command: &[&str]) -> Command {
        let mut c = match &self.net {
            Some(net) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &net.ns(via), BIN]);
                c
            }
            None => Command::new(BIN),
        };
        c.args(command)
            .arg("--certs")
            .arg(self.dir.join("certs"))
            .args(["--peer", &format!("{via}={}", self.addrs[via as usize - 1])]);
        c
    }

    /// Sends `signal` (e.g. `-STOP`, `-CONT`) to node `id`'s process.
    fn signal(&self, id: u64, signal: &str) {
        let pid = self.nodes.lock().expect("lock")[id as usize - 1]
            .as_ref()
            .map(Proc::pid);
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    }

    fn kill(&self, id: u64) {
        // Dropping a node process kills it (SIGKILL) and waits for it.
        self.nodes.lock().expect("lock")[id as usize - 1] = None;
    }

    /// Runs `gen-paxos kv --json ARGS` through node `via`: the exit code and the JSON.
    fn kv(&self, via: u64, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let out = self
            .tool(via, &["kv", "--json", "--timeout", "3s"])
            .args(args)
            .output()
            .expect("run kv");
        let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out.status.code(), json)
    }

    /// The node that is kv master as the running nodes report it, if any answers.
    fn master(&self) -> Option<u64> {
        let running: Vec<u64> = (1..=3)
            .filter(|id| self.nodes.lock().expect("lock")[*id as usize - 1].is_some())
            .collect();
        running.into_iter().find_map(|id| {
            let out = self
                .tool(
                    id,
                    &["status", "--json", "--lease", "kv", "--timeout", "1s"],
                )
                .output()
                .ok()?;
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            status["leases"][0]["master"].as_u64()
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in 1..=3 {
            self.kill(id);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One client: random operations through random nodes until `stop`.
fn client(c: &Cluster, me: usize, start: Instant, stop: &AtomicBool, history: &Mutex<Vec<Event>>) {
    let mut rng = fastrand::Rng::with_seed(me as u64 + 11);
    let mut n = 0;
    let mut last: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = KEYS[rng.usize(..KEYS.len())];
        let via = rng.u64(1..=3);
        let value = format!("c{me}-{n}");
        let roll = rng.u32(..100);
        let (args, op): (Vec<String>, Op) = if roll < 35 {
            (
                vec!["put".into(), key.into(), value.clone()],
                Op::Put(value),
            )
        } else if roll < 75 {
            (vec!["get".into(), key.into()], Op::Get(None))
        } else if roll < 95 {
            let old = last.clone();
            let args = match &old {
                Some(old) => vec!["cas".into(), key.into(), old.clone(), value.clone()],
                None => vec!["cas".into(), "--absent".into(), key.into(), value.clone()],
            };
            (
                args,
                Op::Cas {
                    old,
                    new: value,
                    done: None,
                },
            )
        } else {
            (vec!["delete".into(), key.into()], Op::Delete)
        };
        let call = start.elapsed().as_nanos() as u64;
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, json) = c.kv(via, &refs);
        let ret = start.elapsed().as_nanos() as u64;
        let seen = json["value"].as_str().map(str::to_string);
        let (op, ret) = match (code, op) {
            (Some(0), Op::Get(_)) => {
                last = seen.clone();
                (Op::Get(seen), Some(ret))
            }
            (Some(0), Op::Cas { old, new, .. }) => (
                Op::Cas {
                    old,
                    new,
                    done: Some(true),
                },
                Some(ret),
            ),
            (Some(2), Op::Cas { old, new, .. }) => {
                last = seen;
                (
                    Op::Cas {
                        old,
                        new,
                        done: Some(false),
                    },
                    Some(ret),
                )
            }
            (Some(0), op) => (op, Some(ret)),
            // Nothing happened: leave it out.
            (Some(4), _) => continue,
            // Unknown (exit 5) or anything unexpected: possibly applied, never answered.
            (_, Op::Get(_)) => continue,
            (_, op) => (op, None),
        };
        history.lock().expect("lock").push(Event {
            key: key.to_string(),
            op,
            call,
            ret,
        });
    }
}

/// A fault around the kv master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL, restart on its data directory 2 s later.
    Kill,
    /// SIGSTOP for 2 s (four leases), then SIGCONT.
    Pause,
    /// Links cut in one of `partition_shape`'s shapes around the master for 2 s.
    Partition(usize),
}

/// What a run did.
#[derive(Debug, Default)]
struct Run {
    faults: Vec<String>,
    answered: usize,
    unknown: usize,
}

/// Runs the workload on `c` for `KV_SOAK_SECS` (default `secs`) with `faults` in turn, each
/// followed by reads through the node it hit; checks the history (kept in the temporary
/// directory as `gen-paxos-kv-history-NAME.txt`).
fn run(name: &str, c: &Arc<Cluster>, faults: &[Fault], secs: u64) -> Run {
    // Wait for a master and a first write.
    let ready = Instant::now();
    while c.kv(1, &["put", "a", "init"]).0 != Some(0) {
        assert!(ready.elapsed() < Duration::from_secs(30), "no kv master");
        thread::sleep(Duration::from_millis(100));
    }
    let secs: u64 = std::env::var("KV_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(secs);
    let start = Instant::now();
    // The first write is part of the history: it returned before `start`, so before every
    // other operation (left out, a read of "init" had no write to explain it: the history
    // in tests/kv-histories was refused so).
    let history = Arc::new(Mutex::new(vec![Event {
        key: "a".to_string(),
        op: Op::Put("init".to_string()),
        call: 0,
        ret: Some(0),
    }]));
    // At least `secs`, and until every fault of the list ran (within a bound).
    let until = start + Duration::from_secs(secs);
    let limit = until + Duration::from_secs(12 * faults.len() as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|me| {
            let (c, history, stop) = (c.clone(), history.clone(), stop.clone());
            thread::spawn(move || client(&c, me, start, &stop, &history))
        })
        .collect();
    let mut rng = fastrand::Rng::with_seed(5);
    let mut done = Vec::new();
    let mut round = 0;
    // Reads through `node`: one that answered from its own (stale) copy would show here.
    let probe = |node: u64, length: Duration| {
        let probe_until = Instant::now() + length;
        while Instant::now() < probe_until {
            for key in KEYS {
                let call = start.elapsed().as_nanos() as u64;
                let (code, json) = c.kv(node, &["get", key]);
                let ret = start.elapsed().as_nanos() as u64;
                if code == Some(0) {
                    history.lock().expect("lock").push(Event {
                        key: key.to_string(),
                        op: Op::Get(json["value"].as_str().map(str::to_string)),
                        call,
                        ret: Some(ret),
                    });
                }
            }
        }
    };
    while Instant::now() < until || (round < faults.len() && Instant::now() < limit) {
        thread::sleep(Duration::from_secs(3));
        let Some(master) = c.master() else { continue };
        let fault = faults[round % faults.len()];
        round += 1;
        match fault {
            Fault::Kill => {
                c.kill(master);
                done.push(format!("node {master} killed"));
                thread::sleep(Duration::from_secs(2));
                c.start(master);
            }
            Fault::Pause => {
                // A pause (a GC stop, a frozen VM) well past the lease: the others elect a
                // new master meanwhile; the old one, resumed, must not serve a stale read.
                c.signal(master, "-STOP");
                done.push(format!("node {master} paused"));
                thread::sleep(Duration::from_secs(2));
                c.signal(master, "-CONT");
            }
            Fault::Partition(shape) => {
                let net = c.net.as_ref().expect("partitions need namespaces");
                let (cuts, what) = partition_shape(shape, master, 3, &mut rng);
                net.set_cuts(&cuts).expect("cut links");
                done.push(what);
                // Reads through the old master while it is cut off, once its lease is
                // surely over: never a stale value.
                thread::sleep(Duration::from_secs(1));
                probe(master, Duration::from_secs(1));
                net.set_cuts(&[]).expect("heal");
            }
        }
        probe(master, Duration::from_secs(1));
    }
    stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.join().expect("client");
    }
    assert!(
        round >= faults.len(),
        "only {round} of {} faults ran: {done:?}",
        faults.len()
    );
    let history = history.lock().expect("lock").clone();
    let answered = history.iter().filter(|e| e.ret.is_some()).count();
    let unknown = history.len() - answered;
    println!(
        "history: {} operations ({answered} answered, {unknown} unknown), faults: {done:?}",
        history.len()
    );
    // Kept for a second look (a soak's history can be checked again offline).
    let lines: Vec<String> = history.iter().map(|e| format!("{e:?}")).collect();
    let _ = std::fs::write(
        std::env::temp_dir().join(format!("gen-paxos-kv-history-{name}.txt")),
        lines.join("\n"),
    );
    assert!(answered > 100, "the workload barely ran: {answered}");
    if let Err(v) = linearizability::check(&history) {
        panic!("not linearizable on key {}:\n{:#?}", v.key, v.history);
    }
    Run {
        faults: done,
        answered,
        unknown,
    }
}

#[test]
fn the_kv_store_is_linearizable_while_its_master_is_killed_and_restarted() {
    let c = Arc::new(Cluster::new("kill-pause", None, [None; 3]));
    let r = run("kill-pause", &c, &[Fault::Kill, Fault::Pause], 16);
    for kind in ["killed", "paused"] {
        assert!(
            r.faults.iter().any(|f| f.contains(kind)),
            "no node {kind}: {:?}",
            r.faults
        );
    }
}

#[test]
fn the_kv_store_is_linearizable_under_partitions_and_clock_skew() {
    if let Some(why) = Netns::unavailable() {
        println!("SKIPPED: partitions need network namespaces: {why}");
        return;
    }
    let net = Netns::create(3).expect("namespaces");
    // Within rho (0.1%): the guarantee's condition, at its edge.
    let c = Arc::new(Cluster::new(
        "partition-skew",
        Some(net),
        [Some(1.0009), None, Some(0.9991)],
    ));
    let faults = [
        Fault::Partition(0),
        Fault::Kill,
        Fault::Partition(2),
        Fault::Partition(3),
        Fault::Pause,
        Fault::Partition(4),
        Fault::Partition(5),
    ];
    let r = run("partition-skew", &c, &faults, 24);
    for kind in [
        "isolated", "muted", "deafened", "chain", "star", "killed", "paused",
    ] {
        assert!(
            r.faults.iter().any(|f| f.contains(kind)),
            "no {kind} fault: {:?}",
            r.faults
        );
    }
    println!("answered {}, unknown {}", r.answered, r.unknown);
}
