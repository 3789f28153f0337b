//! `gen-paxos` refuses bad input with one clear error line and a non-zero exit, never a
//! panic; and a node starts from a TOML configuration file.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod procs;

use procs::{BIN, free_addr, make_certs as certs, temp_dir as dir};

/// Runs a command that must fail: returns its stderr, checked to be short and panic-free.
fn fails(args: &[&str]) -> String {
    let out: Output = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{args:?} panicked: {err}"
    );
    err
}

fn one_line(err: &str) -> &str {
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    lines[0]
}

#[test]
fn unreadable_mismatched_and_missing_certificates_are_one_line_errors() {
    let d = dir("badcerts");
    let listen = free_addr();
    let e = fails(&[
        "node",
        "--id",
        "1",
        "--listen",
        &listen,
        "--certs",
        "/nonexistent/gen-paxos",
    ]);
    assert!(
        one_line(&e).starts_with("gen-paxos: cannot load node-1.pem"),
        "{e}"
    );

    certs(&d, "1,2");
    // Node 2's certificate presented as node 1's: the identity does not match.
    for ext in ["pem", "key"] {
        std::fs::copy(
            d.join(format!("node-2.{ext}")),
            d.join(format!("node-1.{ext}")),
        )
        .expect("copy");
    }
    let e = fails(&[
        "node",
        "--id",
        "1",
        "--listen",
        &listen,
        "--peer",
        "2=127.0.0.1:9",
        "--certs",
        d.to_str().expect("utf8"),
    ]);
    assert!(
        one_line(&e).starts_with("gen-paxos: cannot start node 1"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_port_in_use_is_a_one_line_error() {
    let d = dir("port");
    certs(&d, "1");
    let busy = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let e = fails(&[
        "node",
        "--id",
        "1",
        "--listen",
        &addr,
        "--single-node",
        "--certs",
        d.to_str().expect("utf8"),
    ]);
    let line = one_line(&e);
    assert!(
        line.starts_with("gen-paxos: cannot start node 1 on") && line.contains("in use"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `gen-paxos node --id 1 --listen 127.0.0.1:1 --certs /tmp EXTRA...`, which must fail.
fn node_fails(extra: &[&str]) -> String {
    let mut args = vec![
        "node",
        "--id",
        "1",
        "--listen",
        "127.0.0.1:1",
        "--certs",
        "/tmp",
    ];
    args.extend_from_slice(extra);
    fails(&args)
}

#[test]
fn bad_flags_and_values_are_refused() {
    let e = fails(&["node", "--bogus"]);
    assert!(e.contains("--bogus"), "{e}");
    let e = node_fails(&["--peer", "two=127.0.0.1:2"]);
    assert!(e.contains("not a node id"), "{e}");
    let e = node_fails(&["--lease-duration", "soon"]);
    assert!(e.contains("--lease-duration"), "{e}");
    let e = node_fails(&["--priority", "9"]);
    assert!(one_line(&e).contains("--priority"), "{e}");
    let e = fails(&["node", "--listen", "127.0.0.1:1", "--certs", "/tmp"]);
    assert!(one_line(&e).contains("missing --id"), "{e}");
    let e = fails(&[
        "status",
        "--certs",
        "/nonexistent",
        "--peer",
        "1=127.0.0.1:1",
    ]);
    assert!(
        one_line(&e).starts_with("gen-paxos: cannot load client.pem"),
        "{e}"
    );
    // A load that cannot measure anything is refused before it connects.
    let bench = |extra: &[&str]| {
        let mut args = vec![
            "kv",
            "--certs",
            "/nonexistent",
            "--peer",
            "1=127.0.0.1:1",
            "bench",
        ];
        args.extend_from_slice(extra);
        fails(&args)
    };
    for (extra, says) in [
        (&["--clients", "0"][..], "--clients"),
        (&["--duration", "0s"][..], "--duration"),
        (&["--rate=-5"][..], "--rate"),
        (&["--op", "scan"][..], "scan"),
    ] {
        let e = bench(extra);
        assert!(e.contains(says), "{extra:?}: {e}");
    }
    let e = node_fails(&["--max-clients", "0"]);
    assert!(one_line(&e).contains("--max-clients"), "{e}");
}

#[test]
fn certs_refuse_to_overwrite_without_force() {
    let d = dir("overwrite");
    certs(&d, "1,2");
    let before = std::fs::read(d.join("ca.key")).expect("ca.key");
    let e = fails(&[
        "certs",
        "--nodes",
        "1,2",
        "--out",
        d.to_str().expect("utf8"),
    ]);
    assert!(one_line(&e).contains("--force"), "{e}");
    assert_eq!(
        std::fs::read(d.join("ca.key")).expect("ca.key"),
        before,
        "nothing was overwritten"
    );
    let ok = Command::new(BIN)
        .args(["certs", "--force", "--nodes", "1,2", "--out"])
        .arg(&d)
        .output()
        .expect("run");
    assert!(ok.status.success());
    assert_ne!(std::fs::read(d.join("ca.key")).expect("ca.key"), before);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("node-1.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "private keys are readable by the owner only"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_node_runs_from_a_toml_file() {
    let d = dir("toml");
    certs(&d, "1,2");
    let config = d.join("node.toml");
    let text = format!(
        "id = 1\nlisten = \"{}\"\ncerts = \"{}\"\nleases = [\"alpha\"]\nlease_duration = \"300ms\"\n\n[peers]\n2 = \"{}\"\n",
        free_addr(),
        d.display(),
        free_addr()
    );
    std::fs::write(&config, text).expect("write config");
    // Two voters, only one running: no majority, so no election; the node must still run,
    // answer to SIGTERM and exit 0.
    let mut child = Command::new(BIN)
        .args(["node", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the node exited early"
    );
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("read");
    assert!(
        err.contains("leases [\"alpha\"]"),
        "the file's lease list was used: {err}"
    );

    std::fs::write(&config, "id = 1\nbogus = true\n").expect("write");
    let e = fails(&["node", "--config", config.to_str().expect("utf8")]);
    assert!(e.contains("is not a valid node configuration"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

/// Finding 1a of the field-safety issue: a node started without its peers was a one-voter
/// cluster of its own and a second master. Now it must be told `--single-node`.
#[test]
fn a_node_without_peers_is_refused_unless_single_node() {
    let d = dir("single");
    certs(&d, "1,2,3");
    let listen = free_addr();
    let e = fails(&[
        "node",
        "--id",
        "3",
        "--listen",
        &listen,
        "--certs",
        d.to_str().expect("utf8"),
    ]);
    let line = one_line(&e);
    assert!(
        line.contains("only voter") && line.contains("--single-node") && line.contains("--peer"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Two peer ids at one address, or a peer at this node's own address, cannot be right.
#[test]
fn peers_sharing_an_address_are_refused() {
    let d = dir("sameaddr");
    certs(&d, "1,2,3");
    let listen = free_addr();
    let other = free_addr();
    let e = fails(&[
        "node",
        "--id",
        "1",
        "--listen",
        &listen,
        "--peer",
        &format!("2={other}"),
        "--peer",
        &format!("3={other}"),
        "--certs",
        d.to_str().expect("utf8"),
    ]);
    assert!(
        one_line(&e).contains("peers 2 and 3 are both given the address"),
        "{e}"
    );
    let e = fails(&[
        "node",
        "--id",
        "1",
        "--listen",
        &listen,
        "--peer",
        &format!("2={listen}"),
        "--peer",
        &format!("3={other}"),
        "--certs",
        d.to_str().expect("utf8"),
    ]);
    assert!(one_line(&e).contains("this node's own address"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A node refuses to start, in one line, with a certificate its peers would refuse: one
/// from another CA than its `ca.pem`, or a key that is not the certificate's.
#[test]
fn a_certificate_the_cluster_would_refuse_stops_the_node_at_start() {
    let (ours, theirs) = (dir("ca-ours"), dir("ca-theirs"));
    certs(&ours, "1,2");
    certs(&theirs, "1,2");
    let listen = free_addr();
    let run = |d: &Path| {
        fails(&[
            "node",
            "--id",
            "1",
            "--listen",
            &listen,
            "--peer",
            "2=127.0.0.1:9",
            "--certs",
            d.to_str().expect("utf8"),
        ])
    };
    // Node 1's certificate and key from another cluster's CA.
    for ext in ["pem", "key"] {
        std::fs::copy(
            theirs.join(format!("node-1.{ext}")),
            ours.join(format!("node-1.{ext}")),
        )
        .expect("copy");
    }
    let e = run(&ours);
    assert!(
        one_line(&e).contains("not one the cluster CA (ca.pem) vouches for"),
        "{e}"
    );
    // Node 1's own certificate with node 2's key.
    std::fs::copy(theirs.join("node-2.key"), theirs.join("node-1.key")).expect("copy");
    let e = run(&theirs);
    assert!(
        one_line(&e).contains("the private key does not belong to the certificate"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&ours);
    let _ = std::fs::remove_dir_all(&theirs);
}
