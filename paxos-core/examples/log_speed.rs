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
use std::time::Instant;

use gen_paxos_core::sim::LogBench;

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

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut bench = match LogBench::new() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let acked = bench.run(args.appends, args.batch, args.bytes);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "appends={acked} batch={} bytes={} elapsed={secs:.2}s rate={:.0}/s",
        args.batch,
        args.bytes,
        acked as f64 / secs
    );
    ExitCode::SUCCESS
}
