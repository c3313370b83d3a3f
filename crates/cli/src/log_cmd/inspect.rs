//! `steward log inspect DIR`: the segment table, the vote and totals, plus any problems found.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use steward_log::{scan_dir_with_progress, DirReport, LogIndex, SegmentState, VoteState};

use super::verify::write_problems;
use super::{plural, progress};

/// Prints the inspection of `dir` to `out`.
pub fn run(dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let report = scan(dir)?;
    write_inspection(&report, out)?;
    Ok(())
}

/// Scans `dir` with a progress bar when worthwhile.
pub fn scan(dir: &Path) -> anyhow::Result<DirReport> {
    let mut bar = None;
    let report = scan_dir_with_progress(dir, &mut |done, total| {
        bar.get_or_insert_with(|| progress::bar(total, "scanning"))
            .set_position(done);
    })
    .with_context(|| format!("cannot read log directory {}", dir.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report)
}

fn write_inspection(report: &DirReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "log directory: {}", report.dir.display())?;
    writeln!(
        out,
        "{:<26} {:>10} {:>10} {:>9} {:>12} {:>12}  state",
        "segment", "first", "last", "records", "data bytes", "file bytes"
    )?;
    for seg in &report.segments {
        let state = match seg.state {
            SegmentState::Sealed => "sealed",
            SegmentState::Active => "active",
        };
        writeln!(
            out,
            "{:<26} {:>10} {:>10} {:>9} {:>12} {:>12}  {state}",
            seg.file_name,
            seg.first_index,
            index_or_dash(seg.last_index),
            seg.records,
            seg.data_bytes,
            seg.file_bytes,
        )?;
    }
    let vote = match &report.vote {
        VoteState::Absent => "absent".to_string(),
        VoteState::Present { vote_bytes } => format!("present ({vote_bytes} bytes)"),
        VoteState::Damaged => "DAMAGED".to_string(),
    };
    writeln!(out, "vote: {vote}")?;
    let range = match (report.first_index, report.last_index) {
        (Some(first), Some(last)) => format!("indices {first}..={last}"),
        _ => "no records".to_string(),
    };
    let data_bytes: u64 = report.segments.iter().map(|s| s.data_bytes).sum();
    writeln!(
        out,
        "total: {}, {} ({range}), {data_bytes} data bytes, {} file bytes",
        plural(report.segments.len() as u64, "segment"),
        plural(report.records, "record"),
        report.file_bytes
    )?;
    for path in &report.temp_files {
        writeln!(
            out,
            "note: half-created file {} (removed on open)",
            path.display()
        )?;
    }
    for path in &report.purge_leftovers {
        writeln!(
            out,
            "note: left over by an interrupted purge: {} (removed on open)",
            path.display()
        )?;
    }
    write_problems(report, out)
}

fn index_or_dash(index: Option<LogIndex>) -> String {
    index.map_or_else(|| "-".to_string(), |i| i.to_string())
}
