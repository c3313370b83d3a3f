//! Reads a log directory without changing it: lists segment files, scans each one, and finds the
//! first place where the log stops being trustworthy. Shared by recovery (which then acts) and
//! the offline tools (which only report).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{parse_segment_file_name, TEMP_SUFFIX};
use crate::fs::{read_whole, FileSystem};
use crate::scan::{scan_segment, SegmentEnd, SegmentScan};

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

/// Scans every segment of `dir`. `progress(done, total)` is called after each segment with
/// byte counts.
pub(crate) fn analyze(
    fs: &dyn FileSystem,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Analysis> {
    let listing = list(fs, dir)?;
    let total: u64 = listing.segments.iter().map(|s| s.file_bytes).sum();
    let count = listing.segments.len();
    let mut segments = Vec::with_capacity(count);
    let mut done = 0;
    for (k, file) in listing.segments.into_iter().enumerate() {
        let handle = fs
            .open_read(&file.path)
            .map_err(|e| Error::io("open segment", &file.path, e))?;
        let bytes =
            read_whole(handle.as_ref()).map_err(|e| Error::io("read segment", &file.path, e))?;
        let mut offsets = Vec::new();
        let mut scan = scan_segment(&bytes, file.name_index, k + 1 < count, |offset, _, _| {
            offsets.push(u32::try_from(offset).unwrap_or(u32::MAX));
        });
        if bytes.len() as u64 > u64::from(u32::MAX) {
            scan.end = SegmentEnd::Corrupt {
                offset: 0,
                reason: "segment larger than 4 GiB".to_string(),
            };
        }
        done += file.file_bytes;
        progress(done, total);
        segments.push(AnalyzedSegment {
            file,
            scan,
            offsets,
        });
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
