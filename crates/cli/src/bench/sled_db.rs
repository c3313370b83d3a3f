//! The sled 0.34 peer: `insert` then `flush()` per append.
//!
//! sled's `flush` on Linux ends in `sync_file_range`, which writes dirty pages but neither
//! flushes the disk's volatile write cache nor the file's metadata: it is NOT as durable as an
//! `fdatasync` (see ADR 0006 and the durability caveat in the design brief). The figures are
//! printed for comparison only. It does not read, scan or compact.

use std::path::Path;

use anyhow::Context;
use bytes::Bytes;

use super::target::Target;

/// A sled database; each appender writes its own keys `(appender, seq)` in big-endian order.
pub struct SledDb {
    db: sled::Db,
}

impl SledDb {
    /// Opens a sled database in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<SledDb> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .with_context(|| format!("open sled in {}", dir.display()))?;
        Ok(SledDb { db })
    }
}

impl Target for SledDb {
    fn append(&self, appender: usize, seq: u64, payload: &Bytes) -> anyhow::Result<()> {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&(appender as u64).to_be_bytes());
        key[8..].copy_from_slice(&seq.to_be_bytes());
        self.db
            .insert(key, payload.as_ref())
            .context("sled insert")?;
        self.db.flush().context("sled flush")?;
        Ok(())
    }

    fn durability_note(&self) -> &'static str {
        "insert + flush(): sync_file_range on Linux, NOT equally durable (no cache flush)"
    }
}
