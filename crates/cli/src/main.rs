//! The `steward` binary: clap parsing, then one call into the code that does the work.

mod bench;
mod log_cmd;

use clap::{Parser, Subcommand};

/// steward: a durable, replicated job control plane.
#[derive(Debug, Parser)]
#[command(name = "steward", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmarks, side by side with the peers steward is measured against.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Offline tools for a write-ahead log directory: inspect, verify, dump, repair.
    Log(log_cmd::LogArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench(command) => bench::run(command),
        Command::Log(args) => log_cmd::run(args),
    }
}
