//! Network namespaces and `nft` rules: one namespace per node on a bridge, and the
//! partition shapes cut by rules.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread::{self};
use std::time::Duration;

/// One network namespace per node plus one holding the bridge; `10.99.0.<id>/24` exists only
/// inside them. Every link can be cut one way with an `nft` rule in the receiver's
/// namespace. Dropping it deletes the namespaces (and with them their rules and links).
#[derive(Debug)]
pub struct Netns {
    prefix: String,
    nodes: usize,
    created: Vec<String>,
}

fn run_cmd(args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Why network faults cannot run here, or `None` if they can.
    pub fn unavailable() -> Option<String> {
        for tool in ["ip", "nft"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !found {
                return Some(format!(
                    "`{tool}` is not installed (apt-get install iproute2 nftables)"
                ));
            }
        }
        let uid = Command::new("id").arg("-u").output().ok();
        if uid.is_none_or(|o| String::from_utf8_lossy(&o.stdout).trim() != "0") {
            return Some("not root: network namespaces need root".into());
        }
        // Root may still lack the capability (a container): try one namespace and a table.
        static PROBES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let probe = format!(
            "gpf{}probe{}",
            std::process::id(),
            PROBES.fetch_add(1, Ordering::Relaxed)
        );
        let tried = run_cmd(&["ip", "netns", "add", &probe], None).and_then(|()| {
            run_cmd(
                &["ip", "netns", "exec", &probe, "nft", "-f", "-"],
                Some("table inet gpf {\n chain input { type filter hook input priority 0; policy accept; }\n}\n"),
            )
        });
        let _ = run_cmd(&["ip", "netns", "del", &probe], None);
        tried
            .err()
            .map(|e| format!("cannot create a namespace with nft rules: {e}"))
    }

    /// Deletes namespaces left by a harness process that no longer exists.
    fn sweep_stale() {
        let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let Some(rest) = name.strip_prefix("gpf") else {
                continue;
            };
            let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = run_cmd(&["ip", "netns", "del", name], None);
            }
        }
    }

    pub fn create(nodes: usize) -> Result<Netns, String> {
        Self::sweep_stale();
        // Unique per cluster: two tests of one process may each run one at once.
        static CLUSTERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut net = Netns {
            prefix: format!("gpf{}x{k}", std::process::id()),
            nodes,
            created: Vec::new(),
        };
        let hub = net.hub();
        run_cmd(&["ip", "netns", "add", &hub], None)?;
        net.created.push(hub.clone());
        run_cmd(
            &["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"],
            None,
        )?;
        run_cmd(&["ip", "-n", &hub, "link", "set", "br0", "up"], None)?;
        for id in 1..=nodes as u64 {
            let ns = net.ns(id);
            run_cmd(&["ip", "netns", "add", &ns], None)?;
            net.created.push(ns.clone());
            let v = format!("v{id}");
            run_cmd(
                &[
                    "ip", "-n", &hub, "link", "add", &v, "type", "veth", "peer", "name", "eth0",
                    "netns", &ns,
                ],
                None,
            )?;
            run_cmd(
                &["ip", "-n", &hub, "link", "set", &v, "master", "br0"],
                None,
            )?;
            run_cmd(&["ip", "-n", &hub, "link", "set", &v, "up"], None)?;
            let addr = format!("{}/24", Self::ip(id));
            run_cmd(
                &["ip", "-n", &ns, "addr", "add", &addr, "dev", "eth0"],
                None,
            )?;
            run_cmd(&["ip", "-n", &ns, "link", "set", "eth0", "up"], None)?;
            run_cmd(&["ip", "-n", &ns, "link", "set", "lo", "up"], None)?;
            run_cmd(
                &["ip", "netns", "exec", &ns, "nft", "-f", "-"],
                Some(
                    "table inet gpf {\n chain input { type filter hook input priority 0; policy accept; }\n}\n",
                ),
            )?;
        }
        // Bridge ports come up asynchronously: wait for them (bounded). The nodes retry
        // their connections anyway, so this only keeps the first election prompt.
        for _ in 0..50 {
            let up = (1..=nodes as u64).all(|id| {
                Command::new("ip")
                    .args(["-n", &net.hub(), "-br", "link", "show", &format!("v{id}")])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("UP"))
            });
            if up {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        thread::sleep(Duration::from_millis(200));
        Ok(net)
    }

    fn hub(&self) -> String {
        format!("{}b", self.prefix)
    }
    pub fn ns(&self, id: u64) -> String {
        format!("{}n{id}", self.prefix)
    }
    pub fn ip(id: u64) -> String {
        format!("10.99.0.{id}")
    }

    /// Installs exactly these cuts: `(from, to)` means `to` does not receive from `from`.
    pub fn set_cuts(&self, cuts: &[(u64, u64)]) -> Result<(), String> {
        for to in 1..=self.nodes as u64 {
            let mut script = String::from("flush chain inet gpf input\n");
            for &(a, b) in cuts {
                if b == to {
                    let _ = writeln!(
                        script,
                        "add rule inet gpf input ip saddr {} drop",
                        Self::ip(a)
                    );
                }
            }
            run_cmd(
                &["ip", "netns", "exec", &self.ns(to), "nft", "-f", "-"],
                Some(&script),
            )?;
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            let _ = run_cmd(&["ip", "netns", "del", &ns], None);
        }
    }
}

/// The partition shapes, around a target (usually the master), over nodes `1..=n`.
/// Returns the one-way cuts and a description.
pub fn partition_shape(
    shape: usize,
    target: u64,
    n: u64,
    rng: &mut fastrand::Rng,
) -> (Vec<(u64, u64)>, String) {
    let mut cuts = Vec::new();
    let both = |a: u64, b: u64, cuts: &mut Vec<(u64, u64)>| {
        cuts.push((a, b));
        cuts.push((b, a));
    };
    let mut others: Vec<u64> = (1..=n).filter(|&o| o != target).collect();
    // Shuffle the others.
    for i in (1..others.len()).rev() {
        let j = rng.u64(..i as u64 + 1) as usize;
        others.swap(i, j);
    }
    let desc = match shape {
        0 => {
            for &o in &others {
                both(target, o, &mut cuts);
            }
            format!("node {target} isolated")
        }
        1 => {
            let size = (n as usize - 1) / 2; // a minority including the target
            let mut minority: Vec<u64> = others.iter().copied().take(size - 1).collect();
            minority.push(target);
            for a in 1..=n {
                for b in 1..=n {
                    if minority.contains(&a) && !minority.contains(&b) {
                        both(a, b, &mut cuts);
                    }
                }
            }
            minority.sort_unstable();
            format!("minority {minority:?} split from the majority")
        }
        2 => {
            for &o in &others {
                cuts.push((target, o));
            }
            format!("node {target} one-way muted (hears, is not heard)")
        }
        3 => {
            for &o in &others {
                cuts.push((o, target));
            }
            format!("node {target} one-way deafened (is heard, hears nothing)")
        }
        4 => {
            // A chain with the target in the middle: only neighbours talk.
            let mut line = others.clone();
            line.insert(line.len() / 2, target);
            for i in 0..line.len() {
                for j in 0..line.len() {
                    if i.abs_diff(j) > 1 {
                        cuts.push((line[i], line[j]));
                    }
                }
            }
            format!("chain {line:?} (only neighbours talk)")
        }
        5 => {
            for &a in &others {
                for &b in &others {
                    if a != b {
                        cuts.push((a, b));
                    }
                }
            }
            format!("quorum-loss star: only node {target} talks to the others")
        }
        _ => {
            for a in 1..=n {
                for b in 1..=n {
                    if a != b {
                        cuts.push((a, b));
                    }
                }
            }
            "every node isolated (no quorum anywhere)".to_string()
        }
    };
    (cuts, desc)
}

pub const PARTITION_SHAPES: usize = 7;
