//! The messages carried in transport frames: openraft's three RPCs, the admin request used for
//! leadership transfer, and the pre-vote steward asks before it lets openraft campaign.
//! ADR 0008, ADR 0009, ADR 0018.
//!
//! Enum variants are only appended, never reordered: bincode encodes the variant index.

use std::future::Future;
use std::pin::Pin;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::LogId;
use serde::{Deserialize, Serialize};

use crate::raft::{NodeId, TypeConfig};

/// A request from one manager to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRpc {
    /// openraft log replication and heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// openraft election.
    Vote(VoteRequest<NodeId>),
    /// openraft snapshot chunk.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Leadership transfer: the leader tells a caught-up target to start an election now.
    TimeoutNow {
        /// The leader asking.
        from: NodeId,
    },
    /// Pre-vote (ADR 0018): would the receiver vote for this candidate now? Changes nothing on
    /// the receiver; only a granted pre-vote from a quorum lets the candidate start an election.
    PreVote {
        /// The node that would campaign.
        candidate: NodeId,
        /// The id of the last entry in the candidate's log.
        last_log_id: Option<LogId<NodeId>>,
    },
}

impl RaftRpc {
    /// The node that sent it: the leader (or candidate) named in the request's vote, or the
    /// transfer's `from`; `None` for a vote naming nobody (never sent by openraft). Used by
    /// the test-only [`super::link_filter::LinkFilter`].
    pub fn sender(&self) -> Option<NodeId> {
        match self {
            RaftRpc::AppendEntries(req) => req.vote.leader_id().voted_for(),
            RaftRpc::Vote(req) => req.vote.leader_id().voted_for(),
            RaftRpc::InstallSnapshot(req) => req.vote.leader_id().voted_for(),
            RaftRpc::TimeoutNow { from } => Some(*from),
            RaftRpc::PreVote { candidate, .. } => Some(*candidate),
        }
    }
}

/// The answer to a [`RaftRpc`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    /// Answer to [`RaftRpc::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`RaftRpc::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`RaftRpc::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// Answer to [`RaftRpc::TimeoutNow`]: the election was started, or why not.
    TimeoutNow(Result<(), String>),
    /// The request's body could not be decoded; the connection stays open.
    Refused(String),
    /// Answer to [`RaftRpc::PreVote`]: granted, or why not.
    PreVote(Result<(), String>),
}

/// A boxed, sendable future, as returned by [`RpcHandler::handle`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the server side does with a decoded request (the node routes it into openraft).
pub trait RpcHandler: Send + Sync + 'static {
    /// Handles one request. Called concurrently for pipelined requests.
    fn handle(&self, rpc: RaftRpc) -> BoxFuture<RaftReply>;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use bytes::Bytes;
    use openraft::error::{Fatal, SnapshotMismatch};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, Vote};

    use super::*;
    use crate::raft::{PeerNode, ProposalBytes};
    use crate::transport::frame::{decode_body, encode_body};

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(value: &T) -> T {
        let body = encode_body(value).unwrap();
        let back: T = decode_body(&body).unwrap();
        assert_eq!(format!("{value:?}"), format!("{back:?}"));
        back
    }

    #[test]
    fn openraft_messages_survive_bincode() {
        let members: BTreeSet<NodeId> = [1, 2, 3].into_iter().collect();
        let nodes: std::collections::BTreeMap<NodeId, PeerNode> = members
            .iter()
            .map(|id| (*id, PeerNode::default()))
            .collect();
        let entries = vec![
            Entry::<TypeConfig> {
                log_id: log_id(1, 1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(1, 2),
                payload: EntryPayload::Normal(ProposalBytes(Bytes::from_static(b"event"))),
            },
            Entry {
                log_id: log_id(1, 3),
                payload: EntryPayload::Membership(Membership::new(vec![members], nodes)),
            },
        ];
        round_trip(&RaftRpc::AppendEntries(AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: Some(log_id(1, 0)),
            entries,
            leader_commit: Some(log_id(1, 1)),
        }));
        round_trip(&RaftRpc::Vote(VoteRequest::new(
            Vote::new(2, 2),
            Some(log_id(1, 3)),
        )));
        round_trip(&RaftRpc::InstallSnapshot(InstallSnapshotRequest {
            vote: Vote::new_committed(1, 1),
            meta: SnapshotMeta {
                last_log_id: Some(log_id(1, 3)),
                ..Default::default()
            },
            offset: 0,
            data: vec![1, 2, 3],
            done: true,
        }));
        round_trip(&RaftRpc::TimeoutNow { from: 1 });
        round_trip(&RaftRpc::PreVote {
            candidate: 2,
            last_log_id: Some(log_id(3, 7)),
        });
    }

    #[test]
    fn sender_is_the_node_named_in_the_vote() {
        let vote = RaftRpc::Vote(VoteRequest::new(Vote::new(4, 2), None));
        assert_eq!(vote.sender(), Some(2));
        let append = RaftRpc::AppendEntries(AppendEntriesRequest {
            vote: Vote::new_committed(4, 3),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        });
        assert_eq!(append.sender(), Some(3));
        assert_eq!(RaftRpc::TimeoutNow { from: 5 }.sender(), Some(5));
        let pre_vote = RaftRpc::PreVote {
            candidate: 6,
            last_log_id: None,
        };
        assert_eq!(pre_vote.sender(), Some(6));
    }

    #[test]
    fn openraft_errors_survive_bincode() {
        let mismatch = SnapshotMismatch {
            expect: openraft::SnapshotSegmentId {
                id: "a".into(),
                offset: 0,
            },
            got: openraft::SnapshotSegmentId {
                id: "b".into(),
                offset: 3,
            },
        };
        let reply = RaftReply::InstallSnapshot(Err(RaftError::APIError(
            InstallSnapshotError::SnapshotMismatch(mismatch),
        )));
        round_trip(&reply);
        round_trip(&RaftReply::Vote(Err(RaftError::Fatal(Fatal::Stopped))));
        round_trip(&RaftReply::TimeoutNow(Err("not caught up".into())));
        round_trip(&RaftReply::PreVote(Err("within the lease".into())));
    }
}
