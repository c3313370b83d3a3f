//! Commands: what a client, a worker or the leader's own duties ask for.
//!
//! A command is a request, not a fact: `decide` turns it into events or refuses it. Commands are
//! never written to the log (only the events are), so this type may change freely.

use serde::{Deserialize, Serialize};

use crate::{
    ExitRecord, FenceToken, IdempotencyKey, JobId, JobSpec, NodeId, Term, WorkerId, WorkflowRef,
};

/// A request to the state machine, validated by `decide` on the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Submit a job, optionally under an idempotency key.
    SubmitJob {
        /// The key, scoped by namespace.
        idempotency_key: Option<IdempotencyKey>,
        /// What to run.
        spec: JobSpec,
    },
    /// Cancel a job; a fence token, if given, must match the current one.
    CancelJob {
        /// The job.
        job: JobId,
        /// The fence the client saw.
        fence_token: Option<FenceToken>,
    },
    /// A worker reports on a workflow attempt.
    Report(WorkerReport),
    /// A worker asks for more time for a job it is running.
    RequestExtension {
        /// The job.
        job: JobId,
        /// The worker.
        worker: WorkerId,
        /// The worker's progress counter now.
        progress: u64,
    },
    /// A worker joins with its capacity.
    RegisterWorker {
        /// Its id.
        worker: WorkerId,
        /// Cores it offers (at least 1).
        cores: u32,
        /// Where to reach it.
        address: String,
    },
    /// Membership declared the worker dead.
    WorkerLost {
        /// The worker.
        worker: WorkerId,
    },
    /// Stop giving the worker new work.
    DrainWorker {
        /// The worker.
        worker: WorkerId,
    },
    /// Assign one pending workflow, to `worker` or to the live worker with the most free cores.
    DispatchWorkflow {
        /// The job.
        job: JobId,
        /// The workflow.
        workflow: crate::WorkflowId,
        /// The worker, or `None` to choose.
        worker: Option<WorkerId>,
    },
    /// Leader duty: assign pending workflows (oldest job first) while workers have room.
    DispatchPending {
        /// At most this many assignments in one proposal.
        max_assignments: u32,
    },
    /// Leader duty: this node just became leader in `term`; raise the fence.
    BecomeLeader {
        /// The new term.
        term: Term,
        /// This node.
        node: NodeId,
    },
    /// Leader duty: declare every overdue or stuck job timed out, every workflow past its own
    /// timeout failed, and every cancel past its grace period finished.
    CheckTimeouts,
    /// Leader duty: forget committed idempotency keys past their TTL.
    ExpireIdempotency,
}

/// A worker's report about one workflow attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerReport {
    /// The reporting worker.
    pub worker: WorkerId,
    /// The attempt reported on.
    pub target: WorkflowRef,
    /// What happened.
    pub kind: ReportKind,
    /// How the process ended, with a completed, failed or cancelled report (recorded as a
    /// `WorkflowExited` event before the report's own event; ignored with other kinds).
    #[serde(default)]
    pub exit: Option<ExitRecord>,
}

/// What a worker reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// The process started.
    Started,
    /// Progress counter (must grow).
    Progress {
        /// The counter.
        progress: u64,
    },
    /// Exit status 0.
    Completed,
    /// Failure.
    Failed {
        /// What went wrong.
        error: String,
        /// Exit code, if it exited.
        exit_code: Option<i32>,
    },
    /// Stopped after a cancel.
    Cancelled,
}
