//! The server side of the transport for a running node: routes each decoded request into
//! openraft, `TimeoutNow` (leadership transfer, ADR 0009) into an immediate election, and
//! `PreVote` (ADR 0018) to the election module.
//!
//! It does not check who is asking: the transport trusts its peers (ADR 0008).

use std::time::Duration;

use crate::raft::election::answer_pre_vote;
use crate::raft::log_store::LogStore;
use crate::raft::Raft;
use crate::transport::message::{BoxFuture, RaftReply, RaftRpc, RpcHandler};

/// Hands transport requests to one openraft instance.
pub(crate) struct RaftHandler {
    raft: Raft,
    log: LogStore,
    /// The leader lease this node grants, which a pre-vote respects.
    lease: Duration,
}

impl RaftHandler {
    pub(crate) fn new(raft: Raft, log: LogStore, lease: Duration) -> Self {
        RaftHandler { raft, log, lease }
    }
}

impl RpcHandler for RaftHandler {
    fn handle(&self, rpc: RaftRpc) -> BoxFuture<RaftReply> {
        let raft = self.raft.clone();
        let log = self.log.clone();
        let lease = self.lease;
        Box::pin(async move {
            match rpc {
                RaftRpc::AppendEntries(req) => {
                    RaftReply::AppendEntries(raft.append_entries(req).await)
                }
                RaftRpc::Vote(req) => RaftReply::Vote(raft.vote(req).await),
                RaftRpc::InstallSnapshot(req) => {
                    RaftReply::InstallSnapshot(raft.install_snapshot(req).await)
                }
                RaftRpc::TimeoutNow { from } => {
                    tracing::info!(from, "leadership transfer: starting an election now");
                    RaftReply::TimeoutNow(raft.trigger().elect().await.map_err(|e| e.to_string()))
                }
                RaftRpc::PreVote {
                    candidate,
                    last_log_id,
                } => RaftReply::PreVote(
                    answer_pre_vote(&raft, &log, lease, candidate, last_log_id).await,
                ),
            }
        })
    }
}
