//! openraft glue: the type configuration, the two storage adapters, and the leader-side
//! operations built on openraft.
//!
//! Layout: [`log_store`] maps openraft's log onto `steward-log`'s WAL, with `flusher` reporting
//! durability; [`state_machine`] applies committed entries through `steward-statemachine` into
//! the sled view (`view`), each entry decoded before the state is locked (`ready`), and owns the
//! snapshot files (`snapshot_file`), and at startup rebuilds the state from the newest snapshot
//! and the WAL (`resume`); [`network`] plugs the
//! TCP transport into openraft and `handler` serves it; `election` decides when to campaign
//! (pre-vote, ADR 0018); `proposer` batches decided commands into
//! entries; `cluster` changes membership; [`transfer`] hands leadership over; [`status`] is what
//! the node reports. This module does not start Raft (see `node.rs`).

use std::io::Cursor;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

mod background;
pub(crate) mod cluster;
pub(crate) mod election;
mod flusher;
pub(crate) mod handler;
pub mod log_store;
pub mod network;
pub(crate) mod proposer;
pub(crate) mod read_floor;
mod ready;
pub mod resume;
mod snapshot_file;
pub(crate) mod snapshot_schedule;
pub mod state_machine;
pub mod status;
mod tail_cache;
pub mod transfer;
mod view;
mod view_writer;

pub use view::{OpeningView, RaftMeta};

/// A node id as openraft sees it.
pub type NodeId = u64;

/// What openraft stores per member: where to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    /// Raft TCP transport address.
    pub raft_addr: SocketAddr,
    /// HTTP API address.
    pub api_addr: SocketAddr,
}

impl Default for PeerNode {
    /// An unroutable placeholder, only for openraft's tests that build memberships without
    /// addresses.
    fn default() -> Self {
        let unspecified = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        PeerNode {
            raft_addr: unspecified,
            api_addr: unspecified,
        }
    }
}

/// The application payload of a normal Raft entry: one stamped proposal, already encoded with
/// `steward-statemachine`'s versioned codec. Keeping the bytes avoids re-encoding on the WAL and
/// wire paths; the state machine decodes once, at apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalBytes(pub Bytes);

/// What applying one entry produced, handed back to the proposer by openraft.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApplyResponse {
    /// The log index the entry was applied at.
    pub index: u64,
    /// One outcome per event of the entry's proposal (empty for blank and membership entries).
    pub outcomes: Vec<steward_statemachine::Outcome>,
}

openraft::declare_raft_types!(
    /// steward's openraft type configuration.
    pub TypeConfig:
        D = ProposalBytes,
        R = ApplyResponse,
        NodeId = NodeId,
        Node = PeerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle with steward's types.
pub type Raft = openraft::Raft<TypeConfig>;
