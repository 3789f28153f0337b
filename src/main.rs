//! The `gen-paxos` command-line tool.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Lease-based master election built on PaxosLease.
#[derive(Debug, Parser)]
#[command(name = "gen-paxos", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the demo (for now: the seeded fault simulator; the QUIC cluster demo comes with
    /// the election runtime).
    Demo(cli::demo::DemoArgs),
    /// Create a cluster CA and certificates for nodes and status clients.
    Certs(cli::certs::CertsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Demo(args) => cli::demo::run_demo(args),
        Command::Certs(args) => cli::certs::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One clear line (with its causes), no backtrace.
            eprintln!("gen-paxos: {e:#}");
            ExitCode::FAILURE
        }
    }
}
