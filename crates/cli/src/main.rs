//! The `steward` binary: clap parsing, then one call into the code that does the work.

mod bench;
mod cluster_cmd;
mod dev;
mod job_cmd;
mod load;
mod log_cmd;
mod output;
mod server;
mod worker_cmd;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc for the whole binary: in a 256-client profile glibc's
/// malloc, free and their consolidation took about a quarter of the leader's runtime threads
/// (ADR 0022).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run one manager (TOML config, flags, STEWARD_* environment variables).
    Server(Box<server::ServerArgs>),
    /// Start a local 3-manager cluster on loopback (data in ./.steward/dev).
    Dev(dev::DevArgs),
    /// Submit, inspect, wait for and cancel jobs on a running cluster.
    Job(job_cmd::JobArgs),
    /// Inspect and change the manager group (status, transfer-leader, join, remove).
    Cluster(cluster_cmd::ClusterArgs),
    /// Offline tools for a write-ahead log or data directory: inspect, verify, dump, repair,
    /// replay, diff.
    Log(log_cmd::LogArgs),
    /// Run a worker (`--join ADDR --cores N`) or list workers (`worker list`).
    Worker(worker_cmd::WorkerArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench(command) => bench::run(command),
        Command::Server(args) => server::run(*args),
        Command::Dev(args) => dev::run(args),
        Command::Job(args) => job_cmd::run(args),
        Command::Cluster(args) => cluster_cmd::run(args),
        Command::Log(args) => log_cmd::run(args),
        Command::Worker(args) => worker_cmd::run(args),
    }
}
