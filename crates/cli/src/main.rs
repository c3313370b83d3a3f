//! The `steward` binary: clap parsing, then one call into the code that does the work.

mod bench;

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench(command) => bench::run(command),
    }
}
