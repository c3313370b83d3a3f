//! File faults on a stopped node's WAL: a torn tail after the last whole record, a bit flip
//! inside a record that is followed by good ones, and a power loss (the records the node never
//! made durable vanish).
//!
//! A torn tail here only damages bytes after the last whole record (an append that was in
//! flight when the process died, never acknowledged); it deliberately never cuts a whole
//! fsynced record, because a disk that loses synced data is outside Raft's fault model and
//! would make the harness report false violations.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use rand::Rng;
use steward_log::{read_dir_records, scan_dir, SegmentInfo, SegmentState};

use crate::page_cache;

/// Size of a segment header (mirrors the WAL format).
const SEGMENT_HEADER_BYTES: u64 = 32;
/// Size of a record frame header (mirrors the WAL format).
const RECORD_HEADER_BYTES: u64 = 32;
/// Largest garbage tail written. Default: 200 bytes.
const TORN_BYTES_MAX: u64 = 200;

/// What a file fault did, for the timeline.
#[derive(Debug, Clone)]
pub struct FileFault {
    /// The file damaged.
    pub file: PathBuf,
    /// Byte offset.
    pub offset: u64,
    /// Human-readable description.
    pub what: String,
}

fn active_segment(wal: &Path) -> anyhow::Result<SegmentInfo> {
    let report = scan_dir(wal).with_context(|| format!("scanning {}", wal.display()))?;
    report
        .segments
        .into_iter()
        .rev()
        .find(|s| s.state == SegmentState::Active)
        .with_context(|| format!("no active segment in {}", wal.display()))
}

/// Writes a torn append after the last whole record of the active segment: either random
/// non-zero garbage or a frame header promising more bytes than follow.
pub fn torn_tail(wal: &Path, rng: &mut impl Rng) -> anyhow::Result<FileFault> {
    let segment = active_segment(wal)?;
    let file = wal.join(&segment.file_name);
    let offset = segment.data_bytes;
    let len = rng.gen_range(1..=TORN_BYTES_MAX);
    let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen_range(1..=255u8)).collect();
    let what = if rng.gen_bool(0.5) && len >= 8 {
        // A plausible length prefix for a record longer than what is written.
        bytes[0..4].copy_from_slice(&(len as u32 + 64).to_le_bytes());
        format!("partial frame of {len} bytes after the last record")
    } else {
        format!("{len} garbage bytes after the last record")
    };
    let mut handle = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .with_context(|| format!("opening {}", file.display()))?;
    handle.seek(SeekFrom::Start(offset))?;
    handle.write_all(&bytes)?;
    handle.sync_all()?;
    Ok(FileFault { file, offset, what })
}

/// Flips one bit inside the first half of the records of the segment holding the most data
/// (a sealed one when there is one), so good records follow the damage: corruption, which
/// the node must refuse to start on. An error when the log is too small to damage that way.
pub fn bit_flip(wal: &Path, rng: &mut impl Rng) -> anyhow::Result<FileFault> {
    let report = scan_dir(wal).with_context(|| format!("scanning {}", wal.display()))?;
    let segment = report
        .segments
        .iter()
        .filter(|s| s.records >= 4)
        .max_by_key(|s| (s.state == SegmentState::Sealed, s.data_bytes))
        .cloned();
    let Some(segment) = segment else {
        bail!("no segment with at least 4 records in {}", wal.display());
    };
    let file = wal.join(&segment.file_name);
    let start = SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES;
    let end = (segment.data_bytes / 2).max(start + 1);
    let offset = rng.gen_range(start..end);
    let bit = rng.gen_range(0..8u8);
    let mut handle = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&file)
        .with_context(|| format!("opening {}", file.display()))?;
    let mut byte = [0u8; 1];
    handle.seek(SeekFrom::Start(offset))?;
    handle.read_exact(&mut byte)?;
    byte[0] ^= 1 << bit;
    handle.seek(SeekFrom::Start(offset))?;
    handle.write_all(&byte)?;
    handle.sync_all()?;
    Ok(FileFault {
        file,
        offset,
        what: format!(
            "bit {bit} flipped ({:?} segment, {} records)",
            segment.state, segment.records
        ),
    })
}

/// A power loss on a killed node: the records of the active segment that lie wholly past the
/// first page the kernel still holds dirty (written, never `fsync`ed) are zeroed, as if they
/// had never reached the disk. Records in that first dirty page stay (losing less than a power
/// loss could is sound; losing synced bytes would not be). `None` when nothing was unsynced.
/// Dirty pages in sealed segments are reported, not cut (a roll must have synced them).
pub fn power_loss(wal: &Path) -> anyhow::Result<Option<FileFault>> {
    // Probe before reading anything: the probe drops clean pages, so it goes first, and only
    // the active segment's data is read afterwards (from disk).
    let mut segments: Vec<String> = std::fs::read_dir(wal)
        .with_context(|| format!("listing {}", wal.display()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.len() == 24 && name.ends_with(".wal"))
        .collect();
    segments.sort();
    let Some(active) = segments.pop() else {
        return Ok(None);
    };
    let mut sealed_dirty = Vec::new();
    for name in &segments {
        if let Some(offset) = page_cache::first_unsynced_page(&wal.join(name))? {
            sealed_dirty.push(format!("{name}@{offset}"));
        }
    }
    let file = wal.join(&active);
    let Some(dirty) = page_cache::first_unsynced_page(&file)? else {
        return Ok(None);
    };
    let first_index: u64 = active.trim_end_matches(".wal").parse()?;
    let threshold = dirty + page_cache::page_bytes();
    let (mut cut, mut end, mut lost) = (None, 0u64, 0u64);
    for record in read_dir_records(wal, first_index..u64::MAX)? {
        let record = record.with_context(|| format!("reading {}", wal.display()))?;
        if record.segment != active || record.offset < threshold {
            continue;
        }
        cut.get_or_insert((record.offset, record.index.0));
        end = record.offset + record.frame_bytes;
        lost += 1;
    }
    let Some((offset, first_lost)) = cut else {
        return Ok(None);
    };
    let mut handle = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .with_context(|| format!("opening {}", file.display()))?;
    handle.seek(SeekFrom::Start(offset))?;
    handle.write_all(&vec![0u8; usize::try_from(end - offset)?])?;
    handle.sync_all()?;
    let mut what = format!(
        "power loss: {lost} unsynced records from index {first_lost} gone (first dirty page at \
         {dirty})"
    );
    if !sealed_dirty.is_empty() {
        what.push_str(&format!(
            "; sealed segments with dirty pages (not cut): {}",
            sealed_dirty.join(", ")
        ));
    }
    Ok(Some(FileFault { file, offset, what }))
}

/// Checker self-test only: cuts the active segment back to `keep_percent` of its records' bytes,
/// losing whole fsynced records, as a disk that acknowledged writes it never stored would (or a
/// node that acknowledged before `fdatasync`, after a power loss). Never part of a normal run.
pub fn lose_tail(wal: &Path, keep_percent: u64) -> anyhow::Result<FileFault> {
    let segment = active_segment(wal)?;
    let file = wal.join(&segment.file_name);
    let body = segment.data_bytes.saturating_sub(SEGMENT_HEADER_BYTES);
    let offset = SEGMENT_HEADER_BYTES + body * keep_percent / 100;
    let handle = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .with_context(|| format!("opening {}", file.display()))?;
    handle.set_len(offset)?;
    handle.sync_all()?;
    Ok(FileFault {
        file,
        offset,
        what: format!("cut back to {keep_percent} % of its records (synced data lost)"),
    })
}
