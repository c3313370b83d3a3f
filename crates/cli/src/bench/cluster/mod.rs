//! `steward bench cluster`: a 3-node steward cluster and a 3-member etcd cluster, started by the
//! benchmark on loopback one after the other, driven by one closed-loop load generator
//! (`crate::load`) with durable 256 B writes; throughput, latency and server CPU per point.
//!
//! Layout: `process` owns member processes, `steward` and `etcd` know each system's command
//! line and routes, `system` is a running cluster and its write operation, `throughput`
//! measures one point, `failover` kills leaders under load, `recovery` restarts a member over
//! a large log, `report` renders. See ADR 0011 for the design (peer, API, CPU
//! accounting). It installs nothing: etcd comes from `scripts/install-bench-deps.sh`.

mod etcd;
mod failover;
mod process;
mod recovery;
mod report;
mod steward;
mod system;
mod throughput;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};

pub use super::machine::load_average;
use super::machine::{default_parent, describe, prepare_parent};
use crate::job_cmd::parse_duration_arg;
use failover::FailoverPlan;
use recovery::RecoveryPlan;
use report::{Report, Setting};
use system::Programs;
pub use system::SystemKind;
use throughput::PointPlan;

/// Client counts measured by default.
pub const CLIENTS_DEFAULT: [usize; 4] = [1, 16, 64, 256];
/// Bytes of payload per write.
pub const PAYLOAD_BYTES: usize = 256;
/// Full run: warm-up per point.
const WARMUP_FULL: Duration = Duration::from_secs(5);
/// Full run: measured time per point.
const MEASURE_FULL: Duration = Duration::from_secs(20);
/// `--quick`: warm-up per point.
const WARMUP_QUICK: Duration = Duration::from_millis(500);
/// `--quick`: measured time per point.
const MEASURE_QUICK: Duration = Duration::from_millis(1500);
/// Full run: leader kills per system (the median is reported).
const KILLS_FULL: usize = 5;
/// `--quick`: leader kills per system.
const KILLS_QUICK: usize = 1;
/// Load before each kill.
const BEFORE_KILL: Duration = Duration::from_secs(2);
/// `--quick`: load before each kill.
const BEFORE_KILL_QUICK: Duration = Duration::from_secs(1);
/// Load after each kill: the longest failover the report can show.
const AFTER_KILL: Duration = Duration::from_secs(8);
/// `--quick`: load after each kill.
const AFTER_KILL_QUICK: Duration = Duration::from_secs(6);
/// Full run: events in steward's log for the restart (the target's 1 M).
const RECOVERY_EVENTS: u64 = 1_000_000;
/// Full run: events after the snapshot in the second restart case.
const RECOVERY_TAIL_EVENTS: u64 = 100_000;
/// `--quick`: events in steward's log for the restart (reported as reduced).
const RECOVERY_EVENTS_QUICK: u64 = 4_000;
/// `--quick`: events after the snapshot.
const RECOVERY_TAIL_EVENTS_QUICK: u64 = 1_000;
/// Full run: restarts per case.
const RESTARTS: usize = 3;
/// `--quick`: restarts per case.
const RESTARTS_QUICK: usize = 1;

/// The parts of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Writes/s, latency and CPU at each client count.
    Throughput,
    /// SIGKILL of the leader under 64 clients: time to the first write, client errors.
    Failover,
    /// A follower restarted over a large log (steward: 1 M events; and a snapshot + 100 k):
    /// time to ready.
    Recovery,
}

/// Options of `steward bench cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// About a minute in all: 0.5 s warm-up + 1.5 s measured per point, one leader kill per
    /// system, restarts over 4 000 events. The figures are indicative only.
    #[arg(long)]
    pub quick: bool,
    /// Concurrent clients per point, comma-separated. Default: 1,16,64,256.
    #[arg(long, value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// Warm-up per point (not measured). Default: 5s (--quick: 500ms).
    #[arg(long, value_parser = parse_duration_arg)]
    pub warmup: Option<Duration>,
    /// Measured time per point. Default: 20s (--quick: 1500ms).
    #[arg(long, value_parser = parse_duration_arg)]
    pub measure: Option<Duration>,
    /// Measure only these systems (comma-separated). Default: both.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub systems: Vec<SystemKind>,
    /// Run only these parts (comma-separated). Default: all.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub parts: Vec<Part>,
    /// Leader kills per system. Default: 5 (--quick: 1).
    #[arg(long)]
    pub kills: Option<usize>,
    /// Events in steward's log for the restart (etcd gets one key per steward submit, i.e.
    /// half as many). Default: 1000000 (--quick: 4000).
    #[arg(long)]
    pub recovery_events: Option<u64>,
    /// Deadline of each write attempt in the throughput points and loads, the same for both
    /// systems; a write that misses it is an error and is retried.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub request_timeout: Duration,
    /// Deadline of each write attempt during a failover (both systems). A request stuck on a
    /// member that lost its leader is abandoned and retried after this long.
    #[arg(long, default_value = "2s", value_parser = parse_duration_arg)]
    pub failover_request_timeout: Duration,
    /// The etcd binary (3.4, from `scripts/install-bench-deps.sh`).
    #[arg(long, default_value = "etcd")]
    pub etcd: PathBuf,
    /// Keep the clusters' data under a fresh directory in DIR. Default: the system temporary
    /// directory when it is on the same file system as the working directory, else the
    /// working directory. tmpfs is refused.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write the Markdown report (what is printed) to FILE.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Log filter of the steward members, e.g. `info` to see every `snapshot built` line. Each
    /// member logs to `output.log` in its directory; with this option the run directory is
    /// kept (its path is printed on stderr). Default: `warn`, and the run directory removed.
    #[arg(long, value_name = "FILTER")]
    pub node_log: Option<String>,
}

/// Runs `steward bench cluster` and prints its report on stdout.
pub fn run(args: &ClusterArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &ClusterArgs) -> anyhow::Result<()> {
    let systems: Vec<SystemKind> = SystemKind::ALL
        .into_iter()
        .filter(|s| args.systems.is_empty() || args.systems.contains(s))
        .collect();
    let clients = if args.clients.is_empty() {
        CLIENTS_DEFAULT.to_vec()
    } else {
        args.clients.clone()
    };
    if clients.contains(&0) {
        bail!("--clients: every count must be at least 1");
    }
    let with_etcd = systems.contains(&SystemKind::Etcd);
    let programs = Programs {
        steward: std::env::current_exe().context("find the running steward binary")?,
        etcd: if with_etcd {
            find_program(&args.etcd)?
        } else {
            args.etcd.clone()
        },
        steward_log_level: args.node_log.clone(),
    };
    let etcd_version = if with_etcd {
        version_of(&programs.etcd)?
    } else {
        "etcd (not run)".to_owned()
    };
    let plan = PointPlan {
        warmup: args.warmup.unwrap_or(if args.quick {
            WARMUP_QUICK
        } else {
            WARMUP_FULL
        }),
        measure: args.measure.unwrap_or(if args.quick {
            MEASURE_QUICK
        } else {
            MEASURE_FULL
        }),
        request_timeout: args.request_timeout,
    };
    let parent = match &args.dir {
        Some(dir) => dir.clone(),
        None => default_parent()?,
    };
    prepare_parent(&parent)?;
    let run_dir = tempfile::Builder::new()
        .prefix("steward-bench-cluster-")
        .tempdir_in(&parent)
        .with_context(|| format!("create a run directory under {}", parent.display()))?;
    let load_average_start = load_average();
    let runs = |part: Part| args.parts.is_empty() || args.parts.contains(&part);
    let mut points = Vec::new();
    let counts = if runs(Part::Throughput) {
        clients.as_slice()
    } else {
        &[]
    };
    for &count in counts {
        for &system in &systems {
            let root = run_dir.path().join(format!("{system}-{count}-clients"));
            let point = throughput::measure(system, count, &root, &programs, plan)
                .await
                .with_context(|| format!("{system}, {count} clients"))?;
            eprintln!(
                "{system:>7} {count:>4} clients: {:>8.0} writes/s  p50 {:.2} ms  p99 {:.2} ms  \
                 errors {}  load {}",
                point.writes_per_second,
                point.p50_ms,
                point.p99_ms,
                point.errors,
                point.load_average
            );
            points.push(point);
        }
    }
    let mut failovers = Vec::new();
    if runs(Part::Failover) {
        let plan = FailoverPlan {
            kills: args
                .kills
                .unwrap_or(if args.quick { KILLS_QUICK } else { KILLS_FULL }),
            before: if args.quick {
                BEFORE_KILL_QUICK
            } else {
                BEFORE_KILL
            },
            after: if args.quick {
                AFTER_KILL_QUICK
            } else {
                AFTER_KILL
            },
            request_timeout: args.failover_request_timeout,
        };
        for &system in &systems {
            let root = run_dir.path().join(format!("{system}-failover"));
            let result = failover::measure(system, &root, &programs, plan)
                .await
                .with_context(|| format!("{system}, failover"))?;
            failovers.push(result);
        }
    }
    let mut recoveries = Vec::new();
    if runs(Part::Recovery) {
        let plan = RecoveryPlan {
            events: args.recovery_events.unwrap_or(if args.quick {
                RECOVERY_EVENTS_QUICK
            } else {
                RECOVERY_EVENTS
            }),
            tail_events: if args.quick {
                RECOVERY_TAIL_EVENTS_QUICK
            } else {
                RECOVERY_TAIL_EVENTS
            },
            restarts: if args.quick { RESTARTS_QUICK } else { RESTARTS },
            request_timeout: args.request_timeout,
        };
        for &system in &systems {
            let root = run_dir.path().join(format!("{system}-recovery"));
            let results = recovery::measure(system, &root, &programs, plan)
                .await
                .with_context(|| format!("{system}, recovery"))?;
            recoveries.extend(results);
        }
    }
    let report = Report {
        setting: Setting {
            command: command_line(),
            quick: args.quick,
            machine: describe(),
            etcd_version,
            dir: run_dir.path().display().to_string(),
            warmup_seconds: plan.warmup.as_secs_f64(),
            measure_seconds: plan.measure.as_secs_f64(),
            request_timeout_ms: millis(plan.request_timeout),
            failover_request_timeout_ms: millis(args.failover_request_timeout),
            payload_bytes: PAYLOAD_BYTES,
            load_average_start,
            load_average_end: load_average(),
        },
        verdicts: report::verdicts(&points, &failovers, &recoveries),
        points,
        failovers,
        recoveries,
    };
    let text = report::render(&report);
    print!("{text}");
    if let Some(path) = &args.markdown {
        report::write_text(&text, path)?;
    }
    if let Some(path) = &args.json {
        report::write_json(&report, path)?;
    }
    if args.node_log.is_some() {
        let kept = run_dir.keep();
        eprintln!("member logs kept under {}", kept.display());
        return Ok(());
    }
    run_dir
        .close()
        .context("remove the benchmark's run directory")
}

/// A tag that makes keys unique across runs (a fresh cluster would not need it, a reused
/// `--dir` might).
fn run_tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// `program` itself if it names a path, else the first match on the PATH.
fn find_program(program: &Path) -> anyhow::Result<PathBuf> {
    if program.components().count() > 1 {
        return Ok(program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "`{}` is not on the PATH: install etcd with ./scripts/install-bench-deps.sh \
                 or pass --etcd PATH",
                program.display()
            )
        })
}

/// The first line of `program --version`.
fn version_of(program: &Path) -> anyhow::Result<String> {
    let output = std::process::Command::new(program)
        .arg("--version")
        .output()
        .with_context(|| format!("run {} --version", program.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().next().unwrap_or("unknown version").to_owned())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// This process's command line, for the report.
fn command_line() -> String {
    std::env::args_os()
        .enumerate()
        .map(|(index, arg)| {
            if index == 0 {
                Path::new(&arg)
                    .file_name()
                    .unwrap_or(OsStr::new("steward"))
                    .to_string_lossy()
                    .into_owned()
            } else {
                arg.to_string_lossy().into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
