//! What the node reports about itself and its group: cluster status, metrics, transfer reports.
//! Plain data for the API layer; nothing here talks to openraft beyond reading its metrics.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use openraft::{RaftMetrics, ServerState};
use serde::Serialize;

use crate::raft::{NodeId, PeerNode, RaftMeta};
use crate::transport::TransportStatsSnapshot;

/// One member of the group as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    /// Node id.
    pub id: u64,
    /// Raft transport address.
    pub raft_addr: SocketAddr,
    /// HTTP API address.
    pub api_addr: SocketAddr,
    /// Voter (true) or learner (false).
    pub voter: bool,
    /// Highest log index known replicated to it (leader only; `None` elsewhere or unknown).
    pub matched_index: Option<u64>,
}

/// This node's view of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// This node's id.
    pub node_id: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: &'static str,
    /// The leader this node knows of.
    pub leader_id: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Highest index known committed (learned from the leader; `None` until known).
    pub commit_index: Option<u64>,
    /// Highest index applied to this node's state.
    pub applied_index: Option<u64>,
    /// Highest index in this node's log.
    pub last_log_index: Option<u64>,
    /// Members, by id.
    pub members: Vec<MemberStatus>,
    /// Ids that left the group and may never be reused.
    pub removed_ids: Vec<u64>,
}

/// How a leadership transfer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    /// The old leader (this node).
    pub from: u64,
    /// The new leader.
    pub to: u64,
    /// The new leader's term.
    pub term: u64,
    /// From this node stepping down to this node seeing the new leader.
    pub leaderless_ms: u64,
    /// From refusing new writes (before catch-up) to seeing the new leader.
    pub writes_paused_ms: u64,
}

/// Numbers for `/metrics`.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    /// This node's id.
    pub node_id: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: &'static str,
    /// Current term.
    pub term: u64,
    /// The leader this node knows of.
    pub leader_id: Option<u64>,
    /// Highest index known committed.
    pub commit_index: Option<u64>,
    /// Highest index applied.
    pub applied_index: Option<u64>,
    /// Highest index in the log.
    pub last_log_index: Option<u64>,
    /// Last index covered by the current snapshot.
    pub snapshot_index: Option<u64>,
    /// Highest purged index.
    pub purged_index: Option<u64>,
    /// The WAL's counters and sync latency histogram.
    pub wal: steward_log::WalMetrics,
    /// Transport counters.
    pub transport: TransportStatsSnapshot,
    /// Jobs per status name (`pending`, `running`, ...).
    pub jobs_by_status: BTreeMap<String, u64>,
    /// Live idempotency keys.
    pub idempotency_keys: u64,
}

/// openraft's server state as a word.
pub(crate) fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

/// Builds the cluster status from openraft's metrics and the applied raft meta.
pub(crate) fn cluster_status(
    metrics: &RaftMetrics<NodeId, PeerNode>,
    meta: &RaftMeta,
    commit_index: Option<u64>,
) -> ClusterStatus {
    let membership = metrics.membership_config.membership();
    let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, node)| MemberStatus {
            id: *id,
            raft_addr: node.raft_addr,
            api_addr: node.api_addr,
            voter: voters.contains(id),
            matched_index: metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(id).copied().flatten().map(|l| l.index))
                .or(if *id == metrics.id {
                    metrics.last_log_index
                } else {
                    None
                }),
        })
        .collect();
    ClusterStatus {
        node_id: metrics.id,
        state: state_name(metrics.state),
        leader_id: metrics.current_leader,
        term: metrics.current_term,
        commit_index,
        applied_index: metrics.last_applied.map(|l| l.index),
        last_log_index: metrics.last_log_index,
        members,
        removed_ids: meta.removed_ids.iter().copied().collect(),
    }
}
