//! `steward job bench`: a submit load generator against a running cluster. N concurrent
//! clients submit single-workflow jobs (each with its own idempotency key, so retries are safe)
//! for a fixed time; it reports throughput, latency percentiles, errors, and the longest gap
//! between two successful submits (with its wall-clock bounds, to line up with a leader kill).
//!
//! It deliberately measures only what a client sees; server-side numbers are in `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde::Serialize;
use steward_node::api::types::{SubmitJobRequest, WorkflowSpec};
use steward_node::client::{Client, Url};

use super::{emit, parse_duration_arg};
use crate::load::{self, Operation, Outcome, Schedule};
use crate::output::{Failure, OutputFormat};

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

/// One submit of `steward job bench`: a single-workflow job with its own idempotency key, sent
/// through the CLI's client (which fails over between the servers and retries `503`s itself).
struct SubmitOperation {
    client: Client,
    argument: String,
    nonce: u64,
}

impl Operation for SubmitOperation {
    async fn attempt(&self, task: usize, sequence: u64) -> Result<(), String> {
        let request = SubmitJobRequest {
            name: Some(format!("bench-{task}-{sequence}")),
            labels: Default::default(),
            workflows: vec![WorkflowSpec {
                name: "main".to_owned(),
                command: vec!["true".to_owned(), self.argument.clone()],
                env: Default::default(),
                cores: None,
                timeout_ms: None,
                working_dir: None,
            }],
            timeout_ms: None,
            retry_budget: None,
            cancel_grace_ms: None,
        };
        let key = format!("bench-{:016x}-{task}-{sequence}", self.nonce);
        match self.client.submit(&request, Some(&key)).await {
            Ok(_) => Ok(()),
            Err(err) => Err(err.to_string()),
        }
    }
}

pub(super) async fn run(
    client: &Client,
    args: BenchArgs,
    format: OutputFormat,
) -> Result<i32, Failure> {
    let operation = Arc::new(SubmitOperation {
        client: ordered_client(client, args.leader_first).await?,
        argument: "x".repeat(args.payload_bytes.max(1)),
        nonce: rand::random(),
    });
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let schedule = Schedule {
        clients: args.clients.max(1),
        start: Instant::now(),
        warmup: Duration::ZERO,
        measure: args.duration,
        retry_pause: Duration::ZERO,
        overtime: Duration::ZERO,
        operations_max: None,
    };
    let outcome = load::run(operation, schedule).await?;
    let report = summarize(&args, &outcome, schedule.start, started_unix);
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

fn summarize(
    args: &BenchArgs,
    outcome: &Outcome,
    started: Instant,
    started_unix: Duration,
) -> BenchReport {
    let elapsed = started.elapsed().as_secs_f64();
    let (mut gap, mut gap_from, mut gap_to) = (Duration::ZERO, started, started);
    let mut previous = started;
    for success in &outcome.successes {
        if success.ended.duration_since(previous) > gap {
            gap = success.ended.duration_since(previous);
            (gap_from, gap_to) = (previous, success.ended);
        }
        previous = success.ended;
    }
    let unix_ms = |at: Instant| (started_unix + at.duration_since(started)).as_millis() as u64;
    let submitted = outcome.successes.len() as u64;
    BenchReport {
        clients: args.clients,
        duration_s: elapsed,
        submitted,
        errors: outcome.errors.len() as u64,
        submits_per_second: submitted as f64 / elapsed.max(1e-9),
        latency_p50_ms: outcome.latency_ms(0.50),
        latency_p90_ms: outcome.latency_ms(0.90),
        latency_p99_ms: outcome.latency_ms(0.99),
        latency_max_ms: outcome.latency_micros.max() as f64 / 1000.0,
        max_gap_ms: gap.as_secs_f64() * 1000.0,
        max_gap_from_unix_ms: unix_ms(gap_from),
        max_gap_to_unix_ms: unix_ms(gap_to),
        first_error: outcome.first_error.clone(),
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
