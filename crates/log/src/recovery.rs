//! What `Wal::open` does to a directory before the log is usable: remove half-created files,
//! finish an interrupted purge, cut a torn tail, and (only in `RecoveryMode::Repair`) move
//! corruption aside. Everything it does is written down in the `RecoveryReport`.

use std::path::{Path, PathBuf};

use crate::dir::{analyze, Analysis, Problem};
use crate::error::{Error, Result};
use crate::format::{BROKEN_SUFFIX, SEGMENT_HEADER_BYTES};
use crate::fs::{read_whole, write_all_at, FileSystem};
use crate::options::RecoveryMode;
use crate::record::LogIndex;
use crate::scan::SegmentEnd;
use crate::segment::{cut_file, Segment};

/// What `open` (or `repair_dir`) found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files in use after recovery.
    pub segments: usize,
    /// Records in the log after recovery.
    pub records: u64,
    /// First index after recovery.
    pub first_index: Option<LogIndex>,
    /// Last index after recovery.
    pub last_index: Option<LogIndex>,
    /// The torn tail that was cut, if any.
    pub torn_tail: Option<TornTailCut>,
    /// The corruption that was repaired (only with `RecoveryMode::Repair`).
    pub repair: Option<RepairAction>,
    /// Half-created files (`*.tmp`) that were removed.
    pub removed_temp_files: Vec<PathBuf>,
    /// Segments left behind by an interrupted `purge_before` that were removed.
    pub removed_purge_leftovers: Vec<PathBuf>,
}

/// What `repair_dir` did: the same report as `open`'s, with `repair` filled in when there was
/// corruption.
pub type RepairReport = RecoveryReport;

/// A torn tail cut off the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTailCut {
    /// The segment.
    pub segment: PathBuf,
    /// Where it was cut (end of the last whole record).
    pub offset: u64,
    /// Non-zero bytes dropped.
    pub bytes_dropped: u64,
}

/// What repair did about a corruption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairAction {
    /// The damaged segment.
    pub segment: PathBuf,
    /// Where the damage starts; the segment was cut here (or moved aside whole when the damage
    /// is in its header).
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
    /// The copy of the damaged segment taken before cutting it.
    pub copied_to: Option<PathBuf>,
    /// Files moved aside whole (`from`, `to`): later segments, or the damaged one if its header
    /// was bad.
    pub moved: Vec<(PathBuf, PathBuf)>,
    /// Bytes cut off the damaged segment (from `offset` to its end of file).
    pub bytes_cut: u64,
}

/// Runs recovery on `dir` and returns the segments to open, in order.
pub(crate) fn recover(
    fs: &dyn FileSystem,
    dir: &Path,
    mode: RecoveryMode,
) -> Result<(Vec<Segment>, RecoveryReport)> {
    let mut analysis = analyze(fs, dir, &mut |_, _| {})?;
    let mut report = RecoveryReport::default();
    if let Some(problem) = analysis.problem.clone() {
        if mode == RecoveryMode::Strict {
            return Err(analysis.problem_error(&problem));
        }
    }
    for tmp in &analysis.listing_temp_files {
        fs.remove_file(tmp)
            .map_err(|e| Error::io("remove temporary file", tmp, e))?;
        report.removed_temp_files.push(tmp.clone());
    }
    for seg in analysis.segments.drain(..analysis.purge_leftovers) {
        let path = seg.file.path;
        fs.remove_file(&path)
            .map_err(|e| Error::io("remove purged segment", &path, e))?;
        report.removed_purge_leftovers.push(path);
    }
    if let Some(mut problem) = analysis.problem.take() {
        problem.segment -= analysis.purge_leftovers;
        report.repair = Some(repair(fs, dir, &mut analysis, &problem)?);
    }
    if let Some(last) = analysis.segments.last_mut() {
        if let SegmentEnd::TornTail { offset, bytes } = last.scan.end {
            let file = fs
                .open_write(&last.file.path)
                .map_err(|e| Error::io("open segment", &last.file.path, e))?;
            cut_file(file.as_ref(), &last.file.path, offset, last.file.file_bytes)?;
            report.torn_tail = Some(TornTailCut {
                segment: last.file.path.clone(),
                offset,
                bytes_dropped: bytes,
            });
            last.scan.end = SegmentEnd::Clean;
        }
    }
    if !report.removed_temp_files.is_empty() || !report.removed_purge_leftovers.is_empty() {
        fs.sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    let segments = open_segments(fs, analysis)?;
    let records: u64 = segments.iter().map(Segment::records).sum();
    report.segments = segments.len();
    report.records = records;
    if records > 0 {
        report.first_index = segments.first().map(|s| LogIndex(s.first_index));
        report.last_index = segments.last().map(|s| LogIndex(s.next_index() - 1));
    }
    Ok((segments, report))
}

fn open_segments(fs: &dyn FileSystem, analysis: Analysis) -> Result<Vec<Segment>> {
    let mut segments = Vec::with_capacity(analysis.segments.len());
    for seg in analysis.segments {
        let path = seg.file.path;
        let file = fs
            .open_write(&path)
            .map_err(|e| Error::io("open segment", &path, e))?;
        segments.push(Segment {
            first_index: seg.scan.first_index,
            path,
            file,
            offsets: seg.offsets,
            data_end: seg.scan.data_end,
            flushed_end: seg.scan.data_end,
            file_bytes: seg.file.file_bytes,
        });
    }
    Ok(segments)
}

/// Copies the damaged segment aside, moves every later segment aside (last first, so a crash
/// leaves a prefix of the log), then cuts the damaged segment at the damage.
fn repair(
    fs: &dyn FileSystem,
    dir: &Path,
    analysis: &mut Analysis,
    problem: &Problem,
) -> Result<RepairAction> {
    let damaged = &analysis.segments[problem.segment];
    let mut action = RepairAction {
        segment: damaged.file.path.clone(),
        offset: problem.offset,
        reason: problem.reason.clone(),
        copied_to: None,
        moved: Vec::new(),
        bytes_cut: damaged.file.file_bytes.saturating_sub(problem.offset),
    };
    let header_damaged = problem.offset < SEGMENT_HEADER_BYTES;
    let first_moved = if header_damaged {
        problem.segment
    } else {
        problem.segment + 1
    };
    for seg in analysis.segments.drain(first_moved..).rev() {
        let to = broken_path(fs, dir, &seg.file.name)?;
        fs.rename(&seg.file.path, &to)
            .map_err(|e| Error::io("move segment aside", &seg.file.path, e))?;
        action.moved.push((seg.file.path, to));
    }
    fs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    if header_damaged {
        action.bytes_cut = 0;
        return Ok(action);
    }
    let seg = &mut analysis.segments[problem.segment];
    let to = broken_path(fs, dir, &seg.file.name)?;
    copy_file(fs, &seg.file.path, &to)?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))?;
    action.copied_to = Some(to);
    let file = fs
        .open_write(&seg.file.path)
        .map_err(|e| Error::io("open segment", &seg.file.path, e))?;
    cut_file(
        file.as_ref(),
        &seg.file.path,
        problem.offset,
        seg.file.file_bytes,
    )?;
    seg.scan.data_end = problem.offset;
    seg.scan.end = SegmentEnd::Clean;
    Ok(action)
}

/// `dir/{name}.broken`, or `dir/{name}.broken.N` for the first free N.
fn broken_path(fs: &dyn FileSystem, dir: &Path, name: &str) -> Result<PathBuf> {
    let existing = fs
        .list_dir(dir)
        .map_err(|e| Error::io("list directory", dir, e))?;
    let base = format!("{name}{BROKEN_SUFFIX}");
    let mut candidate = base.clone();
    let mut n = 1;
    while existing.contains(&candidate) {
        candidate = format!("{base}.{n}");
        n += 1;
    }
    Ok(dir.join(candidate))
}

fn copy_file(fs: &dyn FileSystem, from: &Path, to: &Path) -> Result<()> {
    let src = fs
        .open_read(from)
        .map_err(|e| Error::io("open segment", from, e))?;
    let bytes = read_whole(src.as_ref()).map_err(|e| Error::io("read segment", from, e))?;
    let dst = fs.create(to).map_err(|e| Error::io("create copy", to, e))?;
    write_all_at(dst.as_ref(), &bytes, 0).map_err(|e| Error::io("write copy", to, e))?;
    dst.sync_all().map_err(|e| Error::io("fsync copy", to, e))
}
