//! `steward log …`: offline tools for a write-ahead log directory (inspect, verify, dump,
//! repair, replay, diff). They read the directory directly through `steward_log` (and fold
//! events with `steward_statemachine`) and never need a running node; only `repair` changes
//! anything.

mod decode;
mod diff;
mod dump;
mod inspect;
mod progress;
mod repair;
mod replay;
mod replay_source;
mod replay_time;
mod verify;

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Exit code of `log verify` when the only problem is a torn tail (opening the log cuts it).
pub const EXIT_TORN_TAIL: i32 = 3;
/// Exit code of `log verify` when the log is corrupt (a node refuses to start on it).
pub const EXIT_CORRUPTION: i32 = 4;
/// Exit code of `log diff` when the two logs or their folded states differ.
pub const EXIT_DIVERGED: i32 = 5;

/// Offline tools for a write-ahead log directory.
#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// List segments (name, first/last index, records, bytes, sealed or active), the vote and
    /// totals. Read-only.
    Inspect {
        /// The log directory.
        dir: PathBuf,
    },
    /// Check every record's CRC and the segment sequence. Read-only. Exit 0 when clean,
    /// 3 when the only problem is a torn tail, 4 on corruption.
    Verify {
        /// The log directory.
        dir: PathBuf,
    },
    /// Print one line per record (index, term, kind, size, CRC), or with `--decode` the events
    /// inside. Read-only.
    Dump(dump::DumpArgs),
    /// Fold the log (from the newest snapshot if it was purged) and print the state summary at
    /// a point, or one job's timeline. Read-only.
    Replay(replay::ReplayArgs),
    /// Compare two replicas' logs: the first index where records or folded states differ.
    /// Read-only. Exit 0 when identical, 5 when they diverge.
    Diff {
        /// The first replica's WAL or data directory.
        dir_a: PathBuf,
        /// The second replica's WAL or data directory.
        dir_b: PathBuf,
    },
    /// Cut a torn tail; copy a damaged segment aside (`*.broken`), move later segments aside,
    /// and cut the log at the damage. Says exactly what it moved and cut.
    Repair {
        /// The log directory.
        dir: PathBuf,
    },
}

/// "1 record", "2 records".
fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("{count} {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// Runs a `steward log` subcommand.
pub fn run(args: LogArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match args.command {
        LogCommand::Inspect { dir } => inspect::run(&dir, &mut out),
        LogCommand::Verify { dir } => {
            let code = verify::run(&dir, &mut out)?;
            if code != 0 {
                drop(out);
                std::process::exit(code);
            }
            Ok(())
        }
        LogCommand::Dump(dump) => dump::run(&dump, &mut out),
        LogCommand::Replay(replay) => replay::run(&replay, &mut out),
        LogCommand::Diff { dir_a, dir_b } => {
            let identical = diff::run(&dir_a, &dir_b, &mut out)?;
            if !identical {
                drop(out);
                std::process::exit(EXIT_DIVERGED);
            }
            Ok(())
        }
        LogCommand::Repair { dir } => repair::run(&dir, &mut out),
    }
}
