//! `steward worker` (run a worker agent), `steward worker list`, and `steward job logs`; plus
//! the local worker `steward dev` starts.
//!
//! It deliberately holds no worker logic: the agent lives in `steward_node::worker`; this module
//! parses flags, calls it, and prints.

mod render;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use steward_node::worker::protocol::{LogsResponse, WorkerListResponse};
use steward_node::worker::AgentConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::output::{self, ConnectArgs, DevDiscovery, Failure, OutputFormat, EXIT_OK};
use crate::server::{init_logging, shutdown_signal, LogConfig, LogFormat};

/// Worker id of the worker `steward dev` starts (above the manager ids, which share the gossip
/// id space).
pub const DEV_WORKER_ID: u64 = 100;

/// `steward worker`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkerArgs {
    #[command(subcommand)]
    command: Option<WorkerCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum WorkerCommand {
    /// List the workers the cluster knows: id, cores used/total, state, running workflows.
    List(ListArgs),
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Read the answering node's local state instead of a linearizable read.
    #[arg(long)]
    stale: bool,
}

/// Flags of `steward worker --join ADDR --cores N`.
#[derive(Debug, Args)]
struct RunArgs {
    /// Manager API address(es) to register with (`host:port`, comma-separated).
    #[arg(long, value_delimiter = ',')]
    join: Vec<String>,
    /// Cores offered to workflows. Default: every core of this machine. Minimum: 1.
    #[arg(long)]
    cores: Option<u32>,
    /// Labels, `key=value`, comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Worker id; keep it across restarts so a restart marks the old attempts lost. Default:
    /// random.
    #[arg(long)]
    id: Option<u64>,
    /// Where the worker's own HTTP endpoint (logs) listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Working directory of every workflow. Default: the current directory.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// The leader declares the worker lost after this much silence, in ms. Minimum: 300.
    #[arg(long, default_value_t = 5_000)]
    lease_ms: u64,
    /// Log filter.
    #[arg(long, env = "STEWARD_LOG_LEVEL", default_value = "info,openraft=off")]
    log_level: String,
    /// Log format.
    #[arg(long, env = "STEWARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// `steward job logs ID [--workflow W]`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Job id.
    id: u64,
    /// Only this workflow (by name).
    #[arg(long)]
    workflow: Option<String>,
}

/// Runs `steward worker …`.
pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    match args.command {
        Some(WorkerCommand::List(list)) => {
            let format = list.connect.output;
            let result = runtime().and_then(|rt| rt.block_on(list_workers(list)));
            output::finish(result, format)
        }
        None => match agent_config(&args.run) {
            Ok(config) => run_agent(config, args.run),
            // A config the agent refuses (`--cores 0`, no `--join`) is a usage error.
            Err(error) => output::finish(
                Err(Failure {
                    code: output::EXIT_USAGE,
                    error,
                }),
                OutputFormat::Text,
            ),
        },
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::from(anyhow::Error::from(err)))
}

fn all_cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

fn agent_config(args: &RunArgs) -> anyhow::Result<AgentConfig> {
    if args.join.is_empty() {
        anyhow::bail!("`steward worker` needs --join ADDR (a manager's API address)");
    }
    let mut labels = BTreeMap::new();
    for label in &args.labels {
        let (key, value) = label
            .split_once('=')
            .with_context(|| format!("--labels must be KEY=VALUE, got `{label}`"))?;
        labels.insert(key.to_owned(), value.to_owned());
    }
    let cores = args.cores.unwrap_or_else(all_cores);
    let mut config = AgentConfig::new(
        args.id.unwrap_or_else(|| rand::random::<u64>() >> 1),
        cores,
        args.join.clone(),
    );
    config.labels = labels;
    config.listen = args.listen;
    config.lease_ms = args.lease_ms;
    config.poll_wait_ms = (args.lease_ms / 4).max(100);
    if let Some(dir) = &args.work_dir {
        config.work_dir = dir.clone();
    }
    config.validate()?;
    Ok(config)
}

fn run_agent(config: AgentConfig, args: RunArgs) -> anyhow::Result<()> {
    init_logging(&LogConfig {
        format: args.log_format,
        level: args.log_level,
    })?;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(steward_node::worker::run(config, shutdown_signal()))?;
    Ok(())
}

/// Starts the worker `steward dev` runs alongside its managers: every core, the dev cluster's
/// API addresses, the current directory. Stops when `stopped` turns true.
pub fn spawn_local(discovery: &DevDiscovery, mut stopped: watch::Receiver<bool>) -> JoinHandle<()> {
    let managers = discovery
        .nodes
        .iter()
        .map(|n| n.api_addr.to_string())
        .collect();
    let config = AgentConfig::new(DEV_WORKER_ID, all_cores(), managers);
    let cores = config.cores;
    // Losing the line is harmless: `steward worker list` shows the same.
    let _printed = output::write_stdout(&format!("worker {DEV_WORKER_ID}: {cores} cores\n"));
    tokio::spawn(async move {
        let shutdown = async move {
            // An error means the sender is gone: stop as well.
            let _changed = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(err) = steward_node::worker::run(config, shutdown).await {
            eprintln!("local worker: {err}");
        }
    })
}

/// Waits for the local worker to stop its workflows.
pub async fn join_local(worker: Option<JoinHandle<()>>) {
    let Some(worker) = worker else { return };
    if let Err(err) = worker.await {
        eprintln!("local worker task: {err}");
    }
}

async fn list_workers(args: ListArgs) -> Result<i32, Failure> {
    let client = args.connect.client()?;
    let query = if args.stale { "?stale=true" } else { "" };
    let answer: WorkerListResponse = get_json(&client, &format!("/v1/workers{query}")).await?;
    emit(args.connect.output, &answer, || render::workers(&answer))
}

/// `steward job logs`.
pub async fn logs(
    client: &steward_node::client::Client,
    args: LogsArgs,
    format: OutputFormat,
) -> Result<i32, Failure> {
    let mut path = format!("/v1/jobs/{}/logs", args.id);
    if let Some(workflow) = &args.workflow {
        path.push_str(&format!("?workflow={}", encode(workflow)));
    }
    let answer: LogsResponse = get_json(client, &path).await?;
    emit(format, &answer, || render::logs(&answer))
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn get_json<T: serde::de::DeserializeOwned>(
    client: &steward_node::client::Client,
    path: &str,
) -> Result<T, Failure> {
    let http = reqwest::Client::new();
    let mut last = None;
    for base in client.base_urls() {
        let url = format!("{}{}", base.as_str().trim_end_matches('/'), path);
        match http.get(&url).send().await {
            Ok(response) if response.status().is_success() => {
                return response.json().await.map_err(|err| {
                    Failure::from(anyhow::anyhow!("{url}: undecodable answer: {err}"))
                });
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                let code = match status.as_u16() {
                    404 => output::EXIT_NOT_FOUND,
                    400 => output::EXIT_USAGE,
                    _ => output::EXIT_UNAVAILABLE,
                };
                if status.is_client_error() {
                    return Err(Failure {
                        code,
                        error: anyhow::anyhow!("{url}: {status}: {body}"),
                    });
                }
                last = Some(anyhow::anyhow!("{url}: {status}: {body}"));
            }
            Err(err) => last = Some(anyhow::anyhow!("{url}: {err}")),
        }
    }
    Err(Failure {
        code: output::EXIT_UNAVAILABLE,
        error: last.unwrap_or_else(|| anyhow::anyhow!("no manager address")),
    })
}

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
