//! Read-only queries for the API and the offline tools: job views, pagination by status,
//! timelines, counts and a state summary.
//!
//! Nothing here mutates or allocates more than the answer; pagination walks the status index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    Attempt, FenceToken, IdempotencyKey, JobId, JobStatus, LogIndex, NodeId, State, Term,
    TimelineEntry, TimeoutRecord, WorkerId, WorkerStatus, WorkflowId, WorkflowStatus,
};

/// One page of job ids; pass `next` as `after` to get the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Job ids in increasing order.
    pub jobs: Vec<JobId>,
    /// The cursor for the next page, if there may be more.
    pub next: Option<JobId>,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// Its id.
    pub id: JobId,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: JobStatus,
    /// A cancel is in progress.
    pub cancelling: bool,
    /// The fence a cancel must present.
    pub fence_token: FenceToken,
    /// Its idempotency key.
    pub idempotency_key: Option<IdempotencyKey>,
    /// Labels (empty once compacted).
    pub labels: BTreeMap<String, String>,
    /// Submission stamp.
    pub submitted_at_ms: u64,
    /// When it became terminal.
    pub finished_at_ms: Option<u64>,
    /// Overall timeout before extensions.
    pub timeout_ms: u64,
    /// Extensions granted in total.
    pub total_extensions_granted_ms: u64,
    /// Largest total granted to one worker.
    pub max_worker_extension_ms: u64,
    /// Workers holding extensions.
    pub workers_with_extensions: u32,
    /// How it timed out, if it did.
    pub timed_out: Option<TimeoutRecord>,
    /// Retries spent from the job's budget.
    pub retries_used: u32,
    /// Workflows that failed.
    pub failed_workflows: Vec<WorkflowId>,
    /// Its workflows.
    pub workflows: Vec<WorkflowView>,
    /// Compacted to a summary.
    pub compacted: bool,
}

/// A workflow as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowView {
    /// Position in the job.
    pub id: WorkflowId,
    /// Name.
    pub name: String,
    /// Status.
    pub status: WorkflowStatus,
    /// Current attempt.
    pub attempt: Attempt,
    /// Worker of the current attempt.
    pub worker: Option<WorkerId>,
    /// Cores it needs.
    pub cores: u32,
    /// Retries spent.
    pub retries_used: u32,
    /// Progress counter.
    pub progress: u64,
    /// Last failure message.
    pub last_error: Option<String>,
    /// Last exit code.
    pub exit_code: Option<i32>,
    /// When the current attempt started running (leader stamp, ms since the Unix epoch).
    pub started_at_ms: Option<u64>,
    /// When the workflow reached a terminal status (leader stamp, ms since the Unix epoch).
    pub finished_at_ms: Option<u64>,
}

/// The state in numbers, for `log replay` and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Last applied index.
    pub last_applied: LogIndex,
    /// Last applied stamp.
    pub last_stamp_ms: u64,
    /// Current term.
    pub term: Term,
    /// Current leader.
    pub leader: Option<NodeId>,
    /// Fence in force.
    pub fence_token: FenceToken,
    /// Jobs per status.
    pub jobs_by_status: BTreeMap<JobStatus, u64>,
    /// Jobs in total.
    pub jobs_total: u64,
    /// Live idempotency keys.
    pub live_idempotency_keys: u64,
    /// The live-key bound.
    pub idempotency_live_keys_max: u64,
    /// Workers per status.
    pub workers_by_status: BTreeMap<WorkerStatus, u64>,
    /// The state hash.
    pub state_hash: u64,
}

impl State {
    /// Jobs with `status` (or all jobs), in id order, strictly after `after`, at most `limit`
    /// (a `limit` of 0 returns an empty page without a cursor).
    pub fn jobs_by_status(
        &self,
        status: Option<JobStatus>,
        after: Option<JobId>,
        limit: usize,
    ) -> Page {
        let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let range = (start, std::ops::Bound::Unbounded);
        let mut jobs: Vec<JobId> = match status {
            None => self
                .jobs
                .range(range)
                .map(|(id, _)| *id)
                .take(limit.saturating_add(1))
                .collect(),
            Some(status) => self
                .index
                .by_status
                .get(&status)
                .map(|set| {
                    set.range(range)
                        .copied()
                        .take(limit.saturating_add(1))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let more = jobs.len() > limit;
        jobs.truncate(limit);
        let next = if more { jobs.last().copied() } else { None };
        Page { jobs, next }
    }

    /// The job's timeline, oldest first (empty once compacted).
    pub fn timeline(&self, job: JobId) -> Option<Vec<TimelineEntry>> {
        self.jobs.get(&job).map(|record| record.timeline())
    }

    /// Number of jobs per status (statuses with no job are absent).
    pub fn counts_by_status(&self) -> BTreeMap<JobStatus, u64> {
        self.index
            .by_status
            .iter()
            .map(|(status, set)| (*status, set.len() as u64))
            .collect()
    }

    /// Number of live idempotency keys.
    pub fn live_idempotency_keys(&self) -> u64 {
        self.keys.len() as u64
    }

    /// The job as the API shows it.
    pub fn job_view(&self, job: JobId) -> Option<JobView> {
        let record = self.jobs.get(&job)?;
        let spec = record.spec.to_spec();
        let workflows = (0u32..)
            .zip(spec.workflows.into_iter().zip(&record.workflows))
            .map(|(position, (spec, runtime))| WorkflowView {
                id: WorkflowId(position),
                name: spec.name,
                status: runtime.status,
                attempt: runtime.attempt,
                worker: runtime.worker,
                cores: spec.cores,
                retries_used: runtime.retries_used,
                progress: runtime.progress,
                last_error: runtime
                    .failure
                    .as_ref()
                    .map(|failure| failure.error.clone()),
                exit_code: runtime
                    .failure
                    .as_ref()
                    .and_then(|failure| failure.exit_code),
                started_at_ms: runtime.started_at_ms,
                finished_at_ms: runtime.finished_at_ms,
            })
            .collect();
        let extensions = record.extensions.as_deref();
        Some(JobView {
            id: record.id,
            name: spec.name,
            status: record.status,
            cancelling: record.is_cancelling(),
            fence_token: self.globals.fence_token,
            idempotency_key: record.idempotency_key.as_deref().cloned(),
            labels: spec.labels,
            submitted_at_ms: record.submitted_at_ms,
            finished_at_ms: record.finished_at_ms,
            timeout_ms: spec.timeout_ms,
            total_extensions_granted_ms: record.total_extensions_granted_ms(),
            max_worker_extension_ms: extensions.map_or(0, |ext| ext.max_worker_extension_ms),
            workers_with_extensions: extensions.map_or(0, |ext| {
                ext.trackers
                    .values()
                    .filter(|tracker| tracker.grants > 0)
                    .count() as u32
            }),
            timed_out: record.timed_out,
            retries_used: record.retries_used,
            failed_workflows: record.failed_workflows(),
            workflows,
            compacted: record.compacted,
        })
    }

    /// Counts, leader, fence, keys and hash. Computing the hash encodes every record (about
    /// 0.3 s per million jobs): fine for the offline tools, too slow for a per-request metric.
    pub fn summary(&self) -> Summary {
        let mut workers_by_status = BTreeMap::new();
        for worker in self.workers.values() {
            *workers_by_status.entry(worker.status).or_insert(0) += 1;
        }
        Summary {
            last_applied: self.globals.last_applied,
            last_stamp_ms: self.globals.last_stamp_ms,
            term: self.globals.term,
            leader: self.globals.leader,
            fence_token: self.globals.fence_token,
            jobs_by_status: self.counts_by_status(),
            jobs_total: self.jobs.len() as u64,
            live_idempotency_keys: self.live_idempotency_keys(),
            idempotency_live_keys_max: self.globals.config.idempotency_live_keys_max,
            workers_by_status,
            state_hash: crate::state_hash(self),
        }
    }
}
