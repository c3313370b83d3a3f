//! Turns measurements into the printed table, the ratio table, the target verdicts and JSON.
//!
//! Pure formatting over `PointResult`s; it runs nothing and touches no disk except writing the
//! JSON file it is asked for.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::runner::PointMeasurement;
use super::target::TargetKind;

/// Bytes in one MB as printed (decimal, like `dd` and disk vendors).
const BYTES_PER_MB: f64 = 1_000_000.0;
/// Bytes in one MiB, for sizes of logs.
const MIB: f64 = 1024.0 * 1024.0;
/// One appender: steward-log's p50 latency may be at most this multiple of raw fdatasync's.
pub const SINGLE_APPENDER_LATENCY_RATIO_MAX: f64 = 1.3;
/// 64 appenders × 256 B: steward-log's throughput must be at least this multiple of sled's.
pub const SLED_THROUGHPUT_RATIO_MIN: f64 = 3.0;
/// Recovery target: opening a ~1 GiB log takes less than this many seconds.
pub const RECOVERY_SECONDS_MAX: f64 = 1.0;

/// One (target, payload, appenders) cell of the table.
#[derive(Clone, Debug, Serialize)]
pub struct PointResult {
    /// Which engine.
    pub target: TargetKind,
    /// Payload size of every append.
    pub payload_bytes: usize,
    /// Concurrent appender threads.
    pub appenders: usize,
    /// Measured appends.
    pub records: u64,
    /// Measurement window actually used.
    pub elapsed_seconds: f64,
    /// Acknowledged appends per second.
    pub records_per_second: f64,
    /// Payload megabytes (10^6 bytes) per second; framing overhead not counted.
    pub megabytes_per_second: f64,
    /// Median append latency.
    pub p50_micros: f64,
    /// 99th percentile append latency.
    pub p99_micros: f64,
    /// Slowest measured append.
    pub max_micros: f64,
    /// Process CPU time (user + system) per append, warm-up included.
    pub cpu_micros_per_append: Option<f64>,
    /// Records per `fdatasync` (warm-up included), for engines that report it.
    pub records_per_sync: Option<f64>,
}

impl PointResult {
    /// Summarises one measurement.
    pub fn new(
        target: TargetKind,
        payload_bytes: usize,
        appenders: usize,
        measured: &PointMeasurement,
        records_per_sync: Option<f64>,
    ) -> PointResult {
        let seconds = measured.elapsed.as_secs_f64();
        let per_second = if seconds > 0.0 {
            measured.records as f64 / seconds
        } else {
            0.0
        };
        let micros = |quantile: f64| measured.latency_ns.value_at_quantile(quantile) as f64 / 1e3;
        PointResult {
            target,
            payload_bytes,
            appenders,
            records: measured.records,
            elapsed_seconds: seconds,
            records_per_second: per_second,
            megabytes_per_second: per_second * payload_bytes as f64 / BYTES_PER_MB,
            p50_micros: micros(0.50),
            p99_micros: micros(0.99),
            max_micros: measured.latency_ns.max() as f64 / 1e3,
            cpu_micros_per_append: measured
                .cpu
                .filter(|_| measured.appends_total > 0)
                .map(|cpu| cpu.as_secs_f64() * 1e6 / measured.appends_total as f64),
            records_per_sync,
        }
    }
}

/// The time to open a log of a given size.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveryResult {
    /// Bytes of records in the log (frames: headers and payloads).
    pub record_bytes: u64,
    /// Bytes of segment files on disk (preallocation included).
    pub file_bytes: u64,
    /// Records in the log.
    pub records: u64,
    /// Payload of each record.
    pub payload_bytes: usize,
    /// `Wal::open` with the segments in the page cache (just written).
    pub open_warm_seconds: f64,
    /// `Wal::open` after the segments were evicted from the page cache (`POSIX_FADV_DONTNEED`),
    /// or `None` when eviction was not possible.
    pub open_cold_seconds: Option<f64>,
    /// True when the size is smaller than the 1 GiB of the target (`--quick`).
    pub reduced: bool,
}

/// Whether one stated target was met.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// What the target says.
    pub target: String,
    /// What was measured, in words.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measured in this run.
    pub met: Option<bool>,
}

/// Everything one run produced.
#[derive(Debug, Serialize)]
pub struct Report {
    /// True for `--quick` (short points, small recovery log).
    pub quick: bool,
    /// Where the engines wrote.
    pub dir: String,
    /// Slices each point is measured in, the targets of a cell taking turns.
    pub rounds: u32,
    /// Warm-up per point (all slices together); not measured.
    pub warmup_seconds: f64,
    /// Measured time per point (all slices together).
    pub measure_seconds: f64,
    /// `/proc/loadavg` when the run started and ended: other work on the machine skews
    /// latency, and this says how busy it was.
    pub load_average: (String, String),
    /// Every point, in run order.
    pub points: Vec<PointResult>,
    /// The recovery measurement, when steward-log was measured.
    pub recovery: Option<RecoveryResult>,
    /// The targets from the issue, checked.
    pub verdicts: Vec<Verdict>,
}

fn find(
    points: &[PointResult],
    target: TargetKind,
    payload: usize,
    appenders: usize,
) -> Option<&PointResult> {
    points
        .iter()
        .find(|p| p.target == target && p.payload_bytes == payload && p.appenders == appenders)
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

fn show_ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

/// Checks the targets against the measurements.
pub fn verdicts(points: &[PointResult], recovery: Option<&RecoveryResult>) -> Vec<Verdict> {
    let mut out = Vec::new();
    let steward1 = find(points, TargetKind::Steward, 256, 1);
    let raw1 = find(points, TargetKind::Raw, 256, 1);
    let latency = steward1
        .zip(raw1)
        .and_then(|(s, r)| ratio(s.p50_micros, r.p50_micros));
    out.push(Verdict {
        target: format!(
            "1 appender x 256 B: steward-log p50 <= {SINGLE_APPENDER_LATENCY_RATIO_MAX}x raw fdatasync p50"
        ),
        measured: steward1.zip(raw1).map_or_else(
            || "not measured".to_owned(),
            |(s, r)| format!("{:.0} us vs {:.0} us ({})", s.p50_micros, r.p50_micros, show_ratio(latency)),
        ),
        met: latency.map(|r| r <= SINGLE_APPENDER_LATENCY_RATIO_MAX),
    });
    let steward64 = find(points, TargetKind::Steward, 256, 64);
    for (peer, factor) in [
        (TargetKind::RaftEngine, 1.0),
        (TargetKind::Sled, SLED_THROUGHPUT_RATIO_MIN),
    ] {
        let peer64 = find(points, peer, 256, 64);
        let r = steward64
            .zip(peer64)
            .and_then(|(s, p)| ratio(s.records_per_second, p.records_per_second));
        out.push(Verdict {
            target: format!("64 appenders x 256 B: steward-log records/s >= {factor}x {peer}"),
            measured: steward64.zip(peer64).map_or_else(
                || "not measured".to_owned(),
                |(s, p)| {
                    format!(
                        "{:.0}/s vs {:.0}/s ({})",
                        s.records_per_second,
                        p.records_per_second,
                        show_ratio(r)
                    )
                },
            ),
            met: r.map(|r| r >= factor),
        });
    }
    out.push(Verdict {
        target: format!("open (recovery) of a 1 GiB log < {RECOVERY_SECONDS_MAX} s"),
        measured: recovery.map_or_else(
            || "not measured".to_owned(),
            |rec| {
                let cold = rec
                    .open_cold_seconds
                    .map_or_else(|| "cold: n/a".to_owned(), |s| format!("cold {s:.3} s"));
                let size = if rec.reduced {
                    " (reduced size, --quick: NOT the 1 GiB target)"
                } else {
                    ""
                };
                format!(
                    "{:.0} MiB of records ({} x {} B, {:.0} MiB of files): warm {:.3} s, \
                     {cold}{size}",
                    rec.record_bytes as f64 / MIB,
                    rec.records,
                    rec.payload_bytes,
                    rec.file_bytes as f64 / MIB,
                    rec.open_warm_seconds
                )
            },
        ),
        met: recovery.filter(|rec| !rec.reduced).map(|rec| {
            rec.open_cold_seconds
                .unwrap_or(rec.open_warm_seconds)
                .max(rec.open_warm_seconds)
                < RECOVERY_SECONDS_MAX
        }),
    });
    out
}

/// Renders the human-readable report.
pub fn render(report: &Report, notes: &[(TargetKind, &'static str)]) -> String {
    let mut s = String::new();
    let mode = if report.quick {
        " (--quick: short points, indicative only)"
    } else {
        ""
    };
    // Writing into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        s,
        "steward bench wal{mode}\ndir: {}\nper point: {:.1} s warm-up, {:.1} s measured, in {} \
         slices taking turns with the other targets\n\
         load average (1, 5, 15 min) at start: {}, at end: {}\n",
        report.dir,
        report.warmup_seconds,
        report.measure_seconds,
        report.rounds,
        report.load_average.0,
        report.load_average.1
    );
    let _ = writeln!(
        s,
        "{:>7} {:>9}  {:<13} {:>11} {:>8} {:>9} {:>9} {:>8} {:>9}",
        "payload",
        "appenders",
        "target",
        "records/s",
        "MB/s",
        "p50 us",
        "p99 us",
        "cpu us",
        "rec/sync"
    );
    for p in &report.points {
        let _ = writeln!(
            s,
            "{:>7} {:>9}  {:<13} {:>11.0} {:>8.2} {:>9.0} {:>9.0} {:>8} {:>9}",
            payload_label(p.payload_bytes),
            p.appenders,
            p.target.to_string(),
            p.records_per_second,
            p.megabytes_per_second,
            p.p50_micros,
            p.p99_micros,
            p.cpu_micros_per_append
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.1}")),
            p.records_per_sync
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"))
        );
    }
    render_ratios(&mut s, &report.points);
    let _ = writeln!(
        s,
        "\ncpu us: CPU time (user + system, all threads of this process) per append, warm-up \
         included;\nrec/sync: records made durable per fdatasync, for engines that count it."
    );
    let _ = writeln!(s, "\nwhat each target's \"durable\" means:");
    for (kind, note) in notes {
        let _ = writeln!(s, "  {:<13} {note}", kind.to_string());
    }
    let _ = writeln!(s, "\ntargets:");
    for v in &report.verdicts {
        let status = match v.met {
            Some(true) => "MET   ",
            Some(false) => "MISSED",
            None => "n/a   ",
        };
        let _ = writeln!(s, "  [{status}] {}: {}", v.target, v.measured);
    }
    s
}

fn render_ratios(s: &mut String, points: &[PointResult]) {
    let mut cells: Vec<(usize, usize)> = points
        .iter()
        .filter(|p| p.target == TargetKind::Steward)
        .map(|p| (p.payload_bytes, p.appenders))
        .collect();
    cells.dedup();
    if cells.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nsteward-log relative to the others (throughput ratio: higher is better; p50 ratio: lower is better)"
    );
    let _ = writeln!(
        s,
        "{:>7} {:>9}  {:>13} {:>13} {:>17} {:>17} {:>11}",
        "payload",
        "appenders",
        "rec/s vs raw",
        "p50 vs raw",
        "rec/s vs raft-eng",
        "p50 vs raft-eng",
        "rec/s vs sled"
    );
    for (payload, appenders) in cells {
        let Some(st) = find(points, TargetKind::Steward, payload, appenders) else {
            continue;
        };
        let vs = |kind: TargetKind, latency: bool| {
            show_ratio(find(points, kind, payload, appenders).and_then(|p| {
                if latency {
                    ratio(st.p50_micros, p.p50_micros)
                } else {
                    ratio(st.records_per_second, p.records_per_second)
                }
            }))
        };
        let _ = writeln!(
            s,
            "{:>7} {:>9}  {:>13} {:>13} {:>17} {:>17} {:>11}",
            payload_label(payload),
            appenders,
            vs(TargetKind::Raw, false),
            vs(TargetKind::Raw, true),
            vs(TargetKind::RaftEngine, false),
            vs(TargetKind::RaftEngine, true),
            vs(TargetKind::Sled, false)
        );
    }
}

fn payload_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// Writes the report as pretty JSON to `path`.
pub fn write_json(report: &Report, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report).context("encode report as JSON")?;
    std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))
}
