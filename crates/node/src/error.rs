//! The node's error type: what went wrong, where, and what the caller can do about it.
//!
//! It does not wrap every lower-level error verbatim: storage and transport failures carry the
//! subject and the verb ("append to the WAL", "decode frame from 10.0.0.2:7001") as text so the
//! type stays `Clone`-free but printable across the API boundary.

use std::net::SocketAddr;

/// Errors returned by the node's public API.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// This node is not the leader; nothing changed. Retry on `leader_api_addr` when known.
    #[error("not the leader (leader: {leader_id:?} at {leader_api_addr:?})")]
    NotLeader {
        /// The current leader's id, when this node knows it.
        leader_id: Option<u64>,
        /// The current leader's HTTP API address, when known.
        leader_api_addr: Option<SocketAddr>,
    },
    /// The state machine refused the command (validation); nothing was proposed.
    #[error("rejected: {0}")]
    Rejected(steward_statemachine::Rejection),
    /// A disk operation failed; the node may have stopped replicating.
    #[error("storage: {what}: {message}")]
    Storage {
        /// The operation and the subject, e.g. "append to the WAL in /data/wal".
        what: String,
        /// The underlying error, as text.
        message: String,
    },
    /// openraft reported an error (membership change refused, fatal core error, ...).
    #[error("raft: {what}: {message}")]
    Raft {
        /// The operation, e.g. "change_membership".
        what: &'static str,
        /// openraft's error, as text.
        message: String,
    },
    /// The Raft TCP transport failed (bind, connect, malformed frame).
    #[error("transport: {what}: {message}")]
    Transport {
        /// The operation and the peer, e.g. "connect to node 2 at 127.0.0.1:7002".
        what: String,
        /// The underlying error, as text.
        message: String,
    },
    /// The configuration is invalid; the node did not start.
    #[error("config: field `{field}`: {message}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// Why it is invalid.
        message: String,
    },
    /// A membership request is invalid (id reused, unknown id, removing the last voter).
    #[error("membership: {0}")]
    Membership(String),
    /// The operation did not finish in time; it may still take effect.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The node is shutting down; the operation was not started or its result is unknown.
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// The node's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds a [`Error::Transport`] from any displayable error.
    pub(crate) fn transport(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Error::Transport {
            what: what.into(),
            message: err.to_string(),
        }
    }
}

impl Error {
    /// Builds a [`Error::Storage`] from any displayable error.
    pub(crate) fn storage(what: impl Into<String>, err: impl std::fmt::Display) -> Self {
        Error::Storage {
            what: what.into(),
            message: err.to_string(),
        }
    }

    /// Builds a [`Error::Raft`] from any displayable openraft error.
    pub(crate) fn raft(what: &'static str, err: impl std::fmt::Display) -> Self {
        Error::Raft {
            what,
            message: err.to_string(),
        }
    }
}
