//! Times `Wal::open` (recovery: scanning every segment and rebuilding the index) on a large log.
//!
//! The log is written first with big batches (its writing is not what is measured), closed, then
//! opened twice: once with its segments still in the page cache, once after evicting them with
//! `POSIX_FADV_DONTNEED` so the scan reads the disk. A virtualised disk may still serve the
//! "cold" read from the host's cache; docs/benchmarks.md says so. It measures nothing else.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context};
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use steward_log::{LogIndex, Record, Wal, WalOptions};

use super::report::RecoveryResult;
use super::wal::payload_of;

/// Payload of each record in the recovery log: small records are the costly case for recovery
/// (more frames to check and index per byte). Default: 256 B.
const RECOVERY_PAYLOAD_BYTES: usize = 256;
/// Records per `append` while building the log (about 1 MiB of payload per batch).
const RECOVERY_BATCH_RECORDS: u64 = 4096;
/// The log's size behind the "< 1 s": 1 GiB of records.
const TARGET_BYTES: u64 = 1 << 30;
/// Kind byte of the records: the append benchmark's.
const RECOVERY_RECORD_KIND: u8 = super::steward::BENCH_RECORD_KIND;

/// Builds a log holding at least `bytes` of records (frames: headers and payloads) in `dir` and
/// times opening it.
pub fn measure(dir: &Path, bytes: u64) -> anyhow::Result<RecoveryResult> {
    let (records, record_bytes) = write_log(dir, bytes)?;
    let open_warm_seconds = time_open(dir, records)?;
    let open_cold_seconds = match evict(dir) {
        Ok(()) => Some(time_open(dir, records)?),
        Err(_) => None,
    };
    Ok(RecoveryResult {
        record_bytes,
        file_bytes: file_bytes(dir)?,
        records,
        payload_bytes: RECOVERY_PAYLOAD_BYTES,
        open_warm_seconds,
        open_cold_seconds,
        reduced: bytes < TARGET_BYTES,
    })
}

/// Appends batches until the log holds `bytes` of frames; returns (records, frame bytes).
fn write_log(dir: &Path, bytes: u64) -> anyhow::Result<(u64, u64)> {
    let payload = payload_of(RECOVERY_PAYLOAD_BYTES);
    let (wal, _report) = Wal::open(dir, WalOptions::default())
        .with_context(|| format!("create the recovery log in {}", dir.display()))?;
    let mut next = 1;
    // Bounded: every batch adds at least RECOVERY_BATCH_RECORDS payloads of
    // RECOVERY_PAYLOAD_BYTES, so the frame count passes `bytes` after finitely many batches.
    while wal.metrics().bytes < bytes {
        let end = next + RECOVERY_BATCH_RECORDS;
        let batch = (next..end)
            .map(|index| Record::new(index, 1, RECOVERY_RECORD_KIND, payload.clone()))
            .collect();
        wal.append(batch).context("append to the recovery log")?;
        next = end;
    }
    Ok((next - 1, wal.metrics().bytes))
}

/// Sum of the lengths of the files in `dir` (segments are preallocated, so this is what the
/// log occupies, not only what it holds).
fn file_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

fn time_open(dir: &Path, records: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let (wal, _report) = Wal::open(dir, WalOptions::default())
        .with_context(|| format!("reopen the recovery log in {}", dir.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        wal.last_index() == Some(LogIndex(records)),
        "recovery found last index {:?}, expected {records}",
        wal.last_index()
    );
    Ok(seconds)
}

/// Drops the (clean, already synced) pages of every file in `dir` from the page cache.
fn evict(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            let file = File::open(&path)?;
            file.sync_all()?;
            posix_fadvise(
                file.as_raw_fd(),
                0,
                0,
                PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            )
            .with_context(|| format!("fadvise {}", path.display()))?;
        }
    }
    Ok(())
}
