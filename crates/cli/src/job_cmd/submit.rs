//! `steward job submit`: one command (`-- CMD ARGS…`) or a multi-workflow job file (TOML, the
//! API's submit body), with an idempotency key so that retries never start a second job.
//!
//! It deliberately does not validate beyond parsing: the server names every bad field.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use rand::Rng as _;
use steward_node::api::types::{SubmitJobRequest, WorkflowSpec};
use steward_node::client::Client;

use super::{emit, parse_duration_arg, render};
use crate::output::{Failure, OutputFormat, EXIT_USAGE};

/// Name of the workflow created from `-- CMD ARGS…`.
pub const SINGLE_WORKFLOW_NAME: &str = "main";

/// `steward job submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Job name (default: the program, the last path component of the command's first word).
    #[arg(long)]
    name: Option<String>,
    /// Idempotency key: resubmitting with the same key returns the first job. Default: a
    /// random key per invocation, so the CLI's own retries are safe.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Whole-job timeout (`30s`, `10m`).
    #[arg(long, value_parser = parse_duration_arg)]
    timeout: Option<Duration>,
    /// On cancel, how long the workflows get between SIGTERM and SIGKILL (`10s`; default: the
    /// cluster's, 30 s; at most 1 h).
    #[arg(long, value_parser = parse_duration_arg)]
    cancel_grace: Option<Duration>,
    /// Cores for the workflow (default 1).
    #[arg(long, allow_negative_numbers = true)]
    cores: Option<i64>,
    /// Label `key=value`; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Multi-workflow job file (TOML with the same fields as the API's submit body).
    #[arg(long, conflicts_with_all = ["command", "cores"])]
    file: Option<PathBuf>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

pub(super) async fn run(
    client: &Client,
    args: SubmitArgs,
    format: OutputFormat,
) -> Result<i32, Failure> {
    let key = args.idempotency_key.clone().unwrap_or_else(random_key);
    let request = build_request(args).map_err(|error| Failure {
        code: EXIT_USAGE,
        error,
    })?;
    let answer = client.submit(&request, Some(&key)).await?;
    emit(format, &answer, || render::submitted(&answer))
}

fn random_key() -> String {
    let bits: u128 = rand::thread_rng().gen();
    format!("cli-{bits:032x}")
}

/// Builds the submit body from the arguments (or the job file).
pub fn build_request(args: SubmitArgs) -> anyhow::Result<SubmitJobRequest> {
    let mut request = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str::<SubmitJobRequest>(&text)
                .with_context(|| format!("parsing job file {}", path.display()))?
        }
        None => {
            anyhow::ensure!(
                !args.command.is_empty(),
                "give a command after `--` (steward job submit -- CMD ARGS…) or --file"
            );
            SubmitJobRequest {
                name: None,
                labels: BTreeMap::new(),
                workflows: vec![WorkflowSpec {
                    name: SINGLE_WORKFLOW_NAME.to_owned(),
                    command: args.command.clone(),
                    env: BTreeMap::new(),
                    cores: args.cores,
                    timeout_ms: None,
                    working_dir: None,
                }],
                timeout_ms: None,
                retry_budget: None,
                cancel_grace_ms: None,
            }
        }
    };
    if args.name.is_some() {
        request.name = args.name;
    }
    if let Some(timeout) = args.timeout {
        request.timeout_ms = Some(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX));
    }
    if let Some(grace) = args.cancel_grace {
        request.cancel_grace_ms = Some(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    }
    for label in &args.labels {
        let (key, value) = label
            .split_once('=')
            .with_context(|| format!("--label must be KEY=VALUE, got `{label}`"))?;
        request.labels.insert(key.to_owned(), value.to_owned());
    }
    Ok(request)
}
