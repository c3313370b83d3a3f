//! Leadership transfer (ADR 0009). openraft 0.9 has no transfer call, so the leader pauses
//! writes, waits until the target's matched index equals its last log index, stops heartbeats
//! long enough for the followers' leader lease to expire (0.9 voters refuse any vote while the
//! lease they granted is live), then tells the target to start an election at once.
//!
//! It does not pick a target and does not retry a failed transfer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openraft::{RaftMetrics, ServerState};

use crate::error::{Error, Result};
use crate::raft::status::TransferReport;
use crate::raft::{NodeId, PeerNode, Raft};
use crate::transport::client::PeerPool;
use crate::transport::message::{RaftReply, RaftRpc};

/// Longest wait for the target to catch up. Default: 10 s.
pub const TRANSFER_CATCH_UP_TIMEOUT_MS: u64 = 10_000;
/// Longest wait for the target to win its election. Default: 10 s.
pub const TRANSFER_ELECTION_TIMEOUT_MS: u64 = 10_000;
/// Added to the leader lease before the target is told to campaign. Default: 20 ms.
pub const LEASE_MARGIN_MS: u64 = 20;

/// While a transfer runs, new writes are refused with `NotLeader { leader_id: target }`.
#[derive(Debug, Default)]
pub struct TransferGate {
    /// 0 when idle, else the target's id (ids are at least 1).
    target: AtomicU64,
}

impl TransferGate {
    /// The target of the transfer in progress, if any.
    pub fn target(&self) -> Option<NodeId> {
        match self.target.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }
}

/// Re-opens writes and heartbeats however the transfer ends.
struct Paused<'a> {
    gate: &'a TransferGate,
    raft: &'a Raft,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.raft.runtime_config().heartbeat(true);
        self.gate.target.store(0, Ordering::Release);
    }
}

async fn wait_metrics(
    raft: &Raft,
    timeout_ms: u64,
    what: &str,
    mut done: impl FnMut(&RaftMetrics<NodeId, PeerNode>) -> bool,
) -> Result<RaftMetrics<NodeId, PeerNode>> {
    let mut rx = raft.metrics();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        let metrics = rx.borrow_and_update().clone();
        if done(&metrics) {
            return Ok(metrics);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Error::ShuttingDown),
            Err(_) => return Err(Error::Timeout(format!("{what} within {timeout_ms} ms"))),
        }
    }
}

/// Hands leadership from `me` to `to`. See the module comment for the steps.
pub(crate) async fn transfer_leader(
    raft: &Raft,
    pool: &PeerPool,
    gate: &TransferGate,
    me: NodeId,
    to: NodeId,
    lease_ms: u64,
) -> Result<TransferReport> {
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(me) {
        let leader_api_addr = crate::raft::cluster::leader_api_addr(raft, metrics.current_leader);
        return Err(Error::NotLeader {
            leader_id: metrics.current_leader,
            leader_api_addr,
        });
    }
    if to == me {
        let term = metrics.current_term;
        return Ok(TransferReport {
            from: me,
            to,
            term,
            leaderless_ms: 0,
            writes_paused_ms: 0,
        });
    }
    let membership = metrics.membership_config.membership();
    let Some(target) = membership.get_node(&to).copied() else {
        return Err(Error::Membership(format!("node {to} is not a member")));
    };
    if !membership.voter_ids().any(|id| id == to) {
        return Err(Error::Membership(format!(
            "node {to} is a learner, not a voter"
        )));
    }
    if gate
        .target
        .compare_exchange(0, to, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(Error::Membership(
            "a leadership transfer is already running".into(),
        ));
    }
    let _paused = Paused { gate, raft };
    let paused_at = Instant::now();
    let caught_up = |m: &RaftMetrics<NodeId, PeerNode>| {
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&to).copied().flatten());
        matched.map(|l| l.index) == m.last_log_index
    };
    wait_metrics(
        raft,
        TRANSFER_CATCH_UP_TIMEOUT_MS,
        "the target catching up",
        caught_up,
    )
    .await?;
    raft.runtime_config().heartbeat(false);
    tokio::time::sleep(Duration::from_millis(lease_ms + LEASE_MARGIN_MS)).await;
    let client = pool.get(to, target.raft_addr);
    let campaign = RaftRpc::TimeoutNow { from: me };
    match client.call(&campaign, Duration::from_secs(2)).await {
        Ok(RaftReply::TimeoutNow(Ok(()))) => {}
        Ok(RaftReply::TimeoutNow(Err(reason))) => {
            return Err(Error::raft("transfer_leader", reason))
        }
        Ok(other) => {
            return Err(Error::raft(
                "transfer_leader",
                format!("unexpected {other:?}"),
            ))
        }
        Err(e) => return Err(Error::transport(format!("tell node {to} to campaign"), e)),
    }
    let mut stepped_down: Option<Instant> = None;
    let won = wait_metrics(
        raft,
        TRANSFER_ELECTION_TIMEOUT_MS,
        "the target winning",
        |m| {
            if m.state != ServerState::Leader && stepped_down.is_none() {
                stepped_down = Some(Instant::now());
            }
            m.current_leader == Some(to)
        },
    )
    .await?;
    let now = Instant::now();
    Ok(TransferReport {
        from: me,
        to,
        term: won.current_term,
        leaderless_ms: now.duration_since(stepped_down.unwrap_or(now)).as_millis() as u64,
        writes_paused_ms: now.duration_since(paused_at).as_millis() as u64,
    })
}
