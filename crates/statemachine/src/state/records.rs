//! The small records beside jobs: globals, workers and idempotency entries.
//!
//! Plain serde data; each is one record in the node's sled mirror. Transitions are made by
//! `apply`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{BodyHash, FenceToken, IdempotencyKey, JobId, LogIndex, NodeId, StateConfig, Term};
use crate::{WorkerId, WorkerStatus};

/// State that is not about one job, worker or key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Globals {
    /// Settings all replicas share.
    pub config: StateConfig,
    /// Index of the last applied proposal.
    pub last_applied: LogIndex,
    /// Stamp of the last applied proposal (monotonic: `max` of all stamps).
    pub last_stamp_ms: u64,
    /// Term of the last `LeaderChanged`.
    pub term: Term,
    /// Leader of the last `LeaderChanged`.
    pub leader: Option<NodeId>,
    /// The fence in force.
    pub fence_token: FenceToken,
}

impl Globals {
    pub(crate) fn new(config: StateConfig) -> Globals {
        Globals {
            config,
            last_applied: LogIndex(0),
            last_stamp_ms: 0,
            term: Term(0),
            leader: None,
            fence_token: FenceToken(0),
        }
    }
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct Worker {
    /// Its id.
    pub id: WorkerId,
    /// Where to reach it.
    pub address: String,
    /// Cores it offers.
    pub cores: u32,
    /// Live, draining or lost.
    pub status: WorkerStatus,
    /// Stamp of its (last) registration.
    pub registered_at_ms: u64,
    /// Stamp of its loss, if lost.
    pub lost_at_ms: Option<u64>,
}

/// A live idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct IdempotencyEntry {
    /// The key, shared with the key map's slot and the job it created (one copy of the
    /// strings per key, not three).
    pub key: Arc<IdempotencyKey>,
    /// Hash of the body first submitted under it.
    pub body_hash: BodyHash,
    /// The job it created (`None` until the `JobSubmitted` after the reservation applies).
    pub job: Option<JobId>,
    /// Stamp of the reservation.
    pub reserved_at_ms: u64,
    /// Stamp at which its job became terminal ("committed").
    pub committed_at_ms: Option<u64>,
    /// When it may be expired: commit + TTL, or reservation + TTL while unbound;
    /// `u64::MAX` while its job is live.
    pub expires_at_ms: u64,
}
