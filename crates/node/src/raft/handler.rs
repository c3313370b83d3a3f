//! The server side of the transport for a running node: routes each decoded request into
//! openraft, and `TimeoutNow` (leadership transfer, ADR 0009) into an immediate election.
//!
//! It does not check who is asking: the transport trusts its peers (ADR 0008).

use crate::raft::Raft;
use crate::transport::message::{BoxFuture, RaftReply, RaftRpc, RpcHandler};

/// Hands transport requests to one openraft instance.
pub(crate) struct RaftHandler {
    raft: Raft,
}

impl RaftHandler {
    pub(crate) fn new(raft: Raft) -> Self {
        RaftHandler { raft }
    }
}

impl RpcHandler for RaftHandler {
    fn handle(&self, rpc: RaftRpc) -> BoxFuture<RaftReply> {
        let raft = self.raft.clone();
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
            }
        })
    }
}
