//! `steward cluster …`: status (every member's own view), leadership transfer, join, remove;
//! gossip `members` and `rtt` (in `gossip.rs`).
//!
//! It deliberately holds no cluster logic: the leader does the work; this module calls the
//! client and prints.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;

use clap::{Args, Subcommand};
use serde::Serialize;
use steward_node::api::types::{AddMemberRequest, ClusterStatusView};
use steward_node::client::{Client, Url};

use crate::output::{self, ConnectArgs, Failure, OutputFormat, EXIT_OK};

mod gossip;

/// `steward cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Members, leader, term, and each reachable node's commit and applied index.
    Status,
    /// Hand leadership to node N once it has caught up; reports the leaderless time.
    TransferLeader {
        /// Target node id.
        #[arg(long)]
        to: u64,
    },
    /// Add a manager: learner first, promoted to voter once caught up.
    Join {
        /// The new node's id (never reused).
        #[arg(long)]
        id: u64,
        /// Its Raft transport address.
        #[arg(long)]
        raft_addr: SocketAddr,
        /// Its HTTP API address.
        #[arg(long)]
        api_addr: SocketAddr,
    },
    /// Remove a manager.
    Remove {
        /// Node id to remove.
        id: u64,
    },
    /// The gossip view of the answering node: id, role, state, incarnation, RTT, quality.
    Members,
    /// Estimated round-trip time between nodes A and B (default: the answering node), from
    /// Vivaldi coordinates; refuses a node without a coordinate yet.
    Rtt {
        /// First node id.
        a: u64,
        /// Second node id (default: the node that answers).
        b: Option<u64>,
    },
}

/// `cluster status --output json`: the first answer plus every member's own view.
#[derive(Debug, Serialize)]
struct StatusReport {
    cluster: ClusterStatusView,
    nodes: Vec<NodeReport>,
}

#[derive(Debug, Serialize)]
struct NodeReport {
    id: u64,
    api_addr: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<ClusterStatusView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs `steward cluster …` and exits with its code.
pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let format = args.connect.output;
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::from(anyhow::Error::from(err)))
        .and_then(|runtime| runtime.block_on(execute(args)));
    output::finish(result, format)
}

async fn execute(args: ClusterArgs) -> Result<i32, Failure> {
    let client = args.connect.client()?;
    let format = args.connect.output;
    match args.command {
        ClusterCommand::Status => {
            let report = status(&client).await?;
            emit(format, &report, || render_status(&report))
        }
        ClusterCommand::TransferLeader { to } => {
            let answer = client.transfer_leader(to).await?;
            emit(format, &answer, || {
                format!(
                    "leadership moved from node {} to node {}; leaderless for {} ms\n",
                    answer.from, answer.to, answer.leaderless_ms
                )
            })
        }
        ClusterCommand::Join {
            id,
            raft_addr,
            api_addr,
        } => {
            let request = AddMemberRequest {
                id,
                raft_addr,
                api_addr,
            };
            let answer = client.add_member(&request).await?;
            emit(format, &answer, || format!("node {id} joined as a voter\n"))
        }
        ClusterCommand::Remove { id } => {
            let answer = client.remove_member(id).await?;
            emit(format, &answer, || format!("node {id} removed\n"))
        }
        ClusterCommand::Members => {
            let view = gossip::members(&client).await?;
            emit(format, &view, || gossip::render_members(&view))
        }
        ClusterCommand::Rtt { a, b } => {
            let report = gossip::rtt(&client, a, b).await?;
            emit(format, &report, || gossip::render_rtt(&report))
        }
    }
}

fn emit<T: Serialize>(
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

async fn status(client: &Client) -> Result<StatusReport, Failure> {
    let cluster = client.cluster_status().await?;
    let mut nodes = Vec::new();
    let mut seen = BTreeSet::new();
    for member in &cluster.members {
        seen.insert(member.id);
        let base = Url::parse(&format!("http://{}", member.api_addr));
        let answer = match base {
            Ok(base) => client
                .cluster_status_at(&base)
                .await
                .map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        };
        let (status, error) = match answer {
            Ok(status) => (Some(status), None),
            Err(error) => (None, Some(error)),
        };
        nodes.push(NodeReport {
            id: member.id,
            api_addr: member.api_addr,
            status,
            error,
        });
    }
    Ok(StatusReport { cluster, nodes })
}

fn render_status(report: &StatusReport) -> String {
    let cluster = &report.cluster;
    let mut out = String::new();
    let leader = cluster
        .leader_id
        .map_or_else(|| "none".to_owned(), |id| id.to_string());
    // Writing into a String cannot fail (here and below).
    let _ = writeln!(out, "leader: {leader}   term: {}", cluster.term);
    let _ = writeln!(
        out,
        "{:>4}  {:<7}  {:<21}  {:<21}  {:>6}  {:>8}  {:>8}  {:>8}",
        "ID", "ROLE", "RAFT", "API", "TERM", "COMMIT", "APPLIED", "MATCHED"
    );
    for member in &cluster.members {
        let node = report.nodes.iter().find(|node| node.id == member.id);
        let view = node.and_then(|node| node.status.as_ref());
        let show = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let role = match (Some(member.id) == cluster.leader_id, member.voter) {
            (true, _) => "leader",
            (false, true) => "voter",
            (false, false) => "learner",
        };
        let _ = writeln!(
            out,
            "{:>4}  {:<7}  {:<21}  {:<21}  {:>6}  {:>8}  {:>8}  {:>8}",
            member.id,
            role,
            member.raft_addr.to_string(),
            member.api_addr.to_string(),
            show(view.map(|v| v.term)),
            show(view.and_then(|v| v.commit_index)),
            show(view.and_then(|v| v.applied_index)),
            show(member.matched_index),
        );
        if let Some(error) = node.and_then(|node| node.error.as_ref()) {
            let _ = writeln!(out, "      unreachable: {error}");
        }
    }
    out
}
