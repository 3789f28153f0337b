//! The README's "Running a cluster by hand" commands, pasted into an interactive bash,
//! run a cluster that elects.
//!
//! Found by trying the README as a new user: the nodes, started with `&` in an
//! interactive shell, read their stdin, so the shell stopped all three ("Stopped (tty
//! input)") and `status` timed out. The block is taken from README.md itself and typed
//! into `bash -i` on a pseudo-terminal (util-linux `script`), with only the binary, the
//! directory and the ports replaced; the test adds a `status` whose exit code it checks.

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gen-paxos");

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The first `sh` block after the "Running a cluster by hand" heading.
fn readme_block() -> String {
    let readme = include_str!("../README.md");
    let section = readme
        .split("## Running a cluster by hand")
        .nth(1)
        .expect("the README has the section");
    let start = section.find("```sh\n").expect("an sh block") + "```sh\n".len();
    let end = section[start..].find("```").expect("the block ends") + start;
    section[start..end].to_string()
}

#[test]
fn the_readmes_commands_run_a_cluster_in_an_interactive_shell() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: util-linux `script` is not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("gen-paxos-by-hand-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let block = readme_block();
    assert!(
        block.contains(" &\n"),
        "the README starts nodes in the background"
    );
    let mut script = String::new();
    let ports = [free_port(), free_port(), free_port()];
    for line in block.lines() {
        if line.starts_with("cargo build") {
            continue;
        }
        let mut line = line
            .replace("target/release/gen-paxos", BIN)
            .replace("/tmp/gen-paxos-by-hand", &dir.display().to_string());
        for (i, port) in ports.iter().enumerate() {
            line = line.replace(
                &format!("127.0.0.1:700{}", i + 1),
                &format!("127.0.0.1:{port}"),
            );
        }
        if line.starts_with("kill") {
            // Before the nodes go: is there a master? (0 = yes; 3 = none; 4 = no answer)
            script.push_str(&format!(
                "$B status --certs $D --peer 3=127.0.0.1:{}; echo \"STATUS_EXIT=$?\"\n",
                ports[2]
            ));
            script.push_str("jobs\n");
        }
        script.push_str(&line);
        script.push('\n');
    }
    script.push_str("wait; echo \"ALL_DONE\"\nexit\n");

    let mut child = Command::new("script")
        .args(["-qec", "bash --norc --noprofile -i", "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run script");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("type the commands");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    // Stopped jobs would make `wait` hang for ever: give the shell 30 s.
    let started = Instant::now();
    let finished = loop {
        if child.try_wait().expect("wait").is_some() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = String::from_utf8_lossy(&reader.join().expect("reader")).replace('\r', "");
    assert!(finished, "the shell did not finish within 30 s:\n{text}");
    assert!(!text.contains("Stopped"), "a job was stopped:\n{text}");
    assert!(text.contains("STATUS_EXIT=0"), "no master known:\n{text}");
    assert!(
        text.contains("resigned default"),
        "resign did not answer:\n{text}"
    );
    assert!(
        text.contains("ALL_DONE"),
        "the shell did not finish:\n{text}"
    );
    let elected = (1..=3).any(|i| {
        std::fs::read_to_string(dir.join(format!("node-{i}.jsonl")))
            .is_ok_and(|events| events.contains("\"event\":\"elected\""))
    });
    assert!(elected, "no node printed an election:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
