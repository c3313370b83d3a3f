//! `steward job …`: submit, status, list, cancel, wait, history, against a running cluster
//! through the HTTP client.
//!
//! It deliberately holds no job logic: the server validates and decides; this module parses
//! arguments, calls the client, and prints.

mod bench;
mod render;
mod submit;

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use steward_node::api::types::{CancelJobRequest, JobStatus};
use steward_node::client::{Client, ListQuery};

use crate::output::{
    self, ConnectArgs, Failure, OutputFormat, EXIT_JOB_UNSUCCESSFUL, EXIT_OK, EXIT_WAIT_TIMEOUT,
};
pub use submit::SubmitArgs;

/// `steward job`.
#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Submit a job: `steward job submit [OPTIONS] -- CMD ARGS…` or `--file job.toml`.
    Submit(SubmitArgs),
    /// Show one job.
    Status(ReadArgs),
    /// List jobs (ascending id), optionally filtered.
    List(ListArgs),
    /// Cancel a job (idempotent).
    Cancel(CancelArgs),
    /// Wait until a job ends; exit 5 unless it completed, 7 if `--timeout` passed first.
    Wait(WaitArgs),
    /// Show a job's timeline (every event about it, oldest first).
    History(ReadArgs),
    /// Show the output tails of a job's workflows: the last 64 KiB from their workers, or the
    /// last 2 KiB replicated with each exit when a worker is gone.
    Logs(crate::worker_cmd::LogsArgs),
    /// Load generator: N concurrent clients submitting jobs; throughput and latency.
    Bench(bench::BenchArgs),
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// Job id.
    id: u64,
    /// Read the answering node's local state (may lag) instead of a linearizable read.
    #[arg(long)]
    stale: bool,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only jobs in this status (pending, running, cancelling, completed, failed, cancelled,
    /// timed_out).
    #[arg(long)]
    status: Option<String>,
    /// Only jobs with this label (`key=value`); repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Page size.
    #[arg(long)]
    limit: Option<usize>,
    /// Start after this cursor (`next_cursor` of a previous page).
    #[arg(long)]
    cursor: Option<String>,
    /// Follow cursors and print every page.
    #[arg(long)]
    all: bool,
    /// Read the answering node's local state.
    #[arg(long)]
    stale: bool,
}

#[derive(Debug, Args)]
struct CancelArgs {
    /// Job id.
    id: u64,
    /// Refuse the cancel unless the job's fence token is this one.
    #[arg(long)]
    fence_token: Option<u64>,
}

#[derive(Debug, Args)]
struct WaitArgs {
    /// Job id.
    id: u64,
    /// Give up after this long (`30s`, `10m`); default: wait forever.
    #[arg(long, value_parser = parse_duration_arg)]
    timeout: Option<Duration>,
}

/// Parses `30s`, `250ms`, `5m` for clap.
pub fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    steward_node::api::parse_duration("duration", text).map_err(|err| err.detail.message)
}

/// Runs `steward job …` and exits with its code.
pub fn run(args: JobArgs) -> anyhow::Result<()> {
    let format = args.connect.output;
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::from(anyhow::Error::from(err)))
        .and_then(|runtime| runtime.block_on(execute(args)));
    output::finish(result, format)
}

async fn execute(args: JobArgs) -> Result<i32, Failure> {
    let client = args.connect.client()?;
    let format = args.connect.output;
    match args.command {
        JobCommand::Submit(submit) => submit::run(&client, submit, format).await,
        JobCommand::Status(read) => {
            let job = client.job(read.id, read.stale).await?;
            emit(format, &job, || render::job(&job))
        }
        JobCommand::List(list) => list_jobs(&client, list, format).await,
        JobCommand::Cancel(cancel) => {
            let request = CancelJobRequest {
                fence_token: cancel.fence_token,
            };
            let answer = client.cancel(cancel.id, &request).await?;
            emit(format, &answer, || render::cancel(&answer))
        }
        JobCommand::Wait(wait) => wait_job(&client, wait, format).await,
        JobCommand::Logs(logs) => crate::worker_cmd::logs(&client, logs, format).await,
        JobCommand::Bench(bench) => bench::run(&client, bench, format).await,
        JobCommand::History(read) => {
            let events = client.events(read.id, read.stale).await?;
            emit(format, &events, || render::events(&events))
        }
    }
}

/// Prints `value` as JSON, or `text()` for people; exit code 0.
fn emit<T: serde::Serialize>(
    format: OutputFormat,
    value: &T,
    text: impl FnOnce() -> String,
) -> Result<i32, Failure> {
    match format {
        OutputFormat::Json => output::print_json(value)?,
        OutputFormat::Text => output::write_stdout(&text())?,
    }
    Ok(EXIT_OK)
}

async fn list_jobs(client: &Client, args: ListArgs, format: OutputFormat) -> Result<i32, Failure> {
    let status = match &args.status {
        None => None,
        Some(name) => Some(JobStatus::parse(name).ok_or_else(|| Failure {
            code: output::EXIT_USAGE,
            error: anyhow::anyhow!("unknown status `{name}`"),
        })?),
    };
    let mut labels = Vec::new();
    for label in &args.labels {
        let (key, value) = label.split_once('=').ok_or_else(|| Failure {
            code: output::EXIT_USAGE,
            error: anyhow::anyhow!("--label must be KEY=VALUE, got `{label}`"),
        })?;
        labels.push((key.to_owned(), value.to_owned()));
    }
    let mut query = ListQuery {
        status,
        labels,
        limit: args.limit,
        cursor: args.cursor,
        stale: args.stale,
    };
    let mut page = client.list(&query).await?;
    if args.all {
        while let Some(cursor) = page.next_cursor.take() {
            query.cursor = Some(cursor);
            let next = client.list(&query).await?;
            page.jobs.extend(next.jobs);
            page.next_cursor = next.next_cursor;
        }
    }
    emit(format, &page, || render::job_table(&page))
}

async fn wait_job(client: &Client, args: WaitArgs, format: OutputFormat) -> Result<i32, Failure> {
    // One long-poll at most this long; the server clamps longer ones anyway.
    const POLL: Duration = Duration::from_secs(60);
    let started = Instant::now();
    loop {
        let remaining = args
            .timeout
            .map_or(POLL, |timeout| timeout.saturating_sub(started.elapsed()));
        let answer = client
            .wait(args.id, remaining.clamp(Duration::from_millis(1), POLL))
            .await?;
        let out_of_time = args
            .timeout
            .is_some_and(|timeout| started.elapsed() >= timeout);
        if answer.terminal || out_of_time {
            let code = if !answer.terminal {
                EXIT_WAIT_TIMEOUT
            } else if answer.job.status == JobStatus::Completed {
                EXIT_OK
            } else {
                EXIT_JOB_UNSUCCESSFUL
            };
            emit(format, &answer, || render::job(&answer.job))?;
            return Ok(code);
        }
    }
}
