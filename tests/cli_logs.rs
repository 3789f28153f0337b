//! Logs: `--log-format json` writes one JSON object per stderr line; text logs carry no
//! ANSI colour codes when stderr is not a terminal (here, a pipe).

mod procs;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use procs::{BIN, free_addr, make_certs, temp_dir};

/// Runs a single-node cluster with `RUST_LOG=info` until it was elected, then SIGTERM;
/// returns its stderr lines.
fn stderr_of(format: &str) -> Vec<String> {
    let dir = temp_dir(&format!("logs-{format}"));
    make_certs(&dir, "1");
    let mut child = Command::new(BIN)
        .args(["--log-format", format, "node", "--id", "1", "--single-node"])
        .args([
            "--lease-duration",
            "200ms",
            "--listen",
            &free_addr(),
            "--certs",
        ])
        .arg(&dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let start = Instant::now();
    for line in stdout.lines().map_while(Result::ok) {
        if line.contains("\"event\":\"elected\"") || start.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("exit");
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line() {
    let lines = stderr_of("json");
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    let text = lines.join("\n");
    assert!(text.contains("listening on"), "{text}");
    assert!(text.contains("elected"), "{text}");
}

#[test]
fn text_logs_have_no_colour_codes_in_a_pipe() {
    let lines = stderr_of("text");
    let text = lines.join("\n");
    assert!(text.contains("elected"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape codes in redirected logs: {text:?}"
    );
}
