//! The small enums of the domain: job, workflow and worker status, timeout and denial reasons.
//!
//! Transition rules live with the code that applies them (`apply`); this module only says which
//! states are terminal. Variants are only ever appended (bincode encodes the variant index).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A job's status. `Pending → Running → {Completed, Failed, Cancelled, TimedOut}`; the last four
/// are terminal and absorbing.
#[derive(
    Debug,
    Clone,
    Copy,
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
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, no workflow dispatched yet.
    Pending,
    /// At least one workflow was dispatched.
    Running,
    /// Every workflow completed.
    Completed,
    /// Every workflow is terminal and at least one did not complete.
    Failed,
    /// Cancelled by a client (all workflows stopped or the grace period passed).
    Cancelled,
    /// Declared timed out by the leader, re-checked at apply.
    TimedOut,
}

impl JobStatus {
    /// Every status, in order (for counts and iteration).
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::TimedOut,
    ];

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Pending | JobStatus::Running)
    }

    /// The snake_case name used in JSON and text output.
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::TimedOut => "timed_out",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A workflow's status. `Pending → Dispatched → Running → {Completed, Failed}`; `Cancelling →
/// Cancelled` from any non-terminal state; `Failed` or lost goes back to `Pending` while the
/// retry budgets last.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
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
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// Waiting for a worker.
    #[default]
    Pending,
    /// Assigned to a worker, not started yet.
    Dispatched,
    /// The worker started the process.
    Running,
    /// Exited successfully.
    Completed,
    /// Failed and out of retry budget (or failed while its job was being cancelled).
    Failed,
    /// Told to stop; the worker has not confirmed yet.
    Cancelling,
    /// Stopped.
    Cancelled,
}

impl WorkflowStatus {
    /// Terminal statuses: `Completed`, `Failed`, `Cancelled`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkflowStatus::Completed | WorkflowStatus::Failed | WorkflowStatus::Cancelled
        )
    }

    /// Statuses in which a worker holds the workflow's cores.
    pub fn holds_worker(self) -> bool {
        matches!(
            self,
            WorkflowStatus::Dispatched | WorkflowStatus::Running | WorkflowStatus::Cancelling
        )
    }

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            WorkflowStatus::Pending => "pending",
            WorkflowStatus::Dispatched => "dispatched",
            WorkflowStatus::Running => "running",
            WorkflowStatus::Completed => "completed",
            WorkflowStatus::Failed => "failed",
            WorkflowStatus::Cancelling => "cancelling",
            WorkflowStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for WorkflowStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A worker's status.
#[derive(
    Debug,
    Clone,
    Copy,
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
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    /// Registered and accepting work.
    Live,
    /// Finishing its current work, receiving none.
    Draining,
    /// Declared dead; its workflows were re-queued or failed.
    Lost,
}

impl fmt::Display for WorkerStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            WorkerStatus::Live => "live",
            WorkerStatus::Draining => "draining",
            WorkerStatus::Lost => "lost",
        })
    }
}

/// Why a job timed out.
#[derive(
    Debug,
    Clone,
    Copy,
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
#[serde(rename_all = "snake_case")]
pub enum TimeoutReason {
    /// `now - started_at > timeout_ms + total_extensions_granted_ms`.
    Overall,
    /// No progress (and no extension grant) for `stuck_threshold_ms`.
    Stuck,
}

impl fmt::Display for TimeoutReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            TimeoutReason::Overall => "overall",
            TimeoutReason::Stuck => "stuck",
        })
    }
}

/// Why an extension request was denied.
#[derive(
    Debug,
    Clone,
    Copy,
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
#[serde(rename_all = "snake_case")]
pub enum DenialReason {
    /// The worker already had every grant ("maximum extensions reached").
    MaximumReached,
    /// Progress did not increase since the last grant ("no progress").
    NoProgress,
}

impl fmt::Display for DenialReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            DenialReason::MaximumReached => "maximum extensions reached",
            DenialReason::NoProgress => "no progress",
        })
    }
}
