//! Events: the facts the leader proposes and every replica applies, and the proposal that
//! carries them in one Raft log entry.
//!
//! An event is decided once, on the leader, against the state it saw; `apply` re-checks it
//! against the state it finds and may refuse it. Events never carry wall-clock reads of their
//! own: the proposal's `stamp_ms` is the only time. Variants are only ever appended: bincode
//! encodes the variant index, and the codec's schema version says how to read old entries.

use serde::{Deserialize, Serialize};

use crate::{
    Attempt, BodyHash, DenialReason, ExitRecord, FenceToken, IdempotencyKey, JobId, JobSpec,
    NodeId, Term, TimeoutReason, WorkerId, WorkflowId,
};

/// One Raft log entry's payload: events stamped by the leader, applied in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The leader's wall clock in milliseconds when it proposed, made monotonic by the leader
    /// (`max(now, last_stamp)`); `apply` additionally uses `max(stamp, last applied stamp)`.
    pub stamp_ms: u64,
    /// The events, applied one after the other.
    pub events: Vec<Event>,
}

/// Which workflow attempt a worker report or a dispatch is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkflowRef {
    /// The job.
    pub job: JobId,
    /// The workflow within the job.
    pub workflow: WorkflowId,
    /// The attempt the report is about.
    pub attempt: Attempt,
}

/// A fact about the cluster. See `docs/events.md` for when each is appended and what it
/// changes or refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// Reserves an idempotency key for the submission that follows in the same proposal.
    IdempotencyReserved {
        /// The key.
        key: IdempotencyKey,
        /// Hash of the submitted spec.
        body_hash: BodyHash,
    },
    /// A new job; its id is derived from the log index at apply.
    JobSubmitted {
        /// The key reserved just before, if any.
        idempotency_key: Option<IdempotencyKey>,
        /// What to run.
        spec: JobSpec,
    },
    /// A workflow assigned to a worker under the current fence.
    WorkflowDispatched {
        /// The workflow and its new attempt number.
        target: WorkflowRef,
        /// The worker.
        worker: WorkerId,
        /// The fence in force when the leader dispatched.
        fence_token: FenceToken,
    },
    /// The worker started the process.
    WorkflowStarted {
        /// The attempt.
        target: WorkflowRef,
        /// The reporting worker.
        worker: WorkerId,
    },
    /// The worker reports progress (a counter that only grows).
    WorkflowProgress {
        /// The attempt.
        target: WorkflowRef,
        /// The reporting worker.
        worker: WorkerId,
        /// The progress counter.
        progress: u64,
    },
    /// The process exited successfully.
    WorkflowCompleted {
        /// The attempt.
        target: WorkflowRef,
        /// The reporting worker.
        worker: WorkerId,
    },
    /// The process failed; the workflow is retried while the budgets last.
    WorkflowFailed {
        /// The attempt.
        target: WorkflowRef,
        /// The reporting worker.
        worker: WorkerId,
        /// What went wrong (cut to `ERROR_BYTES_MAX`).
        error: String,
        /// Exit code, if the process exited.
        exit_code: Option<i32>,
    },
    /// The worker stopped the process after a cancel.
    WorkflowCancelled {
        /// The attempt.
        target: WorkflowRef,
        /// The reporting worker.
        worker: WorkerId,
    },
    /// A workflow attempt ran past its own timeout; treated as a failure.
    WorkflowTimedOut {
        /// The attempt.
        target: WorkflowRef,
        /// The fence in force when the leader declared it.
        fence_token: FenceToken,
    },
    /// A client asked to cancel the job.
    CancelRequested {
        /// The job.
        job: JobId,
        /// The fence the client saw, if it sent one; it must match.
        fence_token: Option<FenceToken>,
    },
    /// The cancel grace period passed; the job is `Cancelled` whatever its workflows say.
    JobCancelled {
        /// The job.
        job: JobId,
        /// The fence in force when the leader declared it.
        fence_token: FenceToken,
    },
    /// The leader declares the job timed out.
    JobTimedOut {
        /// The job.
        job: JobId,
        /// Overall or stuck.
        reason: TimeoutReason,
        /// The fence in force when the leader declared it.
        fence_token: FenceToken,
    },
    /// A worker got more time for a job.
    ExtensionGranted {
        /// The job.
        job: JobId,
        /// The worker.
        worker: WorkerId,
        /// Which grant this is (1-based).
        grant_number: u8,
        /// The time granted.
        grant_ms: u64,
        /// The worker's progress counter at the request.
        progress: u64,
    },
    /// A worker's request for more time was denied.
    ExtensionDenied {
        /// The job.
        job: JobId,
        /// The worker.
        worker: WorkerId,
        /// Why.
        reason: DenialReason,
        /// The worker's progress counter at the request.
        progress: u64,
    },
    /// A node became leader and raised the fence.
    LeaderChanged {
        /// Its term.
        term: Term,
        /// The new leader.
        leader: NodeId,
        /// One above the previous fence.
        fence_token: FenceToken,
    },
    /// A committed idempotency key passed its TTL and is forgotten.
    IdempotencyExpired {
        /// The key.
        key: IdempotencyKey,
    },
    /// A worker joined (or re-joined, or changed its capacity).
    WorkerRegistered {
        /// The worker.
        worker: WorkerId,
        /// Its cores.
        cores: u32,
        /// Where the node reaches it.
        address: String,
    },
    /// A worker was declared dead; its work is re-queued or failed.
    WorkerLost {
        /// The worker.
        worker: WorkerId,
    },
    /// A worker takes no new work.
    WorkerDrained {
        /// The worker.
        worker: WorkerId,
    },
    /// How an attempt's process ended (code or signal, run time, output tail), appended just
    /// before the attempt's completed, failed or cancelled event. Added in schema version 2.
    WorkflowExited {
        /// The attempt.
        target: WorkflowRef,
        /// The reporting worker.
        worker: WorkerId,
        /// What the worker reported.
        exit: ExitRecord,
    },
}

impl Event {
    /// The variant's snake_case name, for logs and text output.
    pub fn name(&self) -> &'static str {
        match self {
            Event::IdempotencyReserved { .. } => "idempotency_reserved",
            Event::JobSubmitted { .. } => "job_submitted",
            Event::WorkflowDispatched { .. } => "workflow_dispatched",
            Event::WorkflowStarted { .. } => "workflow_started",
            Event::WorkflowProgress { .. } => "workflow_progress",
            Event::WorkflowCompleted { .. } => "workflow_completed",
            Event::WorkflowFailed { .. } => "workflow_failed",
            Event::WorkflowCancelled { .. } => "workflow_cancelled",
            Event::WorkflowTimedOut { .. } => "workflow_timed_out",
            Event::CancelRequested { .. } => "cancel_requested",
            Event::JobCancelled { .. } => "job_cancelled",
            Event::JobTimedOut { .. } => "job_timed_out",
            Event::ExtensionGranted { .. } => "extension_granted",
            Event::ExtensionDenied { .. } => "extension_denied",
            Event::LeaderChanged { .. } => "leader_changed",
            Event::IdempotencyExpired { .. } => "idempotency_expired",
            Event::WorkerRegistered { .. } => "worker_registered",
            Event::WorkerLost { .. } => "worker_lost",
            Event::WorkerDrained { .. } => "worker_drained",
            Event::WorkflowExited { .. } => "workflow_exited",
        }
    }

    /// The job this event is about, if any.
    pub fn job(&self) -> Option<JobId> {
        match self {
            Event::WorkflowDispatched { target, .. }
            | Event::WorkflowStarted { target, .. }
            | Event::WorkflowProgress { target, .. }
            | Event::WorkflowCompleted { target, .. }
            | Event::WorkflowFailed { target, .. }
            | Event::WorkflowCancelled { target, .. }
            | Event::WorkflowTimedOut { target, .. }
            | Event::WorkflowExited { target, .. } => Some(target.job),
            Event::CancelRequested { job, .. }
            | Event::JobCancelled { job, .. }
            | Event::JobTimedOut { job, .. }
            | Event::ExtensionGranted { job, .. }
            | Event::ExtensionDenied { job, .. } => Some(*job),
            _ => None,
        }
    }
}
