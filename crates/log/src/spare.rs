//! The next segment file, prepared (zero-filled and fsynced) by a background thread while the
//! active segment fills, so a segment roll costs a header write and a rename instead of writing
//! and syncing a whole segment of zeroes under the write lock. It holds no records and no
//! state; a leftover spare is a `*.tmp` file that recovery removes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::format::TEMP_SUFFIX;
use crate::fs::{FileHandle, FileSystem};
use crate::segment::extend_with_zeroes;

/// Name of the spare file inside the log directory (ends in `.tmp`: removed on open).
pub(crate) fn spare_path(dir: &Path) -> PathBuf {
    dir.join(format!("spare.wal{TEMP_SUFFIX}"))
}

/// A spare being prepared, or none.
#[derive(Debug, Default)]
pub(crate) struct Spare {
    preparing: Option<JoinHandle<Result<Arc<dyn FileHandle>>>>,
}

impl Spare {
    /// Starts preparing a spare of `file_bytes` unless one is already under way or ready. If
    /// the thread cannot be started the next roll simply creates its segment itself.
    pub fn start(&mut self, fs: &Arc<dyn FileSystem>, dir: &Path, file_bytes: u64) {
        if self.preparing.is_some() {
            return;
        }
        let (fs, dir) = (Arc::clone(fs), dir.to_path_buf());
        let spawned = std::thread::Builder::new()
            .name("steward-log-spare".to_string())
            .spawn(move || prepare(fs.as_ref(), &dir, file_bytes));
        self.preparing = spawned.ok();
    }

    /// Whether a spare is being prepared or ready.
    #[cfg(test)]
    pub fn is_started(&self) -> bool {
        self.preparing.is_some()
    }

    /// The prepared spare, waiting for it if it is not ready yet; `None` if none was started
    /// or preparing it failed (the caller then creates the segment itself).
    pub fn take(&mut self) -> Option<Arc<dyn FileHandle>> {
        match self.preparing.take()?.join() {
            Ok(Ok(file)) => Some(file),
            _ => None,
        }
    }
}

fn prepare(fs: &dyn FileSystem, dir: &Path, file_bytes: u64) -> Result<Arc<dyn FileHandle>> {
    let path = spare_path(dir);
    let file = fs
        .create(&path)
        .map_err(|e| Error::io("create spare segment", &path, e))?;
    extend_with_zeroes(file.as_ref(), &path, 0, file_bytes)?;
    file.sync_all()
        .map_err(|e| Error::io("fsync spare segment", &path, e))?;
    Ok(file)
}
