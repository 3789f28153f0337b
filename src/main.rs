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
    /// Run three nodes over QUIC in one process and tell the story of an election:
    /// first election, renewals, resign, a cut-off master, a crash, many leases.
    Demo(cli::demo::DemoArgs),
    /// Run the seeded fault simulator of the protocol core.
    Simulate(cli::simulate::SimulateArgs),
    /// Create a cluster CA and certificates for nodes and status clients.
    Certs(cli::certs::CertsArgs),
    /// Run one node of a cluster; its events are printed as JSON lines on stdout.
    Node(cli::node::NodeArgs),
    /// Ask a running node who is master.
    Status(cli::status::StatusArgs),
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(work: F) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(work);
    // A blocking read of stdin may still be pending: do not wait for it.
    runtime.shutdown_background();
    result
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let result = match &cli.command {
        Command::Demo(args) => block_on(cli::demo::run(args)),
        Command::Simulate(args) => cli::simulate::run(args),
        Command::Certs(args) => cli::certs::run(args),
        Command::Node(args) => block_on(cli::node::run(args)),
        Command::Status(args) => block_on(cli::status::run(args)),
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
