//! Runs one benchmark point: N appender threads hammering one `Target` for a bounded time.
//!
//! Each thread appends back to back; the first `warmup` of wall time is discarded, then every
//! append that starts inside the measurement window is timed into that thread's histogram. A
//! thread stops at the deadline (once it has measured at least one append) or after its share
//! of `records_max`, whichever comes first, or as soon as any thread fails. It does not open or delete targets: the caller does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;

use super::cpu::own_cpu_time;
use super::target::Target;

/// Highest latency the histograms can hold, in nanoseconds (60 s). Default: 60 s.
const LATENCY_NS_MAX: u64 = 60_000_000_000;
/// Significant decimal digits kept by the latency histograms (0.1 % resolution).
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// How long and how much one point runs.
#[derive(Clone, Copy, Debug)]
pub struct PointLimits {
    /// Appends during this first interval are not measured.
    pub warmup: Duration,
    /// Length of the measurement window after the warm-up.
    pub measure: Duration,
    /// Upper bound on measured appends over all threads, so a very fast target still stops.
    pub records_max: u64,
}

/// What one point measured.
#[derive(Debug)]
pub struct PointMeasurement {
    /// Appends that started inside the measurement window and completed.
    pub records: u64,
    /// From the start of the window to the end of the last measured append.
    pub elapsed: Duration,
    /// Append latency of every measured append, in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// Appends made, warm-up included.
    pub appends_total: u64,
    /// CPU time (user + system) the whole process used meanwhile, warm-up included; `None`
    /// where `/proc/self/stat` cannot be read.
    pub cpu: Option<Duration>,
}

impl PointMeasurement {
    /// Adds another slice of the same point: records and time add up, histograms merge.
    pub fn merge(&mut self, other: PointMeasurement) -> anyhow::Result<()> {
        self.records += other.records;
        self.elapsed += other.elapsed;
        self.appends_total += other.appends_total;
        self.cpu = self.cpu.zip(other.cpu).map(|(a, b)| a + b);
        self.latency_ns
            .add(&other.latency_ns)
            .context("merge latency histograms")
    }
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .context("create latency histogram")
}

/// Runs `appenders` threads appending `payload` to `target` within `limits`.
pub fn run_point(
    target: &dyn Target,
    appenders: usize,
    payload: &Bytes,
    limits: PointLimits,
) -> anyhow::Result<PointMeasurement> {
    let appenders = appenders.max(1);
    let per_thread_max = (limits.records_max / appenders as u64).max(1);
    let failed = AtomicBool::new(false);
    let cpu_before = own_cpu_time();
    // Everyone, the coordinator included, starts the clock together.
    let start = Barrier::new(appenders + 1);
    let results = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(appenders);
        for appender in 0..appenders {
            let (failed, start) = (&failed, &start);
            handles.push(scope.spawn(move || {
                start.wait();
                let window_start = Instant::now() + limits.warmup;
                let deadline = window_start + limits.measure;
                let result = append_loop(
                    target,
                    appender,
                    payload,
                    window_start,
                    deadline,
                    per_thread_max,
                    failed,
                );
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                result.map(|thread| (thread, window_start))
            }));
        }
        start.wait();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("an appender thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let mut latency_ns = new_histogram()?;
    let cpu = own_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let mut records = 0;
    let mut appends_total = 0;
    let mut elapsed = Duration::ZERO;
    for (thread, window_start) in results {
        latency_ns
            .add(&thread.latency_ns)
            .context("merge latency histograms")?;
        records += thread.records;
        appends_total += thread.appends_total;
        if let Some(last_end) = thread.last_end {
            elapsed = elapsed.max(last_end.saturating_duration_since(window_start));
        }
    }
    Ok(PointMeasurement {
        records,
        elapsed,
        latency_ns,
        appends_total,
        cpu,
    })
}

/// One thread's share of a point.
struct ThreadMeasurement {
    records: u64,
    appends_total: u64,
    last_end: Option<Instant>,
    latency_ns: Histogram<u64>,
}

fn append_loop(
    target: &dyn Target,
    appender: usize,
    payload: &Bytes,
    window_start: Instant,
    deadline: Instant,
    records_max: u64,
    failed: &AtomicBool,
) -> anyhow::Result<ThreadMeasurement> {
    let mut measured = ThreadMeasurement {
        records: 0,
        appends_total: 0,
        last_end: None,
        latency_ns: new_histogram()?,
    };
    let mut seq = 0u64;
    // Bounded: once inside the window every iteration counts towards `records_max`, and the
    // loop ends at the first measured append that finishes past the deadline; the warm-up part
    // is bounded by the window start.
    while measured.records < records_max && !failed.load(Ordering::Relaxed) {
        seq += 1;
        let began = Instant::now();
        target.append(appender, seq, payload)?;
        let ended = Instant::now();
        measured.appends_total += 1;
        if began >= window_start {
            let nanos = u64::try_from(ended.duration_since(began).as_nanos()).unwrap_or(u64::MAX);
            measured.latency_ns.saturating_record(nanos.max(1));
            measured.records += 1;
            measured.last_end = Some(ended);
        }
        // Every thread measures at least one append, so a point whose single append outlasts
        // the whole window still reports a latency; that costs at most one extra append.
        if ended >= deadline && measured.records > 0 {
            break;
        }
    }
    Ok(measured)
}
