//! The `Target` trait: one storage engine under test, seen as "append these bytes durably".
//!
//! It deliberately hides everything else an engine can do (reads, truncation, compaction): the
//! benchmark measures the acknowledged-durable append path only.

use std::fmt;
use std::path::Path;

use bytes::Bytes;
use clap::ValueEnum;
use serde::Serialize;

use super::{raft_engine, raw, sled_db, steward};

/// One engine opened in its own directory, shared by every appender thread of a point.
pub trait Target: Send + Sync {
    /// Appends `payload` and returns once the engine says it is durable.
    ///
    /// `appender` is the calling thread's number (0-based) and `seq` its own append counter
    /// (1-based, contiguous per appender within one point), so engines that want per-writer
    /// keys (sled) or per-writer Raft groups (raft-engine) can derive them without locking.
    fn append(&self, appender: usize, seq: u64, payload: &Bytes) -> anyhow::Result<()>;

    /// A one-line note on what "durable" means for this target, printed under the table.
    fn durability_note(&self) -> &'static str;

    /// Records made durable per `fdatasync` since the target was opened, when the engine
    /// reports it (evidence of group commit).
    fn records_per_sync(&self) -> Option<f64> {
        None
    }
}

/// The engines `steward bench wal` knows, in the order they are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// Plain file, `write` + `fdatasync` per append under one mutex.
    Raw,
    /// raft-engine 0.4: one `LogBatch` with one entry per append, `write(batch, sync = true)`.
    RaftEngine,
    /// sled 0.34: `insert` + `flush()` per append.
    Sled,
    /// steward-log: `Wal::append_next` with `SyncPolicy::Always`.
    Steward,
}

impl TargetKind {
    /// Every target, in table order.
    pub const ALL: [TargetKind; 4] = [
        TargetKind::Raw,
        TargetKind::RaftEngine,
        TargetKind::Sled,
        TargetKind::Steward,
    ];

    /// Opens a fresh instance of this engine in `dir` (created if missing).
    pub fn open(self, dir: &Path) -> anyhow::Result<Box<dyn Target>> {
        std::fs::create_dir_all(dir)?;
        Ok(match self {
            TargetKind::Raw => Box::new(raw::RawFile::open(dir)?),
            TargetKind::RaftEngine => Box::new(raft_engine::RaftEngine::open(dir)?),
            TargetKind::Sled => Box::new(sled_db::SledDb::open(dir)?),
            TargetKind::Steward => Box::new(steward::StewardWal::open(dir)?),
        })
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Raw => "raw fdatasync",
            TargetKind::RaftEngine => "raft-engine",
            TargetKind::Sled => "sled",
            TargetKind::Steward => "steward-log",
        })
    }
}
