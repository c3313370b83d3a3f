//! `steward log repair DIR`: the explicit repair path. Cuts a torn tail, copies a damaged
//! segment aside and cuts the log at the damage, and prints exactly what it moved and cut.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use steward_log::{repair_dir, RecoveryReport};

use super::plural;

/// Repairs `dir` and prints what was done.
pub fn run(dir: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let report = repair_dir(dir).with_context(|| format!("cannot repair {}", dir.display()))?;
    write_report(dir, &report, out)?;
    Ok(())
}

fn write_report(dir: &Path, r: &RecoveryReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "repair of {}", dir.display())?;
    let mut changed = false;
    for path in &r.removed_temp_files {
        writeln!(out, "removed half-created file {}", path.display())?;
        changed = true;
    }
    for path in &r.removed_purge_leftovers {
        writeln!(
            out,
            "removed segment left by an interrupted purge {}",
            path.display()
        )?;
        changed = true;
    }
    if let Some(action) = &r.repair {
        changed = true;
        writeln!(
            out,
            "corruption in {} at offset {}: {}",
            action.segment.display(),
            action.offset,
            action.reason
        )?;
        for (from, to) in &action.moved {
            writeln!(out, "moved {} to {}", from.display(), to.display())?;
        }
        if let Some(copy) = &action.copied_to {
            writeln!(
                out,
                "copied {} to {}",
                action.segment.display(),
                copy.display()
            )?;
            writeln!(
                out,
                "cut {} at offset {} ({} bytes dropped)",
                action.segment.display(),
                action.offset,
                action.bytes_cut
            )?;
        }
    }
    if let Some(torn) = &r.torn_tail {
        changed = true;
        writeln!(
            out,
            "cut torn tail of {} at offset {} ({} bytes dropped)",
            torn.segment.display(),
            torn.offset,
            torn.bytes_dropped
        )?;
    }
    if !changed {
        writeln!(out, "nothing to repair")?;
    }
    let range = match (r.first_index, r.last_index) {
        (Some(first), Some(last)) => format!("indices {first}..={last}"),
        _ => "no records".to_string(),
    };
    writeln!(
        out,
        "log now: {}, {} ({range})",
        plural(r.segments as u64, "segment"),
        plural(r.records, "record")
    )
}
