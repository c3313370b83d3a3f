//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::path::Path;

use steward_log::{Record, Wal, WalOptions};

/// A temporary directory on tmpfs when there is one (fsync is free there, which keeps tests
/// that sync thousands of times fast), else in the default temp dir.
pub fn fast_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Options with tiny segments so tests roll often.
pub fn small_segments() -> WalOptions {
    WalOptions {
        segment_bytes_max: 4096,
        ..WalOptions::default()
    }
}

/// A record whose payload depends on index and term, of `len` bytes.
pub fn record(index: u64, term: u64, len: usize) -> Record {
    let payload: Vec<u8> = (0..len)
        .map(|i| (index as usize * 31 + term as usize * 7 + i) as u8)
        .collect();
    Record::new(index, term, (index % 3) as u8 + 1, payload)
}

/// Every record in the log.
pub fn all_records(wal: &Wal) -> Vec<Record> {
    wal.range(0..u64::MAX).unwrap()
}

/// Copies every file of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Segment file paths in `dir`, sorted.
pub fn segment_paths(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    paths.sort();
    paths
}
