//! Reads a log directory without changing it: lists segment files, scans each one, and finds the
//! first place where the log stops being trustworthy. Shared by recovery (which then acts) and
//! the offline tools (which only report).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::error::{Error, Result};
use crate::format::{parse_segment_file_name, TEMP_SUFFIX};
use crate::fs::{read_exact_at, FileSystem};
use crate::scan::{scan_segment, SegmentEnd, SegmentScan};
use crate::stream_scan::{scan_clean_segment, SCAN_CHUNK_BYTES};

/// A segment file found in the directory.
#[derive(Debug, Clone)]
pub(crate) struct SegmentFile {
    pub name: String,
    pub path: PathBuf,
    pub name_index: u64,
    pub file_bytes: u64,
}

/// What a directory holds, by name.
#[derive(Debug)]
pub(crate) struct Listing {
    /// Segment files ordered by first index.
    pub segments: Vec<SegmentFile>,
    /// Files a crash left half-created (`*.tmp`).
    pub temp_files: Vec<PathBuf>,
}

/// Lists `dir`.
pub(crate) fn list(fs: &dyn FileSystem, dir: &Path) -> Result<Listing> {
    let names = fs
        .list_dir(dir)
        .map_err(|e| Error::io("list directory", dir, e))?;
    let mut listing = Listing {
        segments: Vec::new(),
        temp_files: Vec::new(),
    };
    for name in names {
        let path = dir.join(&name);
        if let Some(name_index) = parse_segment_file_name(&name) {
            let file = fs
                .open_read(&path)
                .map_err(|e| Error::io("open segment", &path, e))?;
            let file_bytes = file
                .size_bytes()
                .map_err(|e| Error::io("stat segment", &path, e))?;
            listing.segments.push(SegmentFile {
                name,
                path,
                name_index,
                file_bytes,
            });
        } else if name.ends_with(TEMP_SUFFIX) {
            listing.temp_files.push(path);
        }
    }
    listing.segments.sort_by_key(|s| s.name_index);
    listing.temp_files.sort();
    Ok(listing)
}

/// One scanned segment.
#[derive(Debug)]
pub(crate) struct AnalyzedSegment {
    pub file: SegmentFile,
    pub scan: SegmentScan,
    /// Offsets of the whole records.
    pub offsets: Vec<u32>,
}

/// The first place the log cannot be trusted past.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    /// Position in `Analysis::segments`.
    pub segment: usize,
    pub offset: u64,
    pub reason: String,
}

/// A scanned directory.
#[derive(Debug)]
pub(crate) struct Analysis {
    pub listing_temp_files: Vec<PathBuf>,
    pub segments: Vec<AnalyzedSegment>,
    /// How many leading segments an interrupted `purge_before` left behind: they precede an
    /// empty last segment whose first index is past their records.
    pub purge_leftovers: usize,
    pub problem: Option<Problem>,
}

impl Analysis {
    pub fn problem_error(&self, problem: &Problem) -> Error {
        Error::corruption(
            &self.segments[problem.segment].file.path,
            problem.offset,
            &problem.reason,
        )
    }
}

/// Most threads used to scan segments in parallel. Default: 4 (reading and checksumming a
/// segment is memory-bound; more threads stop helping quickly).
const SCAN_THREADS_MAX: usize = 4;

/// Scans every segment of `dir`, several at a time. `progress(done, total)` is called (on the
/// calling thread) after each segment with byte counts.
pub(crate) fn analyze(
    fs: &dyn FileSystem,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Analysis> {
    let listing = list(fs, dir)?;
    let files = &listing.segments;
    let total: u64 = files.iter().map(|s| s.file_bytes).sum();
    let count = files.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, SCAN_THREADS_MAX)
        .min(count.max(1));
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<AnalyzedSegment>>> = (0..count).map(|_| None).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..threads {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || {
                // One buffer per thread: fresh memory costs more in page faults than the read.
                let mut buf = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= count {
                        break;
                    }
                    let result = scan_file(fs, &files[k], k + 1 < count, &mut buf);
                    if tx.send((k, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0;
        for (k, result) in rx {
            done += files[k].file_bytes;
            progress(done, total);
            results[k] = Some(result);
        }
    });
    let mut segments = Vec::with_capacity(count);
    for result in results {
        let Some(result) = result else {
            unreachable!("every segment index is taken by exactly one scan thread");
        };
        segments.push(result?);
    }
    let purge_leftovers = purge_leftovers(&segments);
    let problem = first_problem(&segments, purge_leftovers);
    Ok(Analysis {
        listing_temp_files: listing.temp_files,
        segments,
        purge_leftovers,
        problem,
    })
}

/// Scans one segment: through a small buffer when it is clean (the common case), else read
/// whole into a buffer of its size, which `scan_segment` classifies (`stream_scan`).
fn scan_file(
    fs: &dyn FileSystem,
    file: &SegmentFile,
    sealed: bool,
    buf: &mut Vec<u8>,
) -> Result<AnalyzedSegment> {
    let handle = fs
        .open_read(&file.path)
        .map_err(|e| Error::io("open segment", &file.path, e))?;
    let mut offsets = Vec::new();
    let clean = scan_clean_segment(
        handle.as_ref(),
        file.file_bytes,
        file.name_index,
        SCAN_CHUNK_BYTES,
        buf,
        |offset, _| offsets.push(u32::try_from(offset).unwrap_or(u32::MAX)),
    )
    .map_err(|e| Error::io("read segment", &file.path, e))?;
    let mut scan = match clean {
        Some(scan) => scan,
        None => {
            offsets.clear();
            let len = usize::try_from(file.file_bytes).unwrap_or(usize::MAX);
            let mut whole = vec![0u8; len];
            read_exact_at(handle.as_ref(), &mut whole, 0)
                .map_err(|e| Error::io("read segment", &file.path, e))?;
            scan_segment(&whole, file.name_index, sealed, |offset, _, _| {
                offsets.push(u32::try_from(offset).unwrap_or(u32::MAX));
            })
        }
    };
    if file.file_bytes > u64::from(u32::MAX) {
        scan.end = SegmentEnd::Corrupt {
            offset: 0,
            reason: "segment larger than 4 GiB".to_string(),
        };
    }
    Ok(AnalyzedSegment {
        file: file.clone(),
        scan,
        offsets,
    })
}

fn purge_leftovers(segments: &[AnalyzedSegment]) -> usize {
    let [.., prev, last] = segments else {
        return 0;
    };
    let empty_and_clean = last.scan.records == 0 && last.scan.end == SegmentEnd::Clean;
    if empty_and_clean && last.scan.first_index > prev.scan.first_index + prev.scan.records {
        segments.len() - 1
    } else {
        0
    }
}

fn first_problem(segments: &[AnalyzedSegment], start: usize) -> Option<Problem> {
    for k in start..segments.len() {
        let seg = &segments[k];
        if k > start {
            let prev = &segments[k - 1];
            let expected = prev.scan.first_index + prev.scan.records;
            if seg.scan.first_index != expected {
                return Some(Problem {
                    segment: k - 1,
                    offset: prev.scan.data_end,
                    reason: format!(
                        "next segment {} starts at index {}, expected {expected}",
                        seg.file.name, seg.scan.first_index
                    ),
                });
            }
        }
        if let SegmentEnd::Corrupt { offset, reason } = &seg.scan.end {
            return Some(Problem {
                segment: k,
                offset: *offset,
                reason: reason.clone(),
            });
        }
    }
    None
}
