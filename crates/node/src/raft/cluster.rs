//! Membership changes on the leader: join (learner, catch up, promote), remove, and the mapping
//! of openraft's write errors onto the node's [`Error`].
//!
//! It does not bootstrap (that is `Node::start`) and does not transfer leadership
//! (`transfer.rs`).

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::ChangeMembers;

use crate::config::PeerConfig;
use crate::error::{Error, Result};
use crate::raft::{NodeId, PeerNode, Raft, RaftMeta};

/// Longest wait for a joining node to catch up before it is promoted. Default: 60 s.
pub const JOIN_CATCH_UP_TIMEOUT_MS: u64 = 60_000;

/// The leader's HTTP address from openraft's membership, for `NotLeader` answers.
pub(crate) fn leader_api_addr(raft: &Raft, leader: Option<NodeId>) -> Option<std::net::SocketAddr> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    leader.and_then(|id| {
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.api_addr)
    })
}

/// Maps openraft's client-write errors (proposals and membership changes).
pub(crate) fn write_error(
    raft: &Raft,
    what: &'static str,
    err: RaftError<NodeId, ClientWriteError<NodeId, PeerNode>>,
) -> Error {
    match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => Error::NotLeader {
            leader_id: forward.leader_id,
            leader_api_addr: forward
                .leader_node
                .map(|n| n.api_addr)
                .or_else(|| leader_api_addr(raft, forward.leader_id)),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Error::Membership(e.to_string())
        }
        RaftError::Fatal(fatal) => fatal_error(what, fatal),
    }
}

/// Maps a fatal openraft error: a stopped core is a shutdown, anything else is reported.
pub(crate) fn fatal_error(what: &'static str, fatal: Fatal<NodeId>) -> Error {
    match fatal {
        Fatal::Stopped => Error::ShuttingDown,
        other => Error::Raft {
            what,
            message: other.to_string(),
        },
    }
}

/// Adds `peer` as a learner, waits until it has caught up, then promotes it to voter.
pub(crate) async fn add_member(raft: &Raft, meta: &RaftMeta, peer: PeerConfig) -> Result<()> {
    if meta.removed_ids.contains(&peer.id) {
        return Err(Error::Membership(format!(
            "node id {} was removed from this group; ids are never reused",
            peer.id
        )));
    }
    let membership = meta.membership.membership();
    if membership.voter_ids().any(|id| id == peer.id) {
        return Ok(());
    }
    let node = PeerNode {
        raft_addr: peer.raft_addr,
        api_addr: peer.api_addr,
    };
    let learner = raft.add_learner(peer.id, node, true);
    match tokio::time::timeout(Duration::from_millis(JOIN_CATCH_UP_TIMEOUT_MS), learner).await {
        Ok(result) => result.map_err(|e| write_error(raft, "add_learner", e))?,
        Err(_) => {
            return Err(Error::Timeout(format!(
                "node {} did not catch up within {JOIN_CATCH_UP_TIMEOUT_MS} ms; it stays a learner",
                peer.id
            )))
        }
    };
    let promote = ChangeMembers::AddVoterIds(BTreeSet::from([peer.id]));
    raft.change_membership(promote, false)
        .await
        .map_err(|e| write_error(raft, "change_membership", e))?;
    Ok(())
}

/// Removes `id` (voter or learner) from the group; its id is then never reused.
pub(crate) async fn remove_member(raft: &Raft, meta: &RaftMeta, id: NodeId) -> Result<()> {
    let membership = meta.membership.membership();
    if membership.get_node(&id).is_none() {
        return Err(Error::Membership(format!("node {id} is not a member")));
    }
    let change = if membership.voter_ids().any(|voter| voter == id) {
        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    };
    raft.change_membership(change, false)
        .await
        .map_err(|e| write_error(raft, "change_membership", e))?;
    Ok(())
}
