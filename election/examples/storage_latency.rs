//! The write-ahead log's append latency on this machine: `DiskStorage` in a directory,
//! 2,000 appends of log records with 100-byte values, each written and synced before the
//! next, one record per append and then 64 (group commit). See docs/STORAGE.md.
//!
//! ```text
//! cargo run --release -p gen-paxos-election --example storage_latency -- [DIR]
//! ```
//!
//! DIR defaults to `target/storage-latency` (emptied first, removed after).

use std::process::ExitCode;
use std::time::Instant;

use gen_paxos_core::log::{LogBallot, Value};
use gen_paxos_election::storage::{DiskStorage, Record, Storage};
use gen_paxos_election::{LeaseName, NodeId};

fn percentiles(mut micros: Vec<f64>) -> (f64, f64) {
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn main() -> ExitCode {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/storage-latency".into());
    let _ = std::fs::remove_dir_all(&dir);
    let lease = match LeaseName::new("db") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut slot = 0u64;
    for batch in [1usize, 64] {
        let opened = if batch == 1 {
            DiskStorage::create(&dir)
        } else {
            DiskStorage::open(&dir)
        };
        let mut storage = match opened {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = storage.load() {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
        let mut micros = Vec::new();
        for _ in 0..2000 {
            let records: Vec<Record> = (0..batch)
                .map(|_| {
                    slot += 1;
                    Record::Accepted {
                        lease: lease.clone(),
                        slot,
                        ballot: LogBallot {
                            counter: 1,
                            node: NodeId(1),
                        },
                        value: Value::Data(vec![7u8; 100].into()),
                    }
                })
                .collect();
            let started = Instant::now();
            if let Err(e) = storage.append(&records) {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
            micros.push(started.elapsed().as_secs_f64() * 1e6);
        }
        let (p50, p99) = percentiles(micros);
        println!("records_per_append={batch} appends=2000 p50={p50:.0}us p99={p99:.0}us");
    }
    let _ = std::fs::remove_dir_all(&dir);
    ExitCode::SUCCESS
}
