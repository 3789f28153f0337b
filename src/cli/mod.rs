//! The subcommands of the `gen-paxos` tool.

/// Prints a line on stdout and flushes it. When the reader has gone away (`| head`), the
/// tool exits quietly instead of panicking as `println!` would.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::common::emit(format_args!($($arg)*))
    };
}

pub mod ask;
pub mod certs;
pub mod common;
pub mod control;
pub mod demo;
pub mod demo_ledger;
pub mod event_output;
pub mod http;
pub mod kv;
pub mod kv_bench;
pub mod kv_store;
pub mod node;
pub mod resign;
pub mod run;
pub mod simulate;
pub mod status;
pub mod supervise;
