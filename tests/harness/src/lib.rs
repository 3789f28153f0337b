//! The harnesses of gen-paxos's tests and benchmarks, in one crate that is never published:
//! [`fault`](mod@fault) runs a cluster of real `gen-paxos node` processes under injected faults and
//! checks every event line (`tests/fault_injection.rs` and
//! `examples/faults.rs`), and [`bench`](mod@bench) measures gen-paxos beside etcd and writes
//! `BENCHMARKS.md` (`examples/bench.rs`); [`linearizability`] checks histories of the
//! key-value store (`tests/kv_linearizable.rs`).

pub mod bench;
pub mod fault;
pub mod linearizability;
