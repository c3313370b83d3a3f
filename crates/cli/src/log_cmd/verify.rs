//! `steward log verify DIR`: every record's CRC and the segment sequence; torn tails are
//! reported apart from corruption, each with its file and offset, and the exit code says which.

use std::io::Write;
use std::path::Path;

use steward_log::{DirReport, ProblemKind};

use super::inspect::scan;
use super::{plural, EXIT_CORRUPTION, EXIT_TORN_TAIL};

/// Verifies `dir`, prints the verdict to `out` and returns the exit code.
pub fn run(dir: &Path, out: &mut dyn Write) -> anyhow::Result<i32> {
    let report = scan(dir)?;
    writeln!(
        out,
        "verified {}: {}, {}",
        report.dir.display(),
        plural(report.segments.len() as u64, "segment"),
        plural(report.records, "record")
    )?;
    write_problems(&report, out)?;
    let code = if report.has_corruption() {
        EXIT_CORRUPTION
    } else if !report.is_clean() {
        EXIT_TORN_TAIL
    } else {
        writeln!(out, "ok: every record checks out")?;
        0
    };
    Ok(code)
}

/// One line per problem: corruption first, then torn tails.
pub fn write_problems(report: &DirReport, out: &mut dyn Write) -> std::io::Result<()> {
    for p in &report.problems {
        if let ProblemKind::Corruption { reason } = &p.kind {
            writeln!(
                out,
                "CORRUPTION: {} at offset {}: {reason}",
                p.file.display(),
                p.offset
            )?;
        }
    }
    for p in &report.problems {
        if let ProblemKind::TornTail { bytes } = p.kind {
            writeln!(
                out,
                "torn tail: {} at offset {} ({bytes} bytes of an interrupted write; opening the log cuts it)",
                p.file.display(),
                p.offset
            )?;
        }
    }
    Ok(())
}
