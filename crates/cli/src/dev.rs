//! `steward dev`: a local manager group on loopback, in ONE process (one `Node` per manager,
//! each with its own data directory, WAL, sled view and Raft TCP listener, talking over real
//! loopback TCP). Data lives in `./.steward/dev`; the ports are written to the discovery file
//! `./.steward/dev/cluster.json`, which `steward job …` reads, and reused on restart so the
//! cluster comes back with its data.
//!
//! It deliberately is not a deployment: `steward server` runs one manager per process.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use steward_node::api::ApiOptions;
use steward_node::{Node, NodeConfig, PeerConfig, SyncPolicyConfig};
use tokio::sync::watch;

use crate::output::{DevDiscovery, DevNode};
use crate::server::{init_logging, shutdown_signal, LogConfig, LogFormat};

/// Prints a line to stdout, ignoring a closed stdout (the cluster keeps running regardless).
macro_rules! say {
    ($($arg:tt)*) => {
        // Losing the banner is harmless; the discovery file has the same facts.
        {
            let _ = crate::output::write_stdout(&(format!($($arg)*) + "\n"));
        }
    };
}

/// How long `steward dev` waits for the first leader before printing the table anyway.
const LEADER_WAIT: Duration = Duration::from_secs(15);

/// `steward dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Directory for the managers' data and the discovery file.
    #[arg(long, default_value = ".steward/dev")]
    dir: PathBuf,
    /// Number of managers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=7))]
    nodes: u64,
    /// First HTTP port (node N listens on base + N - 1); 0 picks free ports. Ignored when the
    /// directory already holds a cluster (its ports are reused).
    #[arg(long, default_value_t = 8001)]
    api_port_base: u16,
    /// First Raft port; 0 picks free ports. Ignored on restart, like `--api-port-base`.
    #[arg(long, default_value_t = 7001)]
    raft_port_base: u16,
    /// Enable test-only routes (e.g. marking workflows finished before workers exist).
    #[arg(long)]
    test_mode: bool,
    /// Do not start the local worker (submitted jobs then stay pending).
    #[arg(long)]
    no_worker: bool,
    /// Log filter (openraft's own election chatter is off by default).
    #[arg(long, env = "STEWARD_LOG_LEVEL", default_value = "warn,openraft=off")]
    log_level: String,
    /// Log format.
    #[arg(long, env = "STEWARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Runs `steward dev` until Ctrl-C or SIGTERM.
pub fn run(args: DevArgs) -> anyhow::Result<()> {
    init_logging(&LogConfig {
        format: args.log_format,
        level: args.log_level.clone(),
    })?;
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(dev(args))
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let discovery_path = args.dir.join("cluster.json");
    let (mut discovery, restarted) = match DevDiscovery::read(&discovery_path)? {
        Some(existing) => (existing, true),
        None => (plan(&args)?, false),
    };
    discovery.pid = std::process::id();
    write_discovery(&discovery_path, &discovery)?;

    let peers: Vec<PeerConfig> = discovery
        .nodes
        .iter()
        .map(|n| PeerConfig {
            id: n.id,
            raft_addr: n.raft_addr,
            api_addr: n.api_addr,
        })
        .collect();
    let (stop, stopped) = watch::channel(false);
    let mut nodes = Vec::new();
    let mut servers = Vec::new();
    for member in &discovery.nodes {
        let config = NodeConfig {
            id: member.id,
            data_dir: member.data_dir.clone(),
            raft_addr: member.raft_addr,
            api_addr: member.api_addr,
            initial_members: peers.clone(),
            sync_policy: SyncPolicyConfig::Always,
            test_mode: args.test_mode,
            ..NodeConfig::default()
        };
        let node = Node::start(config)
            .await
            .with_context(|| format!("starting node {}", member.id))?;
        let mut stopped = stopped.clone();
        let shutdown = async move {
            // An error means the sender is gone: stop as well.
            let _changed = stopped.wait_for(|stop| *stop).await;
        };
        let listener = tokio::net::TcpListener::bind(member.api_addr)
            .await
            .with_context(|| {
                format!(
                    "binding the API of node {} on {}",
                    member.id, member.api_addr
                )
            })?;
        servers.push(tokio::spawn(steward_node::api::serve_listener(
            node.clone(),
            listener,
            ApiOptions::default(),
            shutdown,
        )));
        nodes.push(node);
    }
    let leader = wait_for_leader(&nodes).await;
    print_banner(
        &discovery,
        &discovery_path,
        restarted,
        leader,
        args.test_mode,
    );

    let worker =
        (!args.no_worker).then(|| crate::worker_cmd::spawn_local(&discovery, stopped.clone()));
    shutdown_signal().await;
    say!("stopping…");
    stop.send_replace(true);
    crate::worker_cmd::join_local(worker).await;
    for server in servers {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("API server: {err}"),
            Err(err) => eprintln!("API server task: {err}"),
        }
    }
    for node in &nodes {
        if let Err(err) = node.shutdown().await {
            eprintln!("node {}: {err}", node.id());
        }
    }
    say!("stopped; data kept in {}", args.dir.display());
    Ok(())
}

/// Chooses addresses and data directories for a new dev cluster.
fn plan(args: &DevArgs) -> anyhow::Result<DevDiscovery> {
    let mut nodes = Vec::new();
    for id in 1..=args.nodes {
        let offset = u16::try_from(id - 1).context("too many nodes")?;
        nodes.push(DevNode {
            id,
            raft_addr: port_or_free(args.raft_port_base, offset)?,
            api_addr: port_or_free(args.api_port_base, offset)?,
            data_dir: absolute(&args.dir)?.join(format!("node-{id}")),
        });
    }
    Ok(DevDiscovery {
        format: DevDiscovery::FORMAT.to_owned(),
        version: DevDiscovery::VERSION,
        pid: std::process::id(),
        nodes,
    })
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("reading the working directory")?
            .join(path))
    }
}

/// `base + offset` on loopback, or (base 0) a port the OS reports free right now.
fn port_or_free(base: u16, offset: u16) -> anyhow::Result<SocketAddr> {
    if base == 0 {
        let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
        return probe.local_addr().context("finding a free port");
    }
    let port = base
        .checked_add(offset)
        .context("port number overflows 65535")?;
    Ok(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))
}

/// Writes the discovery file atomically (temporary file, then rename).
fn write_discovery(path: &Path, discovery: &DevDiscovery) -> anyhow::Result<()> {
    let temporary = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(discovery)?;
    std::fs::write(&temporary, text + "\n")
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}

async fn wait_for_leader(nodes: &[Node]) -> Option<u64> {
    let started = Instant::now();
    while started.elapsed() < LEADER_WAIT {
        if let Some(leader) = nodes.iter().find_map(|n| n.cluster_status().leader_id) {
            return Some(leader);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn print_banner(
    discovery: &DevDiscovery,
    path: &Path,
    restarted: bool,
    leader: Option<u64>,
    test_mode: bool,
) {
    let how = if restarted {
        "restarted with its data"
    } else {
        "started"
    };
    say!(
        "steward dev: {} managers {how} (one process, pid {})",
        discovery.nodes.len(),
        discovery.pid
    );
    say!("{:>4}  {:<22} {:<22} DATA", "ID", "API", "RAFT");
    for node in &discovery.nodes {
        say!(
            "{:>4}  http://{:<15} {:<22} {}",
            node.id,
            node.api_addr,
            node.raft_addr,
            node.data_dir.display()
        );
    }
    match leader {
        Some(leader) => say!("leader: node {leader}"),
        None => say!("no leader yet (still electing)"),
    }
    if test_mode {
        say!("test-only routes ENABLED (--test-mode)");
    }
    say!(
        "discovery file: {} (steward job … finds the cluster from this directory)",
        path.display()
    );
    say!("try: steward job submit -- echo hello; steward job list; Ctrl-C to stop");
}
