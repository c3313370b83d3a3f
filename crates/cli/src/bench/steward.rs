//! The steward-log target: one record per append, `SyncPolicy::Always`.
//!
//! A log has one index sequence, so concurrent appenders use `Wal::append_next`, which assigns
//! the next index under the WAL's own write lock and then waits, outside that lock, for a
//! `fdatasync` that covers the record: concurrent appenders share syncs (group commit) and no
//! outer lock serialises them. It does not read, truncate or purge.

use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use steward_log::{Record, SyncPolicy, Wal, WalOptions};

use super::target::Target;

/// Kind byte of benchmark records (outside the node's 1..=3, so nothing mistakes them for
/// replicated events).
pub const BENCH_RECORD_KIND: u8 = 0xB0;
/// Term of benchmark records: the benchmark never changes leader.
const BENCH_TERM: u64 = 1;

/// A steward-log `Wal` opened with default options.
pub struct StewardWal {
    wal: Wal,
}

impl StewardWal {
    /// Opens (or continues) the WAL in `dir` with default options and `SyncPolicy::Always`.
    pub fn open(dir: &Path) -> anyhow::Result<StewardWal> {
        let options = WalOptions {
            sync_policy: SyncPolicy::Always,
            ..WalOptions::default()
        };
        let (wal, _report) = Wal::open(dir, options)
            .with_context(|| format!("open steward-log in {}", dir.display()))?;
        Ok(StewardWal { wal })
    }
}

impl Target for StewardWal {
    fn append(&self, _appender: usize, _seq: u64, payload: &Bytes) -> anyhow::Result<()> {
        self.wal
            .append_next(|index| {
                vec![Record {
                    index,
                    term: BENCH_TERM,
                    kind: BENCH_RECORD_KIND,
                    payload: payload.clone(),
                }]
            })
            .context("steward-log append_next")?;
        Ok(())
    }

    fn durability_note(&self) -> &'static str {
        "Wal::append_next, SyncPolicy::Always: fdatasync, group commit across appenders"
    }

    fn records_per_sync(&self) -> Option<f64> {
        Some(self.wal.metrics().records_per_sync())
    }
}
