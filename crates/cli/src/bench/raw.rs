//! The raw baseline: the payload bytes appended to one plain file, `fdatasync` after each.
//!
//! With one appender this is the physical bound of an unbatched durable append on this disk: a
//! WAL cannot acknowledge a single record faster than one `write` plus one `fdatasync`. With N
//! appenders the file sits behind one mutex and every append still pays its own `fdatasync`
//! (no group commit): it shows what a naive serialised log would do, not a bound. It does not
//! frame, checksum or preallocate anything.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use bytes::Bytes;

use super::target::Target;

/// A plain append-only file shared by all appenders.
pub struct RawFile {
    file: Mutex<File>,
}

impl RawFile {
    /// Creates `dir/raw.log`.
    pub fn open(dir: &Path) -> anyhow::Result<RawFile> {
        let path = dir.join("raw.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        Ok(RawFile {
            file: Mutex::new(file),
        })
    }
}

impl Target for RawFile {
    fn append(&self, _appender: usize, _seq: u64, payload: &Bytes) -> anyhow::Result<()> {
        let mut file = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("raw file mutex poisoned by a failed appender"))?;
        file.write_all(payload).context("write raw.log")?;
        // `sync_data` is `fdatasync(2)` on Linux.
        file.sync_data().context("fdatasync raw.log")?;
        Ok(())
    }

    fn durability_note(&self) -> &'static str {
        "write + fdatasync per append, one mutex: no group commit"
    }
}
