//! The `gen-paxos` command-line tool.

mod cli;

use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: a node makes several small allocations per
/// message (decoded names, batches, events), and with many leases glibc's allocator was
/// about a tenth of its CPU (docs/renewal-cost.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Lease-based master election built on PaxosLease.
#[derive(Debug, Parser)]
#[command(name = "gen-paxos", version, about)]
struct Cli {
    /// How log lines (stderr, filtered by RUST_LOG, default `warn`) are written: `text`
    /// (coloured only when stderr is a terminal) or `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr through `tracing-subscriber`: its JSON formatter, or text with ANSI
/// colours only when a person is reading a terminal.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
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
    /// Ask a running node who is master (exit 0: a master is known; 3: none; 4: no answer).
    Status(cli::status::StatusArgs),
    /// Ask a running node to resign a lease (or all of them).
    Resign(cli::resign::ResignArgs),
    /// The built-in replicated key-value store of nodes run with `--kv`: put, get, cas,
    /// delete (exit 0 done, 2 refused, 4 nothing happened, 5 outcome unknown).
    Kv(cli::kv::KvArgs),
    /// Per-key consensus: the value chosen for KEY (propose VALUE, or --get, --forget).
    Ask(cli::ask::AskArgs),
    /// Run a node and, while it is master of its lease, a command (`-- CMD ARGS...`).
    Run(cli::run::RunArgs),
    /// Keep a command's process group in check for `run` (internal).
    #[command(hide = true)]
    Supervise(cli::supervise::SuperviseArgs),
}

/// The exit code a command chose, or 1 with one line for an error.
fn exit_code(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            cli::common::complain(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn block_on<T, F: std::future::Future<Output = anyhow::Result<T>>>(work: F) -> anyhow::Result<T> {
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
    init_logs(cli.log_format);
    cli::common::set_json_logs(cli.log_format == LogFormat::Json);
    let result = match &cli.command {
        Command::Demo(args) => block_on(cli::demo::run(args)),
        Command::Simulate(args) => cli::simulate::run(args),
        Command::Certs(args) => cli::certs::run(args),
        Command::Node(args) => block_on(cli::node::run(args)),
        Command::Status(args) => return exit_code(block_on(cli::status::run(args))),
        Command::Resign(args) => return exit_code(block_on(cli::resign::run(args))),
        Command::Run(args) => return exit_code(block_on(cli::run::run(args))),
        Command::Kv(args) => return exit_code(block_on(cli::kv::run(args))),
        Command::Ask(args) => return exit_code(block_on(cli::ask::run(args))),
        Command::Supervise(args) => return cli::supervise::exit(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One clear line (with its causes), no backtrace.
            cli::common::complain(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
