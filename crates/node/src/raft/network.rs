//! openraft's network traits over the TCP transport: each `RaftNetwork` is a thin handle on the
//! pooled [`PeerClient`] for its target, so every replication stream and election to one peer
//! shares one connection.
//!
//! It does not retry: openraft owns retry on the errors mapped here, paced by
//! [`UNREACHABLE_RETRY_MS`].

// The large error type is openraft's own `RPCError`, fixed by the trait signatures.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::raft::{NodeId, PeerNode, TypeConfig};
use crate::transport::client::{CallError, PeerClient, PeerPool};
use crate::transport::message::{RaftReply, RaftRpc};

/// Pause before openraft retries a peer that was unreachable. Default: 50 ms (openraft's own
/// default is 500 ms). A restarted follower campaigns after one election timeout (300-500 ms)
/// without word from the leader; the leader must reach it first, or the follower's higher term
/// unseats it (ADR 0015). A refused connect on a LAN costs nothing; the pool's reconnect backoff
/// still spaces out real connect attempts.
pub const UNREACHABLE_RETRY_MS: u64 = 50;

/// Creates per-target network handles backed by one shared [`PeerPool`].
#[derive(Clone)]
pub struct NetworkFactory {
    id: NodeId,
    pool: Arc<PeerPool>,
}

impl NetworkFactory {
    /// A factory for node `id` using `pool`.
    pub fn new(id: NodeId, pool: Arc<PeerPool>) -> Self {
        NetworkFactory { id, pool }
    }
}

/// The network handle openraft uses for one target.
pub struct PeerNetwork {
    id: NodeId,
    target: NodeId,
    target_node: PeerNode,
    client: Arc<PeerClient>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> PeerNetwork {
        let client = self.pool.get(target, node.raft_addr);
        PeerNetwork {
            id: self.id,
            target,
            target_node: *node,
            client,
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, PeerNode, RaftError<NodeId, E>>>;

impl PeerNetwork {
    fn call_error<E: std::error::Error>(
        &self,
        err: CallError,
        action: RPCTypes,
        timeout: Duration,
    ) -> RPCError<NodeId, PeerNode, RaftError<NodeId, E>> {
        match err {
            CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&err)),
            CallError::Timeout { .. } => RPCError::Timeout(openraft::error::Timeout {
                action,
                id: self.id,
                target: self.target,
                timeout,
            }),
            CallError::ConnectionLost { .. } | CallError::Refused(_) => {
                RPCError::Network(NetworkError::new(&err))
            }
        }
    }

    fn remote<T, E: std::error::Error>(
        &self,
        result: Result<T, RaftError<NodeId, E>>,
    ) -> RpcResult<T, E> {
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(self.target, self.target_node, e))
        })
    }

    fn unexpected<E: std::error::Error>(
        &self,
        reply: &RaftReply,
    ) -> RPCError<NodeId, PeerNode, RaftError<NodeId, E>> {
        let text = match reply {
            RaftReply::Refused(reason) => format!("peer refused the request: {reason}"),
            other => format!("mismatched reply variant: {other:?}"),
        };
        RPCError::Network(NetworkError::new(&CallError::Refused(text)))
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(
            UNREACHABLE_RETRY_MS,
        )))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        let timeout = option.hard_ttl();
        let reply = self
            .client
            .call(&RaftRpc::AppendEntries(rpc), timeout)
            .await;
        match reply.map_err(|e| self.call_error(e, RPCTypes::AppendEntries, timeout))? {
            RaftReply::AppendEntries(result) => self.remote(result),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let timeout = option.hard_ttl();
        let reply = self
            .client
            .call(&RaftRpc::InstallSnapshot(rpc), timeout)
            .await;
        match reply.map_err(|e| self.call_error(e, RPCTypes::InstallSnapshot, timeout))? {
            RaftReply::InstallSnapshot(result) => self.remote(result),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        let timeout = option.hard_ttl();
        let reply = self.client.call(&RaftRpc::Vote(rpc), timeout).await;
        match reply.map_err(|e| self.call_error(e, RPCTypes::Vote, timeout))? {
            RaftReply::Vote(result) => self.remote(result),
            other => Err(self.unexpected(&other)),
        }
    }
}
