//! What `apply` reports: one [`Outcome`] per event (what to answer the client) and, per
//! applied proposal, what was touched (so the node persists exactly the changed records) and
//! what the workers must be told.
//!
//! Nothing here is persisted; an outcome lives only until the node has answered and saved.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{
    DenialReason, FenceToken, IdempotencyKey, JobId, JobStatus, LogIndex, NodeId, Rejection, Term,
    WorkerId, WorkflowId, WorkflowRef,
};

/// The result of applying one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new job was created.
    JobAccepted {
        /// Its id.
        job: JobId,
    },
    /// The idempotency key is live with an equal body: this is the original job, unchanged.
    Duplicate {
        /// The original job.
        job: JobId,
        /// Its status now.
        status: JobStatus,
    },
    /// The cancel was accepted (or had been: `already_cancelled`); nothing was overwritten.
    CancelAccepted {
        /// The job.
        job: JobId,
        /// A cancel had been requested before; nothing changed.
        already_cancelled: bool,
        /// The job's status after the cancel (`Cancelled` when nothing was left running).
        status: JobStatus,
    },
    /// The job had already completed, failed, timed out or been cancelled; it is unchanged.
    AlreadyTerminal {
        /// The job.
        job: JobId,
        /// Its final status.
        status: JobStatus,
    },
    /// An extension was granted.
    ExtensionGranted {
        /// The job.
        job: JobId,
        /// The worker.
        worker: WorkerId,
        /// Time granted.
        grant_ms: u64,
        /// Grants left for this worker on this job.
        extensions_remaining: u8,
    },
    /// An extension was denied.
    ExtensionDenied {
        /// The job.
        job: JobId,
        /// The worker.
        worker: WorkerId,
        /// Why.
        reason: DenialReason,
        /// Three or more denials in a row: the leader may evict the worker.
        eviction_candidate: bool,
    },
    /// The fence was raised.
    LeaderChanged {
        /// The term.
        term: Term,
        /// The leader.
        leader: NodeId,
        /// The new fence.
        fence_token: FenceToken,
    },
    /// The event was applied and has nothing more to say.
    Applied,
    /// The event was refused; the state is unchanged.
    Rejected {
        /// Why.
        reason: Rejection,
    },
}

impl Outcome {
    /// The answer for a command whose events produced `outcomes`: the first rejection if any,
    /// else the last outcome that says more than [`Outcome::Applied`], else `Applied`.
    pub fn for_command(outcomes: &[Outcome]) -> Outcome {
        if let Some(rejected) = outcomes.iter().find(|outcome| outcome.is_rejected()) {
            return rejected.clone();
        }
        outcomes
            .iter()
            .rev()
            .find(|outcome| !matches!(outcome, Outcome::Applied))
            .cloned()
            .unwrap_or(Outcome::Applied)
    }

    /// True for [`Outcome::Rejected`].
    pub fn is_rejected(&self) -> bool {
        matches!(self, Outcome::Rejected { .. })
    }
}

/// Records an applied proposal changed; the node rewrites (or deletes, when the lookup now
/// returns `None`) exactly these, in one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touched {
    /// Jobs changed (created, transitioned, compacted), or whose bound idempotency entry expired.
    pub jobs: BTreeSet<JobId>,
    /// Idempotency entries changed or removed.
    pub idempotency_keys: BTreeSet<IdempotencyKey>,
    /// Workers changed.
    pub workers: BTreeSet<WorkerId>,
    /// Output records written or dropped, by (job, workflow).
    pub outputs: BTreeSet<(JobId, WorkflowId)>,
    /// The globals changed (always true for an applied proposal: the last index moves).
    pub globals: bool,
}

/// A workflow attempt a worker must stop (its job was cancelled, timed out, or finished).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StopOrder {
    /// The worker running it.
    pub worker: WorkerId,
    /// The attempt.
    pub target: WorkflowRef,
    /// The fence in force.
    pub fence_token: FenceToken,
}

/// Everything `apply` reports for one proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// The log index applied.
    pub index: LogIndex,
    /// One outcome per event, in order.
    pub outcomes: Vec<Outcome>,
    /// Records changed.
    pub touched: Touched,
    /// Workflow attempts the node must tell workers to stop.
    pub stop_orders: Vec<StopOrder>,
    /// Workers that reached the denial threshold in this proposal.
    pub eviction_candidates: Vec<WorkerId>,
}

impl ApplyReport {
    pub(crate) fn new(index: LogIndex, events: usize) -> ApplyReport {
        ApplyReport {
            index,
            outcomes: Vec::with_capacity(events),
            touched: Touched::default(),
            stop_orders: Vec::new(),
            eviction_candidates: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_outcome_prefers_rejection_then_the_most_specific() {
        let accepted = Outcome::JobAccepted { job: JobId(1000) };
        let rejected = Outcome::Rejected {
            reason: Rejection::TooManyJobs,
        };
        assert_eq!(
            Outcome::for_command(&[Outcome::Applied, accepted.clone()]),
            accepted
        );
        assert_eq!(
            Outcome::for_command(&[accepted, rejected.clone()]),
            rejected
        );
        assert_eq!(Outcome::for_command(&[]), Outcome::Applied);
    }
}
