//! The subcommands of the `gen-paxos` tool.

pub mod certs;
pub mod common;
pub mod demo;
pub mod node;
pub mod simulate;
pub mod status;
