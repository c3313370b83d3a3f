//! `steward server`: one manager from a TOML file, flags and `STEWARD_*` environment variables,
//! with structured logs (text or JSON).
//!
//! Precedence: flag > environment variable > config file > built-in default. It deliberately
//! holds no node logic: it builds a [`NodeConfig`], starts the node and serves the HTTP API until
//! SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use steward_node::api::ApiOptions;
use steward_node::{Node, NodeConfig, PeerConfig, SyncPolicyConfig};

/// The whole `steward.toml`: `[node]`, `[api]` and `[log]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The manager itself.
    pub node: NodeConfig,
    /// The HTTP layer.
    pub api: ApiOptions,
    /// Logging.
    pub log: LogConfig,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`. Default: text.
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `steward_node=debug,warn`). Default: `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `steward server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// TOML configuration file (`[node]`, `[api]`, `[log]` tables).
    #[arg(long, env = "STEWARD_CONFIG")]
    config: Option<PathBuf>,
    /// Print the default configuration as TOML and exit.
    #[arg(long)]
    print_default_config: bool,
    #[command(flatten)]
    overrides: Overrides,
}

/// One flag (and one `STEWARD_*` variable) per configuration key.
#[derive(Debug, Default, Args)]
pub struct Overrides {
    /// [node] id: this node's id, never reused.
    #[arg(long, env = "STEWARD_ID")]
    id: Option<u64>,
    /// [node] data_dir.
    #[arg(long, env = "STEWARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// [node] raft_addr: Raft TCP listen address.
    #[arg(long, env = "STEWARD_RAFT_ADDR")]
    raft_addr: Option<SocketAddr>,
    /// [node] api_addr: HTTP listen address.
    #[arg(long, env = "STEWARD_API_ADDR")]
    api_addr: Option<SocketAddr>,
    /// [node] initial_members: `ID@RAFT_ADDR@API_ADDR`, comma-separated (including this node).
    #[arg(long, env = "STEWARD_INITIAL_MEMBERS", value_delimiter = ',', value_parser = parse_peer)]
    initial_members: Option<Vec<PeerConfig>>,
    /// [node] sync_policy: always, batch or never (never: tests only).
    #[arg(long, env = "STEWARD_SYNC_POLICY", value_parser = parse_sync_policy)]
    sync_policy: Option<SyncPolicyConfig>,
    /// [node] heartbeat_interval_ms.
    #[arg(long, env = "STEWARD_HEARTBEAT_INTERVAL_MS")]
    heartbeat_interval_ms: Option<u64>,
    /// [node] election_timeout_min_ms.
    #[arg(long, env = "STEWARD_ELECTION_TIMEOUT_MIN_MS")]
    election_timeout_min_ms: Option<u64>,
    /// [node] election_timeout_max_ms.
    #[arg(long, env = "STEWARD_ELECTION_TIMEOUT_MAX_MS")]
    election_timeout_max_ms: Option<u64>,
    /// [node] timeout_check_interval_ms.
    #[arg(long, env = "STEWARD_TIMEOUT_CHECK_INTERVAL_MS")]
    timeout_check_interval_ms: Option<u64>,
    /// [node] idempotency_expiry_interval_ms.
    #[arg(long, env = "STEWARD_IDEMPOTENCY_EXPIRY_INTERVAL_MS")]
    idempotency_expiry_interval_ms: Option<u64>,
    /// [node] snapshot_after_entries.
    #[arg(long, env = "STEWARD_SNAPSHOT_AFTER_ENTRIES")]
    snapshot_after_entries: Option<u64>,
    /// [node] log_entries_kept_after_snapshot.
    #[arg(long, env = "STEWARD_LOG_ENTRIES_KEPT_AFTER_SNAPSHOT")]
    log_entries_kept_after_snapshot: Option<u64>,
    /// [node] test_mode: enables test-only routes and hooks. Never in production.
    #[arg(long, env = "STEWARD_TEST_MODE")]
    test_mode: Option<bool>,
    /// [node.gossip] enabled: run SWIM membership over UDP.
    #[arg(long, env = "STEWARD_GOSSIP_ENABLED")]
    gossip_enabled: Option<bool>,
    /// [node.gossip] addr: UDP listen address (default: raft_addr's IP and port, over UDP).
    #[arg(long, env = "STEWARD_GOSSIP_ADDR")]
    gossip_addr: Option<SocketAddr>,
    /// [node.gossip] seeds: gossip addresses to join through, comma-separated (default: the
    /// other initial members' raft_addr).
    #[arg(long, env = "STEWARD_GOSSIP_SEEDS", value_delimiter = ',')]
    gossip_seeds: Option<Vec<SocketAddr>>,
    /// [node.gossip] probe_interval_ms.
    #[arg(long, env = "STEWARD_GOSSIP_PROBE_INTERVAL_MS")]
    gossip_probe_interval_ms: Option<u64>,
    /// [node.gossip] probe_timeout_ms.
    #[arg(long, env = "STEWARD_GOSSIP_PROBE_TIMEOUT_MS")]
    gossip_probe_timeout_ms: Option<u64>,
    /// [node.gossip] suspicion_mult.
    #[arg(long, env = "STEWARD_GOSSIP_SUSPICION_MULT")]
    gossip_suspicion_mult: Option<u32>,
    /// [node.gossip] gossip_interval_ms.
    #[arg(long, env = "STEWARD_GOSSIP_GOSSIP_INTERVAL_MS")]
    gossip_gossip_interval_ms: Option<u64>,
    /// [node.gossip] push_pull_interval_ms.
    #[arg(long, env = "STEWARD_GOSSIP_PUSH_PULL_INTERVAL_MS")]
    gossip_push_pull_interval_ms: Option<u64>,
    /// [api] forward_timeout_ms.
    #[arg(long, env = "STEWARD_FORWARD_TIMEOUT_MS")]
    forward_timeout_ms: Option<u64>,
    /// [api] wait_max_ms.
    #[arg(long, env = "STEWARD_WAIT_MAX_MS")]
    wait_max_ms: Option<u64>,
    /// [log] format.
    #[arg(long, env = "STEWARD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// [log] level (a tracing filter).
    #[arg(long, env = "STEWARD_LOG_LEVEL")]
    log_level: Option<String>,
}

/// Parses `ID@RAFT_ADDR@API_ADDR`.
pub fn parse_peer(text: &str) -> Result<PeerConfig, String> {
    let parts: Vec<&str> = text.trim().split('@').collect();
    let [id, raft_addr, api_addr] = parts.as_slice() else {
        return Err(format!("`{text}`: expected ID@RAFT_ADDR@API_ADDR"));
    };
    Ok(PeerConfig {
        id: id.parse().map_err(|e| format!("`{id}`: {e}"))?,
        raft_addr: raft_addr
            .parse()
            .map_err(|e| format!("`{raft_addr}`: {e}"))?,
        api_addr: api_addr.parse().map_err(|e| format!("`{api_addr}`: {e}"))?,
    })
}

fn parse_sync_policy(text: &str) -> Result<SyncPolicyConfig, String> {
    match text {
        "always" => Ok(SyncPolicyConfig::Always),
        "batch" => Ok(SyncPolicyConfig::Batch),
        "never" => Ok(SyncPolicyConfig::Never),
        other => Err(format!("`{other}`: expected always, batch or never")),
    }
}

impl Overrides {
    /// Applies every given flag (or environment variable) over `config`.
    pub fn apply(self, config: &mut ServerConfig) {
        let node = &mut config.node;
        set(&mut node.id, self.id);
        set(&mut node.data_dir, self.data_dir);
        set(&mut node.raft_addr, self.raft_addr);
        set(&mut node.api_addr, self.api_addr);
        set(&mut node.initial_members, self.initial_members);
        set(&mut node.sync_policy, self.sync_policy);
        set(&mut node.heartbeat_interval_ms, self.heartbeat_interval_ms);
        set(
            &mut node.election_timeout_min_ms,
            self.election_timeout_min_ms,
        );
        set(
            &mut node.election_timeout_max_ms,
            self.election_timeout_max_ms,
        );
        set(
            &mut node.timeout_check_interval_ms,
            self.timeout_check_interval_ms,
        );
        set(
            &mut node.idempotency_expiry_interval_ms,
            self.idempotency_expiry_interval_ms,
        );
        set(
            &mut node.snapshot_after_entries,
            self.snapshot_after_entries,
        );
        set(
            &mut node.log_entries_kept_after_snapshot,
            self.log_entries_kept_after_snapshot,
        );
        set(&mut node.test_mode, self.test_mode);
        let gossip = &mut node.gossip;
        set(&mut gossip.enabled, self.gossip_enabled);
        set(&mut gossip.addr, self.gossip_addr.map(Some));
        set(&mut gossip.seeds, self.gossip_seeds);
        set(&mut gossip.probe_interval_ms, self.gossip_probe_interval_ms);
        set(&mut gossip.probe_timeout_ms, self.gossip_probe_timeout_ms);
        set(&mut gossip.suspicion_mult, self.gossip_suspicion_mult);
        set(
            &mut gossip.gossip_interval_ms,
            self.gossip_gossip_interval_ms,
        );
        set(
            &mut gossip.push_pull_interval_ms,
            self.gossip_push_pull_interval_ms,
        );
        set(&mut config.api.forward_timeout_ms, self.forward_timeout_ms);
        set(&mut config.api.wait_max_ms, self.wait_max_ms);
        set(&mut config.log.format, self.log_format);
        set(&mut config.log.level, self.log_level);
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// Loads the file (if any) and applies the overrides.
pub fn load(path: Option<&PathBuf>, overrides: Overrides) -> anyhow::Result<ServerConfig> {
    let mut config = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?
        }
        None => ServerConfig::default(),
    };
    overrides.apply(&mut config);
    config.node.validate().context("invalid configuration")?;
    Ok(config)
}

/// Installs the global tracing subscriber.
pub fn init_logging(log: &LogConfig) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.level)
        .with_context(|| format!("invalid log level filter `{}`", log.level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|err| anyhow::anyhow!("installing the log subscriber: {err}"))
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                None
            }
        };
    let term = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            // Without this, a failed registration would read as a Ctrl-C and stop the server
            // at once, silently at the default log level.
            tracing::warn!(%err, "cannot listen for Ctrl-C; only SIGTERM stops the server");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = term => {}
    }
}

/// Runs `steward server`.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    if args.print_default_config {
        crate::output::write_stdout(&toml::to_string_pretty(&ServerConfig::default())?)?;
        return Ok(());
    }
    let config = load(args.config.as_ref(), args.overrides)?;
    init_logging(&config.log)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let api_addr = config.node.api_addr;
    let node = Node::start(config.node.clone())
        .await
        .context("starting the node")?;
    tracing::info!(id = node.id(), %api_addr, raft_addr = %config.node.raft_addr, "manager started");
    let served =
        steward_node::api::serve_with(node.clone(), api_addr, config.api, shutdown_signal()).await;
    tracing::info!("shutting down");
    let stopped = node.shutdown().await;
    served.with_context(|| format!("serving the API on {api_addr}"))?;
    stopped.context("stopping the node")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Harness {
        #[command(flatten)]
        args: ServerArgs,
    }

    #[test]
    fn every_config_key_has_a_flag() {
        let defaults = toml::Value::try_from(ServerConfig::default()).unwrap();
        let command = Harness::command();
        let flags: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_long().map(str::to_owned))
            .collect();
        for (table, keys) in defaults.as_table().unwrap() {
            for (key, value) in keys.as_table().unwrap() {
                // A nested table ([node.gossip]) has one `--{table}-{key}` flag per key.
                let nested: Vec<String> = match value.as_table() {
                    Some(inner) => inner.keys().map(|k| format!("{key}_{k}")).collect(),
                    None => vec![key.clone()],
                };
                for key in nested {
                    let flag = match table.as_str() {
                        "log" => format!("log-{key}"),
                        _ => key.replace('_', "-"),
                    };
                    assert!(flags.contains(&flag), "[{table}] {key} has no --{flag}");
                }
            }
        }
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steward.toml");
        let text = "[node]\nid = 2\nheartbeat_interval_ms = 40\n[log]\nformat = \"json\"\n";
        std::fs::write(&path, text).unwrap();
        let args = Harness::try_parse_from(["x", "--heartbeat-interval-ms", "60"]).unwrap();
        let config = load(Some(&path), args.args.overrides).unwrap();
        assert_eq!(config.node.id, 2);
        assert_eq!(config.node.heartbeat_interval_ms, 60);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.node.raft_addr, NodeConfig::default().raft_addr);
    }

    #[test]
    fn bad_files_and_peers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("steward.toml");
        std::fs::write(&path, "[node]\nidd = 2\n").unwrap();
        let err = load(Some(&path), Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("idd"), "{err:#}");
        assert!(parse_peer("1@127.0.0.1:7001").is_err());
        let peer = parse_peer("3@127.0.0.1:7003@127.0.0.1:8003").unwrap();
        assert_eq!(peer.id, 3);
    }

    #[test]
    fn default_config_round_trips_through_toml() {
        let text = toml::to_string_pretty(&ServerConfig::default()).unwrap();
        let parsed: ServerConfig = toml::from_str(&text).unwrap();
        assert_eq!(parsed, ServerConfig::default());
    }
}
