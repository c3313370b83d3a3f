//! `steward job bench`: a submit load generator against a running cluster. N concurrent
//! clients submit single-workflow jobs (each with its own idempotency key, so retries are safe)
//! for a fixed time; it reports throughput, latency percentiles, errors, and the longest gap
//! between two successful submits (with its wall-clock bounds, to line up with a leader kill).
//!
//! It deliberately measures only what a client sees; server-side numbers are in `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use steward_node::api::types::{SubmitJobRequest, WorkflowSpec};
use steward_node::client::{Client, Url};

use super::{emit, parse_duration_arg};
use crate::output::{Failure, OutputFormat, EXIT_ERROR};

/// `steward job bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// How long to submit.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    duration: Duration,
    /// Approximate size of each job's argument, in bytes.
    #[arg(long, default_value_t = 200)]
    payload_bytes: usize,
    /// Send to the leader first (else to the servers in the order given).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_first: bool,
}

/// What `job bench` measured.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    clients: usize,
    duration_s: f64,
    submitted: u64,
    errors: u64,
    submits_per_second: f64,
    latency_p50_ms: f64,
    latency_p90_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
    /// Longest time between two successful submits (any client).
    max_gap_ms: f64,
    /// Wall clock (ms since the epoch) at the start and end of that gap.
    max_gap_from_unix_ms: u64,
    max_gap_to_unix_ms: u64,
    first_error: Option<String>,
}

struct ClientResult {
    latencies: Histogram<u64>,
    successes: Vec<Instant>,
    errors: u64,
    first_error: Option<String>,
}

pub(super) async fn run(
    client: &Client,
    args: BenchArgs,
    format: OutputFormat,
) -> Result<i32, Failure> {
    let client = Arc::new(ordered_client(client, args.leader_first).await?);
    let started = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let deadline = started + args.duration;
    let argument = "x".repeat(args.payload_bytes.max(1));
    let mut tasks = Vec::new();
    for task in 0..args.clients.max(1) {
        let client = client.clone();
        let argument = argument.clone();
        let latencies = histogram()?;
        tasks.push(tokio::spawn(async move {
            submit_loop(&client, task, &argument, deadline, latencies).await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.map_err(|err| Failure {
            code: EXIT_ERROR,
            error: anyhow::anyhow!("bench client task failed: {err}"),
        })?);
    }
    let report = summarize(&args, results, histogram()?, started, started_unix);
    emit(format, &report, || render(&report))
}

/// The client with the leader's URL first, so throughput is measured at the leader.
async fn ordered_client(client: &Client, leader_first: bool) -> Result<Client, Failure> {
    let mut urls: Vec<Url> = client.base_urls().to_vec();
    if leader_first {
        let status = client.cluster_status().await?;
        let leader = status
            .leader_id
            .and_then(|id| status.members.iter().find(|member| member.id == id));
        if let Some(leader) = leader {
            let url = Url::parse(&format!("http://{}", leader.api_addr))
                .map_err(|err| anyhow::anyhow!("leader address: {err}"))?;
            urls.retain(|known| known != &url);
            urls.insert(0, url);
        }
    }
    Ok(Client::new(urls)?)
}

/// A latency histogram in microseconds, 1 µs to 1 h, three significant digits.
fn histogram() -> Result<Histogram<u64>, Failure> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|err| Failure {
        code: EXIT_ERROR,
        error: anyhow::anyhow!("latency histogram: {err}"),
    })
}

async fn submit_loop(
    client: &Client,
    task: usize,
    argument: &str,
    deadline: Instant,
    latencies: Histogram<u64>,
) -> ClientResult {
    let mut result = ClientResult {
        latencies,
        successes: Vec::new(),
        errors: 0,
        first_error: None,
    };
    let mut sequence = 0u64;
    let nonce: u64 = rand::random();
    while Instant::now() < deadline {
        sequence += 1;
        let request = SubmitJobRequest {
            name: Some(format!("bench-{task}-{sequence}")),
            labels: Default::default(),
            workflows: vec![WorkflowSpec {
                name: "main".to_owned(),
                command: vec!["true".to_owned(), argument.to_owned()],
                env: Default::default(),
                cores: None,
                timeout_ms: None,
                working_dir: None,
            }],
            timeout_ms: None,
            retry_budget: None,
            cancel_grace_ms: None,
        };
        let key = format!("bench-{nonce:016x}-{task}-{sequence}");
        let sent = Instant::now();
        match client.submit(&request, Some(&key)).await {
            Ok(_) => {
                let now = Instant::now();
                let micros = now.duration_since(sent).as_micros() as u64;
                // Out-of-range samples are clamped by the histogram's bounds.
                let _ = result.latencies.record(micros.max(1));
                result.successes.push(now);
            }
            Err(err) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| err.to_string());
            }
        }
    }
    result
}

fn summarize(
    args: &BenchArgs,
    results: Vec<ClientResult>,
    mut latencies: Histogram<u64>,
    started: Instant,
    started_unix: Duration,
) -> BenchReport {
    let mut successes = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for result in results {
        // Histograms with the same precision always merge.
        let _ = latencies.add(&result.latencies);
        successes.extend(result.successes);
        errors += result.errors;
        first_error = first_error.or(result.first_error);
    }
    successes.sort();
    let elapsed = started.elapsed().as_secs_f64();
    let (mut gap, mut gap_from, mut gap_to) = (Duration::ZERO, started, started);
    let mut previous = started;
    for success in &successes {
        if success.duration_since(previous) > gap {
            gap = success.duration_since(previous);
            (gap_from, gap_to) = (previous, *success);
        }
        previous = *success;
    }
    let unix_ms = |at: Instant| (started_unix + at.duration_since(started)).as_millis() as u64;
    let ms = |micros: u64| micros as f64 / 1000.0;
    BenchReport {
        clients: args.clients,
        duration_s: elapsed,
        submitted: successes.len() as u64,
        errors,
        submits_per_second: successes.len() as f64 / elapsed.max(1e-9),
        latency_p50_ms: ms(latencies.value_at_quantile(0.50)),
        latency_p90_ms: ms(latencies.value_at_quantile(0.90)),
        latency_p99_ms: ms(latencies.value_at_quantile(0.99)),
        latency_max_ms: ms(latencies.max()),
        max_gap_ms: gap.as_secs_f64() * 1000.0,
        max_gap_from_unix_ms: unix_ms(gap_from),
        max_gap_to_unix_ms: unix_ms(gap_to),
        first_error,
    }
}

fn render(report: &BenchReport) -> String {
    format!(
        "clients {}  {:.1} s  submitted {}  errors {}\n\
         throughput {:.0} submits/s  latency p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n\
         longest gap between successes {:.0} ms (unix ms {} .. {})\n{}",
        report.clients,
        report.duration_s,
        report.submitted,
        report.errors,
        report.submits_per_second,
        report.latency_p50_ms,
        report.latency_p90_ms,
        report.latency_p99_ms,
        report.latency_max_ms,
        report.max_gap_ms,
        report.max_gap_from_unix_ms,
        report.max_gap_to_unix_ms,
        report
            .first_error
            .as_ref()
            .map(|err| format!("first error: {err}\n"))
            .unwrap_or_default(),
    )
}
