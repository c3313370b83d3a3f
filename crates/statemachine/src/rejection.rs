//! Why a command or an event was refused.
//!
//! The same type serves `decide` (the leader refuses a command before proposing it) and `apply`
//! (an event that is no longer valid when it reaches the state machine is recorded as refused,
//! deterministically, and the state is unchanged). It carries no I/O detail: the HTTP layer maps
//! each variant to a status code.

use serde::{Deserialize, Serialize};

use crate::{
    Attempt, FenceToken, IdempotencyKey, JobId, JobStatus, LogIndex, Term, WorkerId, WorkerStatus,
    WorkflowId, WorkflowStatus,
};

/// A refusal, with enough detail to answer the client. Nothing changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// A field of the request is invalid (HTTP 400); `field` is a path like
    /// `workflows[0].command`.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// Path of the offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such job (HTTP 404).
    #[error("job {job} not found")]
    JobNotFound {
        /// The job asked for.
        job: JobId,
    },
    /// The job has no workflow at this position.
    #[error("job {job} has no workflow {workflow}")]
    WorkflowNotFound {
        /// The job.
        job: JobId,
        /// The workflow asked for.
        workflow: WorkflowId,
    },
    /// No such worker.
    #[error("worker {worker} not found")]
    WorkerNotFound {
        /// The worker asked for.
        worker: WorkerId,
    },
    /// The idempotency key is live for a different request body (HTTP 409).
    #[error("idempotency key {key} already used by job {original_job:?} with another body")]
    IdempotencyConflict {
        /// The key.
        key: IdempotencyKey,
        /// The job the key belongs to (`None` while its reservation is not bound yet).
        original_job: Option<JobId>,
    },
    /// The live-key bound is reached; keyed submits are refused until keys expire (HTTP 503).
    #[error("idempotency key capacity of {live_keys_max} reached")]
    IdempotencyCapacity {
        /// The bound.
        live_keys_max: u64,
    },
    /// A `JobSubmitted` with a key that has no reservation (its `IdempotencyReserved` is missing).
    #[error("idempotency key {key} is not reserved")]
    KeyNotReserved {
        /// The key.
        key: IdempotencyKey,
    },
    /// The idempotency key is not live.
    #[error("idempotency key {key} not found")]
    KeyNotFound {
        /// The key.
        key: IdempotencyKey,
    },
    /// The fence token presented does not match the current one (HTTP 409).
    #[error("fence token {presented} does not match the current {current}")]
    FenceMismatch {
        /// Token in the request or event.
        presented: FenceToken,
        /// Token in force.
        current: FenceToken,
    },
    /// `LeaderChanged` for a term not above the current one (one fence raise per term), or whose
    /// fence is not exactly one above the current.
    #[error("stale leader change: term {term} fence {fence_token} (current term {current_term}, fence {current_fence})")]
    StaleLeader {
        /// Term in the event.
        term: Term,
        /// Fence in the event.
        fence_token: FenceToken,
        /// Current term.
        current_term: Term,
        /// Current fence.
        current_fence: FenceToken,
    },
    /// The job is terminal; its status never changes again.
    #[error("job {job} is already {status}")]
    JobTerminal {
        /// The job.
        job: JobId,
        /// Its final status.
        status: JobStatus,
    },
    /// The job is being cancelled; it cannot time out or take new work.
    #[error("job {job} is being cancelled")]
    JobCancelling {
        /// The job.
        job: JobId,
    },
    /// The workflow is not in a state that allows this transition (the race guard).
    #[error("job {job} workflow {workflow}: cannot {action} from {from}")]
    InvalidTransition {
        /// The job.
        job: JobId,
        /// The workflow.
        workflow: WorkflowId,
        /// Its current status.
        from: WorkflowStatus,
        /// What was attempted (`start`, `complete`, ...).
        action: String,
    },
    /// A worker report about another attempt than the current one.
    #[error("job {job} workflow {workflow}: attempt {presented} is not the current {current}")]
    StaleAttempt {
        /// The job.
        job: JobId,
        /// The workflow.
        workflow: WorkflowId,
        /// Attempt in the report.
        presented: Attempt,
        /// Current attempt.
        current: Attempt,
    },
    /// A report from a worker the workflow is not assigned to.
    #[error("job {job} workflow {workflow} is not assigned to worker {worker}")]
    WrongWorker {
        /// The job.
        job: JobId,
        /// The workflow.
        workflow: WorkflowId,
        /// The reporting worker.
        worker: WorkerId,
    },
    /// The worker is not live (draining workers take no new work; lost workers nothing).
    #[error("worker {worker} is {status}")]
    WorkerUnavailable {
        /// The worker.
        worker: WorkerId,
        /// Its status.
        status: WorkerStatus,
    },
    /// The worker lacks free cores for the workflow.
    #[error("worker {worker} has {cores_free} free cores, {cores_needed} needed")]
    InsufficientCapacity {
        /// The worker.
        worker: WorkerId,
        /// Free cores.
        cores_free: u32,
        /// Cores the workflow needs.
        cores_needed: u32,
    },
    /// No live worker has room for the workflow.
    #[error("no worker has {cores_needed} free cores")]
    NoCapacity {
        /// Cores the workflow needs.
        cores_needed: u32,
    },
    /// A leader duty's condition (timeout due, grace passed, key expired) does not hold at the
    /// event's stamp.
    #[error("{what} does not hold at {at_ms} ms")]
    ConditionNotMet {
        /// The condition, in words.
        what: String,
        /// The stamp it was evaluated at.
        at_ms: u64,
    },
    /// The worker runs no workflow of this job, so it cannot ask for an extension.
    #[error("worker {worker} runs no workflow of job {job}")]
    NotRunningJob {
        /// The job.
        job: JobId,
        /// The worker.
        worker: WorkerId,
    },
    /// An extension grant or denial decided on a state that has since changed.
    #[error("extension decision for job {job} worker {worker} is stale")]
    StaleExtension {
        /// The job.
        job: JobId,
        /// The worker.
        worker: WorkerId,
    },
    /// The log entry was applied before (index at or below the last applied).
    #[error("log index {index} already applied (last applied {last_applied})")]
    AlreadyApplied {
        /// Index of the entry.
        index: LogIndex,
        /// Last applied index.
        last_applied: LogIndex,
    },
    /// The proposal creates more jobs than job ids allow per entry.
    #[error("too many jobs in one proposal")]
    TooManyJobs,
}
