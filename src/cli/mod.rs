//! The subcommands of the `gen-paxos` tool.

pub mod certs;
pub mod demo;
