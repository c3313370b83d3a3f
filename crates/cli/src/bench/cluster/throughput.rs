//! Throughput and latency points: one system, one client count, a fresh cluster, a closed-loop
//! load for a warm-up and a measured window, and the servers' CPU time over that window.
//!
//! Each point starts its own cluster in its own directory and deletes it after, so every point
//! of both systems starts from the same empty state, and the systems take turns point by point
//! so that a slow drift in the machine's load hits both alike.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use super::system::{Cluster, Programs, SystemKind};
use super::{load_average, run_tag};
use crate::bench::cpu::own_cpu_time;
use crate::load::{self, Schedule};

/// Pause before a client retries a failed write (both systems). Default: 50 ms, the steward
/// client's first backoff: short against an election, long enough not to spin on a refused
/// connection.
pub const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Lead time between building the clients and their start, so all start together.
const START_LEAD: Duration = Duration::from_millis(20);
/// A client that has no measured write by the window end keeps going for up to this long, so a
/// point still reports a latency when every write outlasts the window (a debug build on a busy
/// machine in `--quick`). Default: 10 s.
const OVERTIME: Duration = Duration::from_secs(10);

/// How every point is run.
#[derive(Clone, Copy, Debug)]
pub struct PointPlan {
    /// Not measured.
    pub warmup: Duration,
    /// Measured.
    pub measure: Duration,
    /// Deadline of each write attempt.
    pub request_timeout: Duration,
}

/// What one point measured.
#[derive(Clone, Debug, Serialize)]
pub struct PointResult {
    /// Which system.
    pub system: SystemKind,
    /// Concurrent clients, each with one write in flight.
    pub clients: usize,
    /// Writes started in the measured window that succeeded.
    pub writes: u64,
    /// From the window's start to the end of its last write.
    pub elapsed_seconds: f64,
    /// Acknowledged durable writes per second.
    pub writes_per_second: f64,
    /// Latency percentiles, first attempt to success, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest measured write.
    pub max_ms: f64,
    /// CPU time (user + system) of the three server processes over the window, in seconds per
    /// 1,000 writes; `None` if `/proc` could not be read.
    pub server_cpu_seconds_per_1000: Option<f64>,
    /// The same for the load generator (this process), which drives both systems alike.
    pub generator_cpu_seconds_per_1000: Option<f64>,
    /// Failed attempts (each retried), warm-up included.
    pub errors: u64,
    /// The first error message, if any.
    pub first_error: Option<String>,
    /// `/proc/loadavg` (1, 5, 15 min) at the end of the point.
    pub load_average: String,
}

/// Starts a fresh `kind` cluster under `root`, measures one point against its leader, stops
/// the cluster and deletes `root`.
pub async fn measure(
    kind: SystemKind,
    clients: usize,
    root: &Path,
    programs: &Programs,
    plan: PointPlan,
) -> anyhow::Result<PointResult> {
    let mut cluster = Cluster::start(kind, root, programs, None).await?;
    let leader = cluster.leader().await?;
    cluster.prime(leader, plan.request_timeout).await?;
    let operation = cluster.write_operation(leader, clients, run_tag(), plan.request_timeout)?;
    let schedule = Schedule {
        clients,
        start: Instant::now() + START_LEAD,
        warmup: plan.warmup,
        measure: plan.measure,
        retry_pause: RETRY_PAUSE,
        overtime: OVERTIME,
        operations_max: None,
    };
    let running = tokio::spawn(load::run(Arc::new(operation), schedule));
    tokio::time::sleep_until(schedule.window_start().into()).await;
    let before = (cluster.cpu_time(), own_cpu_time());
    let outcome = running.await.context("the load task failed")??;
    let after = (cluster.cpu_time(), own_cpu_time());
    drop(cluster);
    programs.discard(root)?;
    let per_1000 = |before: Option<Duration>, after: Option<Duration>| {
        let used = after?.checked_sub(before?)?;
        (outcome.measured > 0).then(|| used.as_secs_f64() * 1000.0 / outcome.measured as f64)
    };
    Ok(PointResult {
        system: kind,
        clients,
        writes: outcome.measured,
        elapsed_seconds: outcome.elapsed.as_secs_f64(),
        writes_per_second: outcome.per_second(),
        p50_ms: outcome.latency_ms(0.50),
        p99_ms: outcome.latency_ms(0.99),
        p999_ms: outcome.latency_ms(0.999),
        max_ms: outcome.latency_micros.max() as f64 / 1000.0,
        server_cpu_seconds_per_1000: per_1000(before.0, after.0),
        generator_cpu_seconds_per_1000: per_1000(before.1, after.1),
        errors: outcome.errors.len() as u64,
        first_error: outcome.first_error,
        load_average: load_average(),
    })
}
