//! One run of `steward bench wal`: picks the run directory, walks the grid of points, times
//! recovery, prints the report.
//!
//! Every cell (payload size, appender count) opens a fresh instance of each target in its own
//! directory, lets the targets take turns in short slices, and deletes the directories after,
//! except steward-log's, whose one WAL collects every steward point of the run (so `--keep` can
//! hand it to `steward log inspect`). It does not measure anything itself.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};

use super::machine::{default_parent, load_average, prepare_parent};
use super::report::{self, PointResult, Report};
use super::runner::{run_point, PointLimits, PointMeasurement};
use super::target::TargetKind;
use super::{recovery, WalArgs};

/// Payload sizes measured, in bytes.
pub const PAYLOAD_BYTES: [usize; 2] = [256, 4096];
/// Concurrent appender counts measured.
pub const APPENDERS: [usize; 3] = [1, 8, 64];
/// Full run: each point is measured in `rounds` slices; within a cell (payload, appenders) the
/// targets take turns slice by slice, so a disturbance from elsewhere on the machine (another
/// process's `fsync` storm) hits every target alike instead of one. 6 × 0.5 s = 3 s measured.
const FULL_PLAN: Plan = Plan {
    slice: PointLimits {
        warmup: Duration::from_millis(100),
        measure: Duration::from_millis(500),
        records_max: 5_000_000,
    },
    rounds: 6,
};
/// `--quick`: the same grid with 2 × 0.2 s per point.
const QUICK_PLAN: Plan = Plan {
    slice: PointLimits {
        warmup: Duration::from_millis(50),
        measure: Duration::from_millis(200),
        records_max: 1_000_000,
    },
    rounds: 2,
};

/// How each point is measured.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// One slice of a point.
    slice: PointLimits,
    /// Slices per point.
    rounds: u32,
}

/// Size of the log whose recovery is timed: the 1 GiB of the target.
const FULL_RECOVERY_BYTES: u64 = 1 << 30;
/// `--quick` recovery log size (64 MiB); reported as reduced.
const QUICK_RECOVERY_BYTES: u64 = 64 << 20;

/// Runs the benchmark described by `args` and prints its report on stdout.
pub fn run(args: &WalArgs) -> anyhow::Result<()> {
    let (plan, recovery_bytes) = if args.quick {
        (QUICK_PLAN, QUICK_RECOVERY_BYTES)
    } else {
        (FULL_PLAN, FULL_RECOVERY_BYTES)
    };
    let targets: Vec<TargetKind> = if args.targets.is_empty() {
        TargetKind::ALL.to_vec()
    } else {
        TargetKind::ALL
            .into_iter()
            .filter(|t| args.targets.contains(t))
            .collect()
    };
    let parent = match &args.dir {
        Some(dir) => dir.clone(),
        None => default_parent()?,
    };
    prepare_parent(&parent)?;
    let run_dir = tempfile::Builder::new()
        .prefix("steward-bench-")
        .tempdir_in(&parent)
        .with_context(|| format!("create a run directory under {}", parent.display()))?;
    if args.keep.is_some() && !targets.contains(&TargetKind::Steward) {
        bail!("--keep keeps steward-log's WAL, but steward is not among --targets");
    }
    let steward_dir = match &args.keep {
        Some(keep) => prepare_keep_dir(keep)?,
        None => run_dir.path().join("steward"),
    };
    let load_at_start = load_average();
    let with_recovery = targets.contains(&TargetKind::Steward);
    let cells = (PAYLOAD_BYTES.len() * APPENDERS.len()) as u64;
    let progress = progress_bar(cells * u64::from(plan.rounds) + u64::from(with_recovery));
    let mut points = Vec::new();
    let mut notes = Vec::new();
    for payload_bytes in PAYLOAD_BYTES {
        for appenders in APPENDERS {
            let cell = Cell {
                payload: payload_of(payload_bytes),
                appenders,
            };
            let dirs = targets
                .iter()
                .map(|&kind| match kind {
                    TargetKind::Steward => steward_dir.clone(),
                    _ => run_dir
                        .path()
                        .join(format!("{kind:?}-{payload_bytes}-{appenders}")),
                })
                .collect::<Vec<_>>();
            points.extend(run_cell(
                &cell, &targets, &dirs, plan, &progress, &mut notes,
            )?);
            for (kind, dir) in targets.iter().zip(&dirs) {
                if *kind != TargetKind::Steward {
                    std::fs::remove_dir_all(dir)
                        .with_context(|| format!("remove {}", dir.display()))?;
                }
            }
        }
    }
    let recovery = if with_recovery {
        progress.set_message(format!("recovery of a {} MiB log", recovery_bytes >> 20));
        let measured = recovery::measure(&run_dir.path().join("recovery"), recovery_bytes)?;
        progress.inc(1);
        Some(measured)
    } else {
        None
    };
    progress.finish_and_clear();
    let verdicts = report::verdicts(&points, recovery.as_ref());
    let report = Report {
        quick: args.quick,
        dir: run_dir.path().display().to_string(),
        rounds: plan.rounds,
        warmup_seconds: plan.slice.warmup.as_secs_f64() * f64::from(plan.rounds),
        measure_seconds: plan.slice.measure.as_secs_f64() * f64::from(plan.rounds),
        load_average: (load_at_start, load_average()),
        points,
        recovery,
        verdicts,
    };
    print!("{}", report::render(&report, &notes));
    if let Some(keep) = &args.keep {
        println!("\nsteward-log's WAL from this run is in {}", keep.display());
    }
    if let Some(path) = &args.json {
        report::write_json(&report, path)?;
    }
    run_dir
        .close()
        .context("remove the benchmark's run directory")?;
    Ok(())
}

/// One payload size and appender count, measured on every target.
struct Cell {
    payload: Bytes,
    appenders: usize,
}

/// Opens every target of a cell, lets them take turns for `plan.rounds` slices, closes them.
fn run_cell(
    cell: &Cell,
    kinds: &[TargetKind],
    dirs: &[PathBuf],
    plan: Plan,
    progress: &ProgressBar,
    notes: &mut Vec<(TargetKind, &'static str)>,
) -> anyhow::Result<Vec<PointResult>> {
    let (payload_bytes, appenders) = (cell.payload.len(), cell.appenders);
    let mut opened = Vec::with_capacity(kinds.len());
    for (&kind, dir) in kinds.iter().zip(dirs) {
        opened.push((kind, kind.open(dir)?, None::<PointMeasurement>));
    }
    for round in 1..=plan.rounds {
        progress.set_message(format!(
            "{payload_bytes} B, {appenders} appenders, round {round}/{}",
            plan.rounds
        ));
        for (kind, target, total) in &mut opened {
            let slice = run_point(target.as_ref(), appenders, &cell.payload, plan.slice)
                .with_context(|| format!("{kind}, {payload_bytes} B, {appenders} appenders"))?;
            match total {
                Some(total) => total.merge(slice)?,
                None => *total = Some(slice),
            }
        }
        progress.inc(1);
    }
    let mut points = Vec::with_capacity(opened.len());
    for (kind, target, total) in opened {
        if !notes.iter().any(|(k, _)| *k == kind) {
            notes.push((kind, target.durability_note()));
        }
        if let Some(total) = total {
            points.push(PointResult::new(
                kind,
                payload_bytes,
                appenders,
                &total,
                target.records_per_sync(),
            ));
        }
    }
    Ok(points)
}

fn prepare_keep_dir(keep: &Path) -> anyhow::Result<PathBuf> {
    if keep.exists() {
        let mut entries =
            std::fs::read_dir(keep).with_context(|| format!("read {}", keep.display()))?;
        if entries.next().is_some() {
            bail!(
                "--keep {}: the directory is not empty; give an absent or empty one",
                keep.display()
            );
        }
    } else {
        std::fs::create_dir_all(keep).with_context(|| format!("create {}", keep.display()))?;
    }
    Ok(keep.to_path_buf())
}

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} points  {elapsed}  {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Deterministic, incompressible-looking payload bytes (xorshift64), the same for every target.
pub fn payload_of(bytes: usize) -> Bytes {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ bytes as u64;
    let mut out = Vec::with_capacity(bytes);
    while out.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(bytes);
    Bytes::from(out)
}
