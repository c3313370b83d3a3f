//! `steward bench …`: benchmarks that compare steward with its peers in one run.
//!
//! Layout: `wal` orchestrates a storage run; `runner` drives appender threads against one
//! `Target`; `raw`, `raft_engine`, `sled_db` and `steward` are the targets; `recovery` times
//! `Wal::open`; `report` prints and serialises. `cluster` is the cluster benchmark against etcd
//! (its own layout in its module). `cpu` and `machine` serve both. Nothing here is part of
//! `cargo test` beyond smoke runs, and nothing here asserts on timings: figures are reported,
//! and the targets from issues 2 and 8 are checked and printed as MET or MISSED.

mod cluster;
mod cpu;
mod machine;
mod raft_engine;
mod raw;
mod recovery;
mod report;
mod runner;
mod sled_db;
mod steward;
mod target;
#[cfg(test)]
mod tests;
mod wal;

use std::path::PathBuf;

pub use target::TargetKind;

/// The `steward bench` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Durable appends: steward-log next to raw fdatasync, raft-engine 0.4 and sled 0.34, plus
    /// the time to open (recover) a large log.
    Wal(WalArgs),
    /// A 3-node steward cluster next to a 3-member etcd cluster on loopback: durable 256 B
    /// writes from 1 to 256 closed-loop clients (throughput, latency, server CPU).
    Cluster(cluster::ClusterArgs),
}

/// Options of `steward bench wal`.
#[derive(Debug, clap::Args)]
pub struct WalArgs {
    /// Short points (2 slices of 0.05 s warm-up + 0.2 s measured instead of 6 of 0.1 s + 0.5 s)
    /// and a 64 MiB recovery log instead of 1 GiB: finishes in well under a minute; the figures
    /// are indicative only.
    #[arg(long)]
    pub quick: bool,
    /// Keep steward-log's WAL from this run in DIR (absent or empty), for `steward log inspect`.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Run in a fresh temporary directory under DIR. Default: the system temporary directory
    /// when it is on the same file system as the working directory, else the working
    /// directory. tmpfs is refused: these are disk benchmarks.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Measure only these targets (comma-separated). Default: all four.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub targets: Vec<TargetKind>,
}

/// Runs one `steward bench` subcommand.
pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Wal(args) => wal::run(&args),
        BenchCommand::Cluster(args) => cluster::run(&args),
    }
}
