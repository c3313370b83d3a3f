//! The job record: spec, status, timeout tracking, extensions, per-workflow runtime state and a
//! bounded timeline.
//!
//! This is plain data with small read-only helpers; transitions are made by `apply`, which also
//! keeps the secondary indexes in step.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::state::stored_spec::StoredSpec;
use crate::state::timeline::{Base, Timeline};
use crate::{
    Attempt, DenialReason, FenceToken, IdempotencyKey, JobId, JobSpec, JobStatus, LogIndex,
    TimeoutReason, WorkerId, WorkflowId, WorkflowStatus,
};

/// A job: everything the replicated state knows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// The idempotency key it was submitted under; while the key is live, the same allocation
    /// as its entry's.
    pub idempotency_key: Option<Arc<IdempotencyKey>>,
    /// As submitted, packed (after compaction without labels, argv and env); see
    /// [`Job::spec`].
    pub(crate) spec: StoredSpec,
    /// Current status.
    pub status: JobStatus,
    /// Stamp of the submission.
    pub submitted_at_ms: u64,
    /// Start of timeout tracking (the submission); kept across leader changes.
    pub started_at_ms: u64,
    /// Last workflow transition, progress report or extension grant.
    pub last_progress_at_ms: u64,
    /// When it became terminal.
    pub finished_at_ms: Option<u64>,
    /// When a cancel was first accepted.
    pub cancel_requested_at_ms: Option<u64>,
    /// Set when it timed out.
    pub timed_out: Option<TimeoutRecord>,
    /// Re-dispatches spent from the job's retry budget.
    pub retries_used: u32,
    /// Extension tracking, boxed and absent until the first request (most jobs never ask).
    pub extensions: Option<Box<JobExtensions>>,
    /// Runtime state of each workflow, parallel to the spec's workflows.
    pub workflows: Vec<WorkflowState>,
    /// What happened to it, oldest first, bounded and encoded; see [`Job::timeline`].
    pub(crate) timeline: Timeline,
    /// Compacted to a summary: timeline, commands, env and labels were dropped.
    pub compacted: bool,
}

/// How and when a job timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutRecord {
    /// Overall or stuck.
    pub reason: TimeoutReason,
    /// The stamp at which it was applied.
    pub at_ms: u64,
    /// The fence of the declaring leader.
    pub fence_token: FenceToken,
}

/// Extension tracking for one job (AD-26 with AD-34's job totals).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobExtensions {
    /// Sum of all grants; adds to the overall timeout.
    pub total_granted_ms: u64,
    /// Largest total granted to one worker.
    pub max_worker_extension_ms: u64,
    /// Stamp of the last grant.
    pub last_extension_at_ms: Option<u64>,
    /// Per-worker trackers; removed when the worker is lost.
    pub trackers: BTreeMap<WorkerId, ExtensionTracker>,
}

/// One worker's extension history on one job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionTracker {
    /// Grants so far (at most `EXTENSIONS_MAX`).
    pub grants: u8,
    /// Time granted to this worker.
    pub total_granted_ms: u64,
    /// Progress counter at the last grant.
    pub last_progress: u64,
    /// Denials since the last grant.
    pub consecutive_denials: u8,
}

/// Runtime state of one workflow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowState {
    /// Current status.
    pub status: WorkflowStatus,
    /// Current attempt (0 before the first dispatch).
    pub attempt: Attempt,
    /// Re-dispatches spent from this workflow's budget.
    pub retries_used: u32,
    /// Worker of the current attempt.
    pub worker: Option<WorkerId>,
    /// Fence of the current attempt's dispatch.
    pub fence_token: Option<FenceToken>,
    /// When the current attempt started running.
    pub started_at_ms: Option<u64>,
    /// When the workflow reached a terminal status (completed, failed, cancelled); cleared by
    /// each dispatch, so it belongs to the current attempt.
    pub finished_at_ms: Option<u64>,
    /// Progress counter of the current attempt.
    pub progress: u64,
    /// The last failure, boxed: most workflows never fail.
    pub failure: Option<Box<Failure>>,
}

/// What a worker reported about a failed attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The message (cut to `ERROR_BYTES_MAX`).
    pub error: String,
    /// The exit code, if the process exited.
    pub exit_code: Option<i32>,
}

/// One line of a job's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// The log entry that caused it.
    pub index: LogIndex,
    /// Its stamp (as applied).
    pub at_ms: u64,
    /// What happened.
    pub what: Happening,
}

/// What happened to a job, in summary; derived facts (job finished, workflow retried) appear
/// here although they are not events of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Happening {
    /// The job was submitted.
    Submitted,
    /// A workflow attempt was dispatched.
    Dispatched {
        /// The workflow.
        workflow: WorkflowId,
        /// The attempt.
        attempt: Attempt,
        /// The worker.
        worker: WorkerId,
        /// The fence token the dispatch carried (the leadership term's token), so a timeline
        /// shows which leadership sent each attempt.
        fence_token: FenceToken,
    },
    /// A workflow attempt started.
    Started {
        /// The workflow.
        workflow: WorkflowId,
        /// The attempt.
        attempt: Attempt,
    },
    /// Progress (consecutive reports of one workflow are merged into the latest).
    Progress {
        /// The workflow.
        workflow: WorkflowId,
        /// The counter.
        progress: u64,
    },
    /// A workflow completed.
    WorkflowCompleted {
        /// The workflow.
        workflow: WorkflowId,
    },
    /// A workflow attempt failed (or timed out, or its worker was lost).
    WorkflowFailed {
        /// The workflow.
        workflow: WorkflowId,
        /// The attempt.
        attempt: Attempt,
        /// Why.
        cause: FailureCause,
        /// It went back to `Pending` (budget left) rather than to `Failed`.
        retried: bool,
    },
    /// A workflow was stopped.
    WorkflowCancelled {
        /// The workflow.
        workflow: WorkflowId,
    },
    /// A cancel was accepted.
    CancelRequested,
    /// An extension was granted.
    ExtensionGranted {
        /// The worker.
        worker: WorkerId,
        /// Time granted.
        grant_ms: u64,
    },
    /// An extension was denied.
    ExtensionDenied {
        /// The worker.
        worker: WorkerId,
        /// Why.
        reason: DenialReason,
    },
    /// The job timed out.
    TimedOut {
        /// Overall or stuck.
        reason: TimeoutReason,
        /// The declaring leader's fence.
        fence_token: FenceToken,
    },
    /// The job reached a terminal status.
    Finished {
        /// The status.
        status: JobStatus,
    },
}

/// Why a workflow attempt ended badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// The worker reported a failure.
    Reported,
    /// The attempt ran past its own timeout.
    TimedOut,
    /// Its worker was lost.
    WorkerLost,
}

impl Job {
    /// A new pending job; `stored` is `StoredSpec::new(spec)`, passed in because it may have
    /// been made ahead (ADR 0023).
    pub(crate) fn new(
        id: JobId,
        idempotency_key: Option<Arc<IdempotencyKey>>,
        spec: &JobSpec,
        stored: StoredSpec,
        now_ms: u64,
        timeline_entries_max: u32,
    ) -> Job {
        let workflows = vec![WorkflowState::default(); spec.workflows.len()];
        // Room for a clean run (submitted, then dispatched, started, progress, done per
        // workflow, then finished) so the timeline is allocated once; finishing trims it.
        let expected = 2 + 4 * spec.workflows.len();
        let timeline = Timeline::with_capacity(expected.min(timeline_entries_max as usize));
        Job {
            id,
            idempotency_key,
            spec: stored,
            status: JobStatus::Pending,
            submitted_at_ms: now_ms,
            started_at_ms: now_ms,
            last_progress_at_ms: now_ms,
            finished_at_ms: None,
            cancel_requested_at_ms: None,
            timed_out: None,
            retries_used: 0,
            extensions: None,
            workflows,
            timeline,
            compacted: false,
        }
    }

    /// The spec as stored: limits read in place, text unpacked on demand
    /// ([`StoredSpec::to_spec`]).
    pub fn spec(&self) -> &StoredSpec {
        &self.spec
    }

    /// What happened to it, oldest first (empty once compacted).
    pub fn timeline(&self) -> Vec<TimelineEntry> {
        self.timeline.entries(self.timeline_base())
    }

    /// Timeline lines dropped to keep it bounded (always after the first line).
    pub fn timeline_dropped(&self) -> u32 {
        self.timeline.dropped()
    }

    fn timeline_base(&self) -> Base {
        Base {
            index: self.id.log_index(),
            at_ms: self.submitted_at_ms,
        }
    }

    /// The workflow's runtime state.
    pub fn workflow(&self, workflow: WorkflowId) -> Option<&WorkflowState> {
        self.workflows.get(workflow.0 as usize)
    }

    /// True while a cancel is in progress (requested, job not terminal yet).
    pub fn is_cancelling(&self) -> bool {
        self.cancel_requested_at_ms.is_some() && !self.status.is_terminal()
    }

    /// Sum of all extension grants (0 if none).
    pub fn total_extensions_granted_ms(&self) -> u64 {
        self.extensions
            .as_ref()
            .map_or(0, |extensions| extensions.total_granted_ms)
    }

    /// The worker's extension tracker on this job (all zero if it never asked).
    pub fn extension_tracker(&self, worker: WorkerId) -> ExtensionTracker {
        self.extensions
            .as_ref()
            .and_then(|extensions| extensions.trackers.get(&worker).copied())
            .unwrap_or_default()
    }

    /// The extension record, created on first use.
    pub(crate) fn extensions_mut(&mut self) -> &mut JobExtensions {
        self.extensions.get_or_insert_with(Box::default)
    }

    /// Workflows that ended `Failed`.
    pub fn failed_workflows(&self) -> Vec<WorkflowId> {
        self.workflow_ids_with(|state| state.status == WorkflowStatus::Failed)
    }

    /// Ids of workflows whose state satisfies `predicate`.
    pub fn workflow_ids_with(&self, predicate: impl Fn(&WorkflowState) -> bool) -> Vec<WorkflowId> {
        (0u32..)
            .zip(&self.workflows)
            .filter(|(_, state)| predicate(state))
            .map(|(position, _)| WorkflowId(position))
            .collect()
    }

    /// `now - started_at > timeout + extensions`: the overall timeout condition at `now_ms`.
    pub fn overall_timeout_due(&self, now_ms: u64) -> bool {
        let allowed = self
            .spec
            .timeout_ms()
            .saturating_add(self.total_extensions_granted_ms());
        now_ms.saturating_sub(self.started_at_ms) > allowed
    }

    /// Running and no progress (nor grant) for longer than the stuck threshold at `now_ms`.
    pub fn stuck_due(&self, now_ms: u64) -> bool {
        self.status == JobStatus::Running
            && now_ms.saturating_sub(self.last_progress_at_ms) > self.spec.stuck_threshold_ms()
    }

    /// The timeout condition that holds at `now_ms`, overall first.
    pub fn timeout_due(&self, now_ms: u64) -> Option<TimeoutReason> {
        if self.overall_timeout_due(now_ms) {
            Some(TimeoutReason::Overall)
        } else if self.stuck_due(now_ms) {
            Some(TimeoutReason::Stuck)
        } else {
            None
        }
    }

    /// Whether the workflow's current attempt ran past its own timeout (extensions included).
    pub fn workflow_timeout_due(&self, workflow: WorkflowId, now_ms: u64) -> bool {
        let position = workflow.0 as usize;
        let (Some(limits), Some(state)) = (
            self.spec.workflow_limits(position),
            self.workflows.get(position),
        ) else {
            return false;
        };
        match (limits.timeout_ms, state.started_at_ms, state.status) {
            (Some(timeout_ms), Some(started_at_ms), WorkflowStatus::Running) => {
                let allowed = timeout_ms.saturating_add(self.total_extensions_granted_ms());
                now_ms.saturating_sub(started_at_ms) > allowed
            }
            _ => false,
        }
    }

    /// Appends to the timeline (see [`Timeline::record`]).
    pub(crate) fn record(
        &mut self,
        index: LogIndex,
        at_ms: u64,
        what: Happening,
        entries_max: u32,
    ) {
        let base = self.timeline_base();
        let entry = TimelineEntry { index, at_ms, what };
        self.timeline.record(base, entry, entries_max);
    }

    /// Drops what a finished job no longer needs in memory: progress lines, spare capacity.
    pub(crate) fn trim_finished(&mut self) {
        self.timeline.trim_finished();
    }

    /// Compacts a finished job to a summary: drops the timeline, commands, env and labels.
    pub(crate) fn compact(&mut self) {
        self.timeline.clear();
        self.spec = self.spec.compacted();
        for state in &mut self.workflows {
            state.failure = None;
        }
        if let Some(extensions) = &mut self.extensions {
            extensions.trackers.clear();
        }
        self.compacted = true;
    }
}
