//! Newtypes for every identifier and position in the job domain.
//!
//! They are plain integers (or a pair of strings for idempotency keys) with serde derives that
//! serialize transparently, so JSON shows `42`, not `{"0":42}`. Nothing here allocates ids: job
//! ids are derived at apply from the log index (see [`JobId::from_position`]), worker ids are
//! chosen by the worker, fence tokens are raised by `LeaderChanged`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::JOBS_PER_PROPOSAL_MAX;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}", self.0)
            }
        }
    };
}

id_newtype!(
    /// Position of an entry in the replicated log (Raft log index, starting at 1).
    LogIndex(u64)
);
id_newtype!(
    /// A job's id: `log_index * 1000 + ordinal`, where `ordinal` counts the `JobSubmitted`
    /// events before it in the same proposal. Decimal on purpose: job `57003` is the fourth job
    /// submitted in log entry 57.
    JobId(u64)
);
id_newtype!(
    /// A workflow's position in its job's spec (0-based); unique only within one job.
    WorkflowId(u32)
);
id_newtype!(
    /// A worker's id, chosen by the worker agent and stable across its restarts.
    WorkerId(u64)
);
id_newtype!(
    /// A manager's Raft node id.
    NodeId(u64)
);
id_newtype!(
    /// A Raft term.
    Term(u64)
);
id_newtype!(
    /// The cluster-wide fence token: raised by one at every `LeaderChanged`, carried by
    /// dispatches, cancels and timeout declarations. There is only this one counter, so two
    /// tokens are always comparable.
    FenceToken(u64)
);
id_newtype!(
    /// Dispatch attempt of a workflow: 0 before the first dispatch, raised by one at each
    /// dispatch. Worker reports carry it so that a report about an old attempt is refused.
    Attempt(u32)
);

impl JobId {
    /// The job id for the `ordinal`-th job submitted in the entry at `index`, or `None` when
    /// `ordinal` is at or past [`JOBS_PER_PROPOSAL_MAX`] or the id would overflow.
    pub fn from_position(index: LogIndex, ordinal: u32) -> Option<JobId> {
        if u64::from(ordinal) >= JOBS_PER_PROPOSAL_MAX {
            return None;
        }
        index
            .0
            .checked_mul(JOBS_PER_PROPOSAL_MAX)
            .and_then(|base| base.checked_add(u64::from(ordinal)))
            .map(JobId)
    }

    /// The log index of the entry that created this job.
    pub fn log_index(self) -> LogIndex {
        LogIndex(self.0 / JOBS_PER_PROPOSAL_MAX)
    }

    /// How many jobs its entry submitted before it (the `ordinal` of [`JobId::from_position`]).
    pub fn ordinal(self) -> u32 {
        // The remainder is below JOBS_PER_PROPOSAL_MAX (1000), so it fits.
        (self.0 % JOBS_PER_PROPOSAL_MAX) as u32
    }
}

/// An idempotency key scoped by the client's namespace: the same `key` in two namespaces names
/// two different submissions.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyKey {
    /// The client namespace (for example a team or a CI project). May be empty.
    pub namespace: String,
    /// The client's key, unique within its namespace for the key's TTL.
    pub key: String,
}

impl IdempotencyKey {
    /// A key in `namespace`.
    pub fn new(namespace: impl Into<String>, key: impl Into<String>) -> IdempotencyKey {
        IdempotencyKey {
            namespace: namespace.into(),
            key: key.into(),
        }
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.namespace, self.key)
    }
}

/// FNV-1a 64-bit hash of a submission's canonical encoding; equal bodies have equal hashes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    bincode::Encode,
    bincode::Decode,
)]
#[serde(transparent)]
pub struct BodyHash(pub u64);

impl fmt::Display for BodyHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_is_decimal_position() {
        let id = JobId::from_position(LogIndex(57), 3).unwrap();
        assert_eq!(id, JobId(57_003));
        assert_eq!(id.log_index(), LogIndex(57));
        assert_eq!(id.ordinal(), 3);
        assert_eq!(JobId::from_position(LogIndex(1), 1000), None);
        assert_eq!(JobId::from_position(LogIndex(u64::MAX), 0), None);
    }

    #[test]
    fn ids_serialize_as_plain_numbers() {
        let json = serde_json::to_string(&(JobId(7), FenceToken(3))).unwrap();
        assert_eq!(json, "[7,3]");
    }
}
