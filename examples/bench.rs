//! The benchmark harness: gen-paxos side by side with etcd on this machine (the code is in
//! `tests/harness/src/bench`).
//!
//! ```sh
//! cargo run --release --example bench              # everything, about 15 minutes; writes BENCHMARKS.md
//! cargo run --release --example bench -- --quick   # about 6 minutes; writes target/bench/BENCHMARKS-quick.md
//! cargo run --release --example bench -- --help
//! ```

fn main() {
    gen_paxos_harness::bench::main();
}
