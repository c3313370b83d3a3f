//! The closed-loop load generator shared by `steward job bench` and `steward bench cluster`:
//! N clients, each with exactly one operation in flight, for a bounded time.
//!
//! A client retries a failed attempt of the same operation (after a short pause) until it
//! succeeds or the run ends, so an operation's latency runs from its first attempt to its
//! success and every failed attempt counts as one client error. Operations must therefore be
//! safe to resend (a submit with its idempotency key, a PUT of the same key and value). Every
//! success and every error is kept with its time, so a caller can line them up with an event
//! such as a leader kill. It deliberately knows nothing of HTTP or of the system under load:
//! an [`Operation`] performs one attempt.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;

/// Highest latency the histograms hold, in microseconds (1 h); longer ones are clamped.
const LATENCY_MICROS_MAX: u64 = 3_600_000_000;
/// Significant decimal digits kept by the latency histograms (0.1 % resolution).
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// One kind of write, performed one attempt at a time.
pub trait Operation: Send + Sync + 'static {
    /// Makes one attempt at operation `sequence` (1, 2, …) of client `client`. A retry of the
    /// same operation calls this again with the same arguments. The error is a one-line
    /// description for the report.
    fn attempt(
        &self,
        client: usize,
        sequence: u64,
    ) -> impl Future<Output = Result<(), String>> + Send;

    /// Called after client `client`'s attempt failed, before it retries (for example to move
    /// that client to another server). Default: nothing.
    fn failed(&self, client: usize) {
        let _ = client;
    }
}

/// How long and how hard a run drives its operation.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Concurrent clients, each with one operation in flight.
    pub clients: usize,
    /// When the clients start.
    pub start: Instant,
    /// Operations started before `start + warmup` are made but not measured.
    pub warmup: Duration,
    /// Length of the measurement window after the warm-up; no operation starts after it,
    /// except within `overtime`.
    pub measure: Duration,
    /// A client that has measured no operation by the window end keeps going (new operations
    /// and retries) for up to this much longer, so that a point whose operations all outlast
    /// the window still reports a latency instead of nothing. Zero: stop at the window end.
    pub overtime: Duration,
    /// Pause after a failed attempt before the retry.
    pub retry_pause: Duration,
    /// Stop once this many operations succeeded in all (warm-up included); `None`: no bound
    /// but time.
    pub operations_max: Option<u64>,
}

impl Schedule {
    /// Start of the measurement window.
    pub fn window_start(&self) -> Instant {
        self.start + self.warmup
    }

    /// End of the measurement window: no operation starts at or after it (see `overtime`).
    pub fn window_end(&self) -> Instant {
        self.window_start() + self.measure
    }
}

/// One successful attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Success {
    /// When it ended (the answer arrived); sorts successes by completion.
    pub ended: Instant,
    /// When this attempt (not the operation's first one) was sent.
    pub attempt_started: Instant,
}

/// What a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Latency in microseconds, first attempt to success, of every operation started at or
    /// after the window start that succeeded.
    pub latency_micros: Histogram<u64>,
    /// Operations started at or after the window start that succeeded.
    pub measured: u64,
    /// From the window start to the end of the last measured operation.
    pub elapsed: Duration,
    /// Every success, warm-up included, sorted by completion.
    pub successes: Vec<Success>,
    /// When each failed attempt ended, sorted.
    pub errors: Vec<Instant>,
    /// The first error message any client saw.
    pub first_error: Option<String>,
}

impl Outcome {
    /// Measured operations per second.
    pub fn per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.measured as f64 / seconds
        } else {
            0.0
        }
    }

    /// The latency at `quantile`, in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency_micros.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// A latency histogram in microseconds (1 µs to 1 h, three significant digits).
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .context("create a latency histogram")
}

/// Runs `schedule.clients` clients of `operation` and collects what they measured. Bounded:
/// no attempt starts after the window end plus `overtime`, and each attempt is bounded by the
/// operation's own timeout.
pub async fn run<O: Operation>(operation: Arc<O>, schedule: Schedule) -> anyhow::Result<Outcome> {
    let succeeded = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(schedule.clients.max(1));
    for client in 0..schedule.clients.max(1) {
        let (operation, succeeded) = (operation.clone(), succeeded.clone());
        let latencies = histogram()?;
        tasks.push(tokio::spawn(async move {
            client_loop(&*operation, client, schedule, &succeeded, latencies).await
        }));
    }
    let mut outcome = Outcome {
        latency_micros: histogram()?,
        measured: 0,
        elapsed: Duration::ZERO,
        successes: Vec::new(),
        errors: Vec::new(),
        first_error: None,
    };
    let window_start = schedule.window_start();
    for task in tasks {
        let trace = task.await.context("a load client task failed")?;
        outcome
            .latency_micros
            .add(&trace.latencies)
            .context("merge latency histograms")?;
        outcome.measured += trace.measured;
        if let Some(last) = trace.last_measured_end {
            outcome.elapsed = outcome
                .elapsed
                .max(last.saturating_duration_since(window_start));
        }
        outcome.successes.extend(trace.successes);
        outcome.errors.extend(trace.errors);
        outcome.first_error = outcome.first_error.or(trace.first_error);
    }
    outcome.successes.sort_unstable();
    outcome.errors.sort_unstable();
    Ok(outcome)
}

/// One client's share of a run.
struct Trace {
    latencies: Histogram<u64>,
    measured: u64,
    last_measured_end: Option<Instant>,
    successes: Vec<Success>,
    errors: Vec<Instant>,
    first_error: Option<String>,
}

async fn client_loop<O: Operation>(
    operation: &O,
    client: usize,
    schedule: Schedule,
    succeeded: &AtomicU64,
    latencies: Histogram<u64>,
) -> Trace {
    let mut trace = Trace {
        latencies,
        measured: 0,
        last_measured_end: None,
        successes: Vec::new(),
        errors: Vec::new(),
        first_error: None,
    };
    tokio::time::sleep_until(schedule.start.into()).await;
    let (window_start, window_end) = (schedule.window_start(), schedule.window_end());
    let reached_max = || {
        schedule
            .operations_max
            .is_some_and(|max| succeeded.load(Ordering::Relaxed) >= max)
    };
    let end = |measured: u64| {
        if measured == 0 {
            window_end + schedule.overtime
        } else {
            window_end
        }
    };
    let mut sequence = 0u64;
    // Bounded: every iteration starts before the window end (plus overtime), and so does every
    // retry.
    while Instant::now() < end(trace.measured) && !reached_max() {
        sequence += 1;
        let first_attempt = Instant::now();
        loop {
            let attempt_started = Instant::now();
            match operation.attempt(client, sequence).await {
                Ok(()) => {
                    let ended = Instant::now();
                    succeeded.fetch_add(1, Ordering::Relaxed);
                    trace.successes.push(Success {
                        ended,
                        attempt_started,
                    });
                    if first_attempt >= window_start {
                        let micros = ended.duration_since(first_attempt).as_micros();
                        trace
                            .latencies
                            .saturating_record(u64::try_from(micros).unwrap_or(u64::MAX).max(1));
                        trace.measured += 1;
                        trace.last_measured_end = Some(ended);
                    }
                    break;
                }
                Err(error) => {
                    trace.errors.push(Instant::now());
                    trace.first_error.get_or_insert(error);
                    operation.failed(client);
                    if Instant::now() + schedule.retry_pause >= end(trace.measured) {
                        return trace;
                    }
                    tokio::time::sleep(schedule.retry_pause).await;
                }
            }
        }
    }
    trace
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Fails the first attempt of every third operation, and records every call.
    #[derive(Default)]
    struct Flaky {
        calls: Mutex<Vec<(usize, u64)>>,
        failed: AtomicU64,
    }

    impl Operation for Flaky {
        async fn attempt(&self, client: usize, sequence: u64) -> Result<(), String> {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let mut calls = self.calls.lock().map_err(|_| "poisoned".to_owned())?;
            let first = !calls.contains(&(client, sequence));
            calls.push((client, sequence));
            if first && sequence % 3 == 0 {
                Err(format!("client {client} op {sequence} refused"))
            } else {
                Ok(())
            }
        }

        fn failed(&self, _client: usize) {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn schedule(clients: usize, operations_max: Option<u64>) -> Schedule {
        Schedule {
            clients,
            start: Instant::now(),
            warmup: Duration::from_millis(20),
            measure: Duration::from_millis(150),
            retry_pause: Duration::from_millis(1),
            overtime: Duration::ZERO,
            operations_max,
        }
    }

    #[tokio::test]
    async fn failed_attempts_are_retried_counted_and_measured_once() {
        let operation = Arc::new(Flaky::default());
        let plan = schedule(4, None);
        let outcome = run(operation.clone(), plan).await.unwrap();
        let calls = operation.calls.lock().unwrap().clone();
        assert!(outcome.measured > 0);
        assert_eq!(outcome.latency_micros.len(), outcome.measured);
        assert!(outcome.measured <= outcome.successes.len() as u64);
        assert_eq!(
            outcome.successes.len() + outcome.errors.len(),
            calls.len(),
            "every attempt is either a success or an error"
        );
        assert_eq!(
            outcome.errors.len() as u64,
            operation.failed.load(Ordering::Relaxed)
        );
        assert!(!outcome.errors.is_empty());
        assert!(outcome.first_error.as_ref().unwrap().contains("refused"));
        // Each refused operation was retried with the same sequence number and then succeeded.
        for (client, sequence) in calls.iter().filter(|(_, s)| s % 3 == 0) {
            let attempts = calls.iter().filter(|c| *c == &(*client, *sequence)).count();
            assert!(
                attempts <= 2,
                "op {sequence} of client {client}: {attempts}"
            );
        }
        assert!(outcome
            .successes
            .windows(2)
            .all(|w| w[0].ended <= w[1].ended));
        assert!(outcome.elapsed <= plan.measure + Duration::from_millis(200));
        assert!(outcome.latency_ms(0.5) > 0.0);
    }

    /// Takes longer than any window the test gives it.
    struct Slow;

    impl Operation for Slow {
        async fn attempt(&self, _client: usize, _sequence: u64) -> Result<(), String> {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn overtime_lets_every_client_measure_one_operation() {
        let mut plan = schedule(3, None);
        plan.warmup = Duration::from_millis(45);
        plan.measure = Duration::from_millis(1);
        let without = run(Arc::new(Slow), plan).await.unwrap();
        assert_eq!(
            without.measured, 0,
            "the window closed before a second operation"
        );
        plan.start = Instant::now();
        plan.overtime = Duration::from_secs(5);
        let with = run(Arc::new(Slow), plan).await.unwrap();
        assert_eq!(with.measured, 3, "one operation per client, then stop");
        assert!(with.elapsed < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_run_stops_after_operations_max() {
        let operation = Arc::new(Flaky::default());
        let mut plan = schedule(2, Some(5));
        plan.measure = Duration::from_secs(60);
        let outcome = run(operation, plan).await.unwrap();
        // Each client finishes the operation it is in when the bound is reached.
        let done = outcome.successes.len();
        assert!((5..=6).contains(&done), "{done} successes");
    }
}
