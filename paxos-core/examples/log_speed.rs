//! The replicated log's core throughput: three `Node`s in one thread, every batch delivered
//! at once, every write confirmed at once (no network, no disk), one master appending in
//! batches. Prints appends chosen (acknowledged) per second of this thread's time.
//!
//! ```sh
//! cargo run --release -p gen-paxos-core --example log_speed -- [--appends N] [--batch B] [--bytes V]
//! ```

// A benchmark measures this thread's time; the core it drives reads no clock.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use gen_paxos_core::log::LogEvent;
use gen_paxos_core::{Config, Event, Incarnation, LeaseName, Node, NodeId, Timestamp};

struct Args {
    appends: u64,
    batch: u64,
    bytes: usize,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        appends: 2_000_000,
        batch: 256,
        bytes: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--appends" => {
                args.appends = value()?.parse().map_err(|e| format!("--appends: {e}"))?
            }
            "--batch" => args.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--bytes" => args.bytes = value()?.parse().map_err(|e| format!("--bytes: {e}"))?,
            _ => return Err("usage: log_speed [--appends N] [--batch B] [--bytes V]".into()),
        }
    }
    if args.batch == 0 || args.appends == 0 {
        return Err("--appends and --batch must be positive".into());
    }
    Ok(args)
}

/// Moves every output until quiet; returns the appends acknowledged on the way.
fn pump(nodes: &mut [Node], now: Timestamp) -> u64 {
    let mut acked = 0;
    loop {
        let mut moved = false;
        let mut wire = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            while let Some(req) = node.poll_persist() {
                node.handle_persisted(now, req.token);
                moved = true;
            }
            while let Some(e) = node.poll_event() {
                if matches!(
                    e,
                    Event::Log {
                        event: LogEvent::Appended { .. },
                        ..
                    }
                ) {
                    acked += 1;
                }
            }
            while let Some(t) = node.poll_transmit() {
                wire.push((NodeId(i as u64 + 1), t));
            }
            while node.poll_hello().is_some() {}
        }
        for (from, t) in wire {
            moved = true;
            let to = &mut nodes[t.to.0 as usize - 1];
            let digest = to.fingerprint_digest();
            to.handle_message(now, from, digest, t.messages);
        }
        if !moved {
            return acked;
        }
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let lease = LeaseName::new("log").expect("valid");
    let mut nodes: Vec<Node> = ids
        .iter()
        .map(|&id| {
            let mut c = Config::new(id, ids.clone());
            c.set_lease_duration(Duration::from_secs(2));
            let mut n = Node::new(c, Timestamp::ZERO, Incarnation(id.0), 1, id.0).expect("config");
            n.enable_log(&lease).expect("a voter");
            n.join(Timestamp::ZERO, lease.clone(), Some(3))
                .expect("joins");
            n
        })
        .collect();
    // Elect a master and let it recover: step time until one is ready (after the start-up
    // quarantine); then time stands still, so the lease holds for the whole run.
    let mut now = Timestamp::ZERO;
    let master = loop {
        now = now + Duration::from_millis(10);
        for n in &mut nodes {
            n.handle_timeout(now);
        }
        pump(&mut nodes, now);
        if let Some(m) = nodes.iter().position(|n| n.is_ready(now, &lease)) {
            break m;
        }
        if now > Timestamp::from_nanos(60_000_000_000) {
            eprintln!("no master");
            return ExitCode::FAILURE;
        }
    };
    let value = vec![7u8; args.bytes];
    let started = Instant::now();
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < args.appends {
        let n = args.batch.min(args.appends - sent);
        let batch = (0..n).map(|_| value.as_slice());
        if let Ok(slots) = nodes[master].append_batch(now, &lease, batch) {
            sent += slots.end - slots.start;
        }
        acked += pump(&mut nodes, now);
        // Let the log cut what every replica applied, as a snapshotting service would.
        if acked % (args.batch * 64) < args.batch {
            for n in &mut nodes {
                let applied = n.log_applied(&lease).unwrap_or(0);
                let _ = n.compact_log(now, &lease, applied, &b"state"[..]);
            }
            pump(&mut nodes, now);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "appends={acked} batch={} bytes={} elapsed={secs:.2}s rate={:.0}/s",
        args.batch,
        args.bytes,
        acked as f64 / secs
    );
    ExitCode::SUCCESS
}
