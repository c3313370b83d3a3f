//! The report of `steward bench cluster`: per-point figures, steward/etcd ratios, the targets
//! from issue 8 checked, rendered as Markdown (printed, and written with `--markdown`) and as
//! JSON (`--json`).
//!
//! Pure formatting over the results; it runs nothing.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use super::failover::FailoverResult;
use super::recovery::RecoveryResult;
use super::system::SystemKind;
use super::throughput::PointResult;
use crate::bench::report::Verdict;

/// Throughput at this many clients is the one the throughput target is about.
pub const TARGET_CLIENTS: usize = 256;
/// steward's throughput at [`TARGET_CLIENTS`] must be at least this multiple of etcd's.
pub const THROUGHPUT_RATIO_MIN: f64 = 1.5;
/// steward's median time from a leader kill to the first write must be below this (and at
/// most etcd's), in milliseconds.
pub const FAILOVER_MS_MAX: f64 = 1500.0;
/// Events in steward's log for the restart target.
pub const RECOVERY_TARGET_EVENTS: u64 = 1_000_000;
/// steward's restart over [`RECOVERY_TARGET_EVENTS`] must reach ready within this, in ms.
pub const RECOVERY_MS_MAX: f64 = 1000.0;
/// Bytes in one MiB, for data sizes.
const MIB: f64 = 1024.0 * 1024.0;

/// Where and how the run happened.
#[derive(Clone, Debug, Serialize)]
pub struct Setting {
    /// The command line that produced the report.
    pub command: String,
    /// True for `--quick`: short points, figures indicative only.
    pub quick: bool,
    /// CPUs, model, memory, kernel.
    pub machine: String,
    /// `etcd --version`, first line.
    pub etcd_version: String,
    /// Where the clusters kept their data.
    pub dir: String,
    /// Warm-up per point.
    pub warmup_seconds: f64,
    /// Measured time per point.
    pub measure_seconds: f64,
    /// Deadline of each write attempt in points and loads (both systems).
    pub request_timeout_ms: u64,
    /// Deadline of each write attempt during a failover (both systems).
    pub failover_request_timeout_ms: u64,
    /// Bytes of payload per write.
    pub payload_bytes: usize,
    /// `/proc/loadavg` (1, 5, 15 min) when the run started.
    pub load_average_start: String,
    /// `/proc/loadavg` when it ended.
    pub load_average_end: String,
}

/// Everything one run produced.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Where and how.
    pub setting: Setting,
    /// Every throughput point, in run order.
    pub points: Vec<PointResult>,
    /// Leader kills, per system.
    pub failovers: Vec<FailoverResult>,
    /// Restarts over a large log, per system and case.
    pub recoveries: Vec<RecoveryResult>,
    /// The targets, checked.
    pub verdicts: Vec<Verdict>,
}

fn find(points: &[PointResult], system: SystemKind, clients: usize) -> Option<&PointResult> {
    points
        .iter()
        .find(|p| p.system == system && p.clients == clients)
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

fn show_ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

fn show_option(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The client counts measured for both systems, ascending.
fn paired_clients(points: &[PointResult]) -> Vec<usize> {
    let mut clients: Vec<usize> = points
        .iter()
        .filter(|p| p.system == SystemKind::Steward)
        .map(|p| p.clients)
        .filter(|&c| find(points, SystemKind::Etcd, c).is_some())
        .collect();
    clients.sort_unstable();
    clients.dedup();
    clients
}

/// Checks the targets against the measurements. A target whose inputs were not
/// measured is `met: None`.
pub fn verdicts(
    points: &[PointResult],
    failovers: &[FailoverResult],
    recoveries: &[RecoveryResult],
) -> Vec<Verdict> {
    let mut out = Vec::new();
    let at_target = find(points, SystemKind::Steward, TARGET_CLIENTS).zip(find(
        points,
        SystemKind::Etcd,
        TARGET_CLIENTS,
    ));
    let throughput = at_target.and_then(|(s, e)| ratio(s.writes_per_second, e.writes_per_second));
    out.push(Verdict {
        target: format!(
            "{TARGET_CLIENTS} clients: steward writes/s >= {THROUGHPUT_RATIO_MIN}x etcd's"
        ),
        measured: at_target.map_or_else(
            || "not measured".to_owned(),
            |(s, e)| {
                format!(
                    "{:.0}/s vs {:.0}/s ({})",
                    s.writes_per_second,
                    e.writes_per_second,
                    show_ratio(throughput)
                )
            },
        ),
        met: throughput.map(|r| r >= THROUGHPUT_RATIO_MIN),
    });
    let pairs: Vec<(usize, &PointResult, &PointResult)> = paired_clients(points)
        .into_iter()
        .filter_map(|c| {
            Some((
                c,
                find(points, SystemKind::Steward, c)?,
                find(points, SystemKind::Etcd, c)?,
            ))
        })
        .collect();
    let p99_ratio = |(_, s, e): &&(usize, &PointResult, &PointResult)| {
        ratio(s.p99_ms, e.p99_ms).unwrap_or(f64::INFINITY)
    };
    let worst = pairs
        .iter()
        .max_by(|a, b| p99_ratio(a).total_cmp(&p99_ratio(b)));
    out.push(Verdict {
        target: "p99 latency: steward <= etcd at every client count".to_owned(),
        measured: worst.map_or_else(
            || "not measured".to_owned(),
            |(c, s, e)| {
                format!(
                    "highest ratio at {c} clients: {:.2} ms vs {:.2} ms ({}); {} client counts",
                    s.p99_ms,
                    e.p99_ms,
                    show_ratio(ratio(s.p99_ms, e.p99_ms)),
                    pairs.len()
                )
            },
        ),
        met: (!pairs.is_empty()).then(|| pairs.iter().all(|(_, s, e)| s.p99_ms <= e.p99_ms)),
    });
    out.push(failover_verdict(failovers));
    out.push(recovery_verdict(recoveries));
    out
}

fn recovery_verdict(recoveries: &[RecoveryResult]) -> Verdict {
    // The first steward case is the one without a snapshot.
    let steward = recoveries.iter().find(|r| r.system == SystemKind::Steward);
    let full = steward.filter(|r| r.events.is_some_and(|e| e >= RECOVERY_TARGET_EVENTS));
    Verdict {
        target: format!(
            "restart to ready with {RECOVERY_TARGET_EVENTS} events in the log < {RECOVERY_MS_MAX} ms"
        ),
        measured: steward.map_or_else(
            || "not measured".to_owned(),
            |r| {
                let reduced = if full.is_none() {
                    " (fewer events than the target: NOT the target's size)"
                } else {
                    ""
                };
                format!(
                    "median {} ms over {} restarts, {}{reduced}",
                    show_option(r.median_restart_ms, 0),
                    r.restart_ms.len(),
                    r.case
                )
            },
        ),
        met: full.map(|r| r.median_restart_ms.is_some_and(|ms| ms < RECOVERY_MS_MAX)),
    }
}

fn failover_verdict(failovers: &[FailoverResult]) -> Verdict {
    let of = |system| failovers.iter().find(|f| f.system == system);
    let show = |f: &FailoverResult| {
        f.median_first_write_ms.map_or_else(
            || format!("no write within {:.0} s", f.observed_seconds),
            |ms| format!("{ms:.0} ms"),
        )
    };
    let both = of(SystemKind::Steward).zip(of(SystemKind::Etcd));
    Verdict {
        target: format!(
            "leader failover, median kill -> first write: steward <= etcd and < {FAILOVER_MS_MAX} ms"
        ),
        measured: both.map_or_else(
            || "not measured".to_owned(),
            |(s, e)| {
                format!(
                    "{} vs {} (medians of {} and {} kills)",
                    show(s),
                    show(e),
                    s.trials.len(),
                    e.trials.len()
                )
            },
        ),
        met: both.map(|(s, e)| match (s.median_first_write_ms, e.median_first_write_ms) {
            (Some(s), Some(e)) => s <= e && s < FAILOVER_MS_MAX,
            // etcd never wrote again within the window: steward only has to be under the bound.
            (Some(s), None) => s < FAILOVER_MS_MAX,
            (None, _) => false,
        }),
    }
}

/// Renders the report as Markdown.
pub fn render(report: &Report) -> String {
    let mut s = String::new();
    let set = &report.setting;
    let mode = if set.quick {
        " (--quick: short points, indicative only)"
    } else {
        ""
    };
    // Writing into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(s, "# steward bench cluster{mode}\n");
    let _ = writeln!(s, "- command: `{}`", set.command);
    let _ = writeln!(s, "- machine: {}", set.machine);
    let _ = writeln!(
        s,
        "- peer: {}, JSON gateway (`/v3/kv/put`)",
        set.etcd_version
    );
    let _ = writeln!(
        s,
        "- per point: fresh 3-member cluster, {:.1} s warm-up, {:.1} s measured; {} B payload of its own per write; \
         {} ms per attempt",
        set.warmup_seconds, set.measure_seconds, set.payload_bytes, set.request_timeout_ms
    );
    let _ = writeln!(
        s,
        "- load average (1, 5, 15 min): {} at start, {} at end\n",
        set.load_average_start, set.load_average_end
    );
    render_points(&mut s, &report.points);
    render_failovers(&mut s, &report.failovers, set.failover_request_timeout_ms);
    render_recoveries(&mut s, &report.recoveries);
    let _ = writeln!(s, "\n## Targets\n");
    for v in &report.verdicts {
        let status = match v.met {
            Some(true) => "MET",
            Some(false) => "MISSED",
            None => "n/a",
        };
        let _ = writeln!(s, "- **{status}** {}: {}", v.target, v.measured);
    }
    s
}

fn render_points(s: &mut String, points: &[PointResult]) {
    if points.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Durable writes, closed loop\n");
    let _ = writeln!(
        s,
        "| clients | system | writes/s | p50 ms | p99 ms | p99.9 ms | server CPU s / 1000 writes \
         | errors | load avg |"
    );
    let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for p in points {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            p.clients,
            p.system,
            p.writes_per_second,
            p.p50_ms,
            p.p99_ms,
            p.p999_ms,
            show_option(p.server_cpu_seconds_per_1000, 3),
            p.errors,
            p.load_average
        );
    }
    let clients = paired_clients(points);
    if clients.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\nsteward / etcd (writes/s: higher is better; latency and CPU: lower is better)\n"
    );
    let _ = writeln!(
        s,
        "| clients | writes/s | p50 | p99 | p99.9 | CPU / write |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|");
    for c in clients {
        let (Some(st), Some(et)) = (
            find(points, SystemKind::Steward, c),
            find(points, SystemKind::Etcd, c),
        ) else {
            continue;
        };
        let cpu = st
            .server_cpu_seconds_per_1000
            .zip(et.server_cpu_seconds_per_1000)
            .and_then(|(a, b)| ratio(a, b));
        let _ = writeln!(
            s,
            "| {c} | {} | {} | {} | {} | {} |",
            show_ratio(ratio(st.writes_per_second, et.writes_per_second)),
            show_ratio(ratio(st.p50_ms, et.p50_ms)),
            show_ratio(ratio(st.p99_ms, et.p99_ms)),
            show_ratio(ratio(st.p999_ms, et.p999_ms)),
            show_ratio(cpu)
        );
    }
}

fn render_failovers(s: &mut String, failovers: &[FailoverResult], request_timeout_ms: u64) {
    let Some(first) = failovers.first() else {
        return;
    };
    let _ = writeln!(
        s,
        "\n## Leader failover ({} clients, SIGKILL of the leader)\n",
        first.clients
    );
    let _ = writeln!(
        s,
        "| system | kills | median kill -> new leader ms | median kill -> first write ms \
         | each kill: first write ms | median client errors | each kill: errors |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|---:|---|");
    for f in failovers {
        let each_ms: Vec<String> = f
            .trials
            .iter()
            .map(|t| show_option(t.first_write_ms, 0))
            .collect();
        let each_errors: Vec<String> = f.trials.iter().map(|t| t.errors.to_string()).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.0} | {} |",
            f.system,
            f.trials.len(),
            show_option(f.median_new_leader_ms, 0),
            show_option(f.median_first_write_ms, 0),
            each_ms.join(", "),
            f.median_errors,
            each_errors.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "\nnew leader: a survivor's status names a new leader (polled every 10 ms); first write: \
         the first write sent after the kill that succeeded (\"-\": none within {:.0} s); \
         errors: failed attempts after the kill (an error answer, a refused connection, or no \
         answer within {} ms; each client retries after 50 ms on the next member).",
        first.observed_seconds, request_timeout_ms
    );
}

fn render_recoveries(s: &mut String, recoveries: &[RecoveryResult]) {
    if recoveries.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n## Restart of a follower over a large log\n");
    let _ = writeln!(
        s,
        "| system | what the member holds | data MiB | median start -> ready ms | each ms \
         | load writes/s |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---|---:|");
    for r in recoveries {
        let each: Vec<String> = r.restart_ms.iter().map(|ms| format!("{ms:.0}")).collect();
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {} | {:.0} |",
            r.system,
            r.case,
            r.data_bytes as f64 / MIB,
            show_option(r.median_restart_ms, 0),
            each.join(", "),
            r.load_writes_per_second
        );
    }
    let _ = writeln!(
        s,
        "\nready: steward `/readyz` (leader known, everything committed applied), etcd `/health`; \
         timed from the process start after a SIGKILL."
    );
}

/// Writes `text` to `path`.
pub fn write_text(text: &str, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

/// Writes the report as pretty JSON to `path`.
pub fn write_json(report: &Report, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report).context("encode the report as JSON")?;
    write_text(&(text + "\n"), path)
}
