//! Read-only inspection of a log directory for the offline tools (`steward log inspect | verify
//! | dump`), plus the explicit `repair_dir`. Nothing here except `repair_dir` ever changes the
//! directory, and nothing here needs a running node.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::dir::{analyze, list, Analysis, SegmentFile};
use crate::error::{Error, Result};
use crate::format::{RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use crate::fs::{read_whole, FileSystem, StdFs};
use crate::options::{RecoveryMode, WalOptions};
use crate::record::LogIndex;
use crate::recovery::RepairReport;
use crate::scan::{scan_segment, SegmentEnd};
use crate::vote::read_vote_file;
use crate::wal::Wal;

/// What a log directory holds, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirReport {
    /// The directory.
    pub dir: PathBuf,
    /// Segments in index order.
    pub segments: Vec<SegmentInfo>,
    /// The vote file.
    pub vote: VoteState,
    /// Whole records in trusted segments.
    pub records: u64,
    /// First record index.
    pub first_index: Option<LogIndex>,
    /// Last record index.
    pub last_index: Option<LogIndex>,
    /// Sum of segment file sizes.
    pub file_bytes: u64,
    /// Half-created files a crash left (`*.tmp`); `open` removes them.
    pub temp_files: Vec<PathBuf>,
    /// Segments an interrupted purge left; `open` removes them.
    pub purge_leftovers: Vec<PathBuf>,
    /// Torn tails and corruption, in file order.
    pub problems: Vec<LogProblem>,
}

impl DirReport {
    /// No torn tail and no corruption.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether any problem is corruption (as opposed to a torn tail, which `open` repairs).
    pub fn has_corruption(&self) -> bool {
        self.problems
            .iter()
            .any(|p| matches!(p.kind, ProblemKind::Corruption { .. }))
    }
}

/// One segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// File name (`{first_index:020}.wal`).
    pub file_name: String,
    /// First index (from the name).
    pub first_index: LogIndex,
    /// Last whole record's index.
    pub last_index: Option<LogIndex>,
    /// Whole records.
    pub records: u64,
    /// Bytes used by the header and whole records.
    pub data_bytes: u64,
    /// File size (preallocated).
    pub file_bytes: u64,
    /// Sealed or active.
    pub state: SegmentState,
}

/// Whether a segment is still written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    /// A later segment exists; this one is complete.
    Sealed,
    /// The last segment, where appends go.
    Active,
}

/// The vote file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteState {
    /// No vote was ever saved.
    Absent,
    /// A valid vote of this many bytes.
    Present {
        /// Size of the vote.
        vote_bytes: u64,
    },
    /// The vote file is damaged (also listed in `problems`).
    Damaged,
}

/// A problem with file and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogProblem {
    /// The file.
    pub file: PathBuf,
    /// Byte offset in it.
    pub offset: u64,
    /// What it is.
    pub kind: ProblemKind,
}

/// Torn tail or corruption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// An interrupted write at the end of the active segment; `open` cuts it.
    TornTail {
        /// Bytes that would be dropped.
        bytes: u64,
    },
    /// Damage `open` refuses in `Strict` mode.
    Corruption {
        /// What was found.
        reason: String,
    },
}

/// Scans `dir` without changing it, checking every record.
pub fn scan_dir(dir: &Path) -> Result<DirReport> {
    scan_dir_with_progress(dir, &mut |_, _| {})
}

/// `scan_dir`, calling `progress(bytes_done, bytes_total)` after each segment.
pub fn scan_dir_with_progress(dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<DirReport> {
    let fs = StdFs;
    let analysis = analyze(&fs, dir, progress)?;
    let mut report = DirReport {
        dir: dir.to_path_buf(),
        segments: Vec::with_capacity(analysis.segments.len()),
        vote: VoteState::Absent,
        records: 0,
        first_index: None,
        last_index: None,
        file_bytes: 0,
        temp_files: analysis.listing_temp_files.clone(),
        purge_leftovers: Vec::new(),
        problems: Vec::new(),
    };
    for k in 0..analysis.segments.len() {
        add_segment(&mut report, &analysis, k);
    }
    report.vote = match read_vote_file(&fs, dir) {
        Ok(None) => VoteState::Absent,
        Ok(Some(vote)) => VoteState::Present {
            vote_bytes: vote.len() as u64,
        },
        Err(Error::Corruption {
            segment,
            offset,
            reason,
        }) => {
            report.problems.push(corruption(&segment, offset, reason));
            VoteState::Damaged
        }
        Err(e) => return Err(e),
    };
    Ok(report)
}

/// Adds segment `k` of `analysis` to `report`: its row, its records, and its problems.
fn add_segment(report: &mut DirReport, analysis: &Analysis, k: usize) {
    let seg = &analysis.segments[k];
    let scan = &seg.scan;
    let last = k + 1 == analysis.segments.len();
    report.file_bytes += seg.file.file_bytes;
    report.segments.push(SegmentInfo {
        file_name: seg.file.name.clone(),
        first_index: LogIndex(scan.first_index),
        last_index: (scan.records > 0).then(|| LogIndex(scan.first_index + scan.records - 1)),
        records: scan.records,
        data_bytes: scan
            .data_end
            .max(SEGMENT_HEADER_BYTES.min(seg.file.file_bytes)),
        file_bytes: seg.file.file_bytes,
        state: if last {
            SegmentState::Active
        } else {
            SegmentState::Sealed
        },
    });
    if k < analysis.purge_leftovers {
        report.purge_leftovers.push(seg.file.path.clone());
        return;
    }
    if k > analysis.purge_leftovers {
        let prev = &analysis.segments[k - 1];
        let expected = prev.scan.first_index + prev.scan.records;
        // A gap right after a corrupt segment is that corruption again, not a second problem.
        let prev_corrupt = matches!(prev.scan.end, SegmentEnd::Corrupt { .. });
        if expected != scan.first_index && !prev_corrupt {
            let reason = format!(
                "next segment {} starts at index {}, expected {expected}",
                seg.file.name, scan.first_index
            );
            report
                .problems
                .push(corruption(&prev.file.path, prev.scan.data_end, reason));
        }
    }
    if scan.records > 0 {
        report.first_index.get_or_insert(LogIndex(scan.first_index));
        report.last_index = Some(LogIndex(scan.first_index + scan.records - 1));
    }
    report.records += scan.records;
    match &scan.end {
        SegmentEnd::Clean => {}
        SegmentEnd::TornTail { offset, bytes } => report.problems.push(LogProblem {
            file: seg.file.path.clone(),
            offset: *offset,
            kind: ProblemKind::TornTail { bytes: *bytes },
        }),
        SegmentEnd::Corrupt { offset, reason } => {
            report
                .problems
                .push(corruption(&seg.file.path, *offset, reason.clone()));
        }
    }
}

fn corruption(file: &Path, offset: u64, reason: String) -> LogProblem {
    LogProblem {
        file: file.to_path_buf(),
        offset,
        kind: ProblemKind::Corruption { reason },
    }
}

/// Repairs `dir` explicitly: cuts a torn tail, and copies a damaged segment aside
/// (`*.broken`), moves later segments aside and cuts the log at the damage. The report says
/// exactly what was moved and cut. Fails if `dir` does not exist.
pub fn repair_dir(dir: &Path) -> Result<RepairReport> {
    StdFs
        .list_dir(dir)
        .map_err(|e| Error::io("list directory", dir, e))?;
    let options = WalOptions {
        recovery_mode: RecoveryMode::Repair,
        // Nothing will be appended: do not prepare a spare segment only to delete it.
        prepare_segments_in_background: false,
        ..WalOptions::default()
    };
    let (_wal, report) = Wal::open(dir, options)?;
    Ok(report)
}

/// A record read offline, with where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirRecord {
    /// Segment file name.
    pub segment: String,
    /// Offset of its frame in the segment.
    pub offset: u64,
    /// Index.
    pub index: LogIndex,
    /// Term.
    pub term: u64,
    /// Kind byte.
    pub kind: u8,
    /// Stored CRC32.
    pub crc: u32,
    /// Frame size on disk, padding included.
    pub frame_bytes: u64,
    /// The payload.
    pub payload: Bytes,
}

/// Reads the whole records with indices in `range` from `dir`, without changing it. The
/// iterator ends at a torn tail and yields `Error::Corruption` at damage.
pub fn read_dir_records(dir: &Path, range: Range<u64>) -> Result<DirRecords> {
    let files = list(&StdFs, dir)?.segments;
    let count = files.len();
    let next_names: Vec<Option<u64>> = (0..count)
        .map(|k| files.get(k + 1).map(|f| f.name_index))
        .collect();
    let bytes_total = files.iter().map(|f| f.file_bytes).sum();
    let segments = files
        .into_iter()
        .zip(next_names)
        .map(|(file, next_name)| PendingSegment { file, next_name })
        .collect();
    Ok(DirRecords {
        segments,
        range,
        buffered: VecDeque::new(),
        bytes_total,
        bytes_done: 0,
        finished: false,
    })
}

#[derive(Debug)]
struct PendingSegment {
    file: SegmentFile,
    /// First index of the following segment (`None` for the active one).
    next_name: Option<u64>,
}

/// Iterator returned by `read_dir_records`.
#[derive(Debug)]
pub struct DirRecords {
    segments: VecDeque<PendingSegment>,
    range: Range<u64>,
    buffered: VecDeque<Result<DirRecord>>,
    bytes_total: u64,
    bytes_done: u64,
    finished: bool,
}

impl DirRecords {
    /// Total size of the segment files, for progress reporting.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_total
    }

    /// Size of the segment files read or skipped so far.
    pub fn bytes_done(&self) -> u64 {
        self.bytes_done
    }

    /// Reads the next segment that can hold records in range into `buffered`.
    fn load_next_segment(&mut self) {
        while let Some(pending) = self.segments.pop_front() {
            self.bytes_done += pending.file.file_bytes;
            let below = pending.next_name.is_some_and(|n| n <= self.range.start);
            if below || pending.file.name_index >= self.range.end {
                continue;
            }
            if let Err(e) = self.read_segment(&pending) {
                self.buffered.push_back(Err(e));
                self.finished = true;
            }
            if !self.buffered.is_empty() || self.finished {
                return;
            }
        }
        self.finished = true;
    }

    fn read_segment(&mut self, pending: &PendingSegment) -> Result<()> {
        let path = &pending.file.path;
        let file = StdFs
            .open_read(path)
            .map_err(|e| Error::io("open segment", path, e))?;
        let bytes =
            Bytes::from(read_whole(file.as_ref()).map_err(|e| Error::io("read segment", path, e))?);
        let range = self.range.clone();
        let name = &pending.file.name;
        let scan = scan_segment(
            &bytes,
            pending.file.name_index,
            pending.next_name.is_some(),
            |offset, view, _| {
                if range.contains(&view.index) {
                    let start = (offset + RECORD_HEADER_BYTES) as usize;
                    self.buffered.push_back(Ok(DirRecord {
                        segment: name.clone(),
                        offset,
                        index: LogIndex(view.index),
                        term: view.term,
                        kind: view.kind,
                        crc: view.crc,
                        frame_bytes: view.frame_bytes,
                        payload: bytes.slice(start..start + view.payload_bytes as usize),
                    }));
                }
            },
        );
        match scan.end {
            SegmentEnd::Clean => Ok(()),
            SegmentEnd::TornTail { .. } => {
                self.finished = true;
                Ok(())
            }
            SegmentEnd::Corrupt { offset, reason } => Err(Error::corruption(path, offset, reason)),
        }
    }
}

impl Iterator for DirRecords {
    type Item = Result<DirRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffered.is_empty() && !self.finished {
            self.load_next_segment();
        }
        self.buffered.pop_front()
    }
}
