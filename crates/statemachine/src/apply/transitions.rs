//! Shared transitions used by several event handlers: workflow and job status changes that keep
//! the indexes in step, the derived finish of a job, retries, and compaction.
//!
//! Callers validate first; these helpers only mutate (they never refuse).

use std::sync::Arc;

use crate::apply::Context;
use crate::state::{Indexes, KeyMap};
use crate::{
    FailureCause, Happening, IdempotencyKey, Job, JobId, JobStatus, State, StopOrder, WorkflowId,
    WorkflowRef, WorkflowState, WorkflowStatus,
};

/// Changes one workflow's runtime state on a job already looked up, keeping the indexes in step,
/// counting the change as progress for stuck detection and, with `what`, adding a timeline line.
pub(crate) fn change_workflow(
    job: &mut Job,
    index: &mut Indexes,
    context: &mut Context<'_>,
    workflow: WorkflowId,
    change: impl FnOnce(&mut WorkflowState),
    what: Option<(Happening, u32)>,
) {
    let position = workflow.0 as usize;
    let cores = job.spec.workflow_cores(position);
    let Some(state) = job.workflows.get_mut(position) else {
        return;
    };
    let before = (state.status, state.worker);
    change(state);
    let after = (state.status, state.worker);
    if after.0.is_terminal() && !before.0.is_terminal() {
        // Stamped here, the one place every status change passes, so no path misses it.
        state.finished_at_ms = Some(context.now_ms);
    }
    if before != after {
        // Only status and worker feed the indexes: progress reports skip the index work.
        index.move_workflow(job.id, workflow, before, after, cores);
    }
    job.last_progress_at_ms = context.now_ms;
    if let Some((what, entries_max)) = what {
        job.record(context.index, context.now_ms, what, entries_max);
    }
    context.touch_job(job.id);
}

/// The status the job finishes with once every workflow is terminal: `Cancelled` if a cancel
/// was requested, `Completed` if every workflow completed, `Failed` otherwise; `None` while it
/// is terminal already or a workflow is still open.
pub(crate) fn settled_status(job: &Job) -> Option<JobStatus> {
    if job.status.is_terminal() || !job.workflows.iter().all(|state| state.status.is_terminal()) {
        return None;
    }
    Some(if job.cancel_requested_at_ms.is_some() {
        JobStatus::Cancelled
    } else if job
        .workflows
        .iter()
        .all(|state| state.status == WorkflowStatus::Completed)
    {
        JobStatus::Completed
    } else {
        JobStatus::Failed
    })
}

impl State {
    /// Changes one workflow's runtime state, keeping the indexes in step and counting the change
    /// as progress for stuck detection.
    pub(crate) fn update_workflow(
        &mut self,
        context: &mut Context<'_>,
        job_id: JobId,
        workflow: WorkflowId,
        change: impl FnOnce(&mut WorkflowState),
    ) {
        if let Some(job) = self.jobs.get_mut(&job_id).map(Arc::make_mut) {
            change_workflow(job, &mut self.index, context, workflow, change, None);
        }
    }

    /// Appends to a job's timeline.
    pub(crate) fn record(&mut self, context: &mut Context<'_>, job_id: JobId, what: Happening) {
        let entries_max = self.globals.config.timeline_entries_max;
        if let Some(job) = self.jobs.get_mut(&job_id).map(Arc::make_mut) {
            job.record(context.index, context.now_ms, what, entries_max);
            context.touch_job(job_id);
        }
    }

    /// Finishes the job when every workflow is terminal (see [`settled_status`]).
    pub(crate) fn settle(&mut self, context: &mut Context<'_>, job_id: JobId) {
        if let Some(status) = self.jobs.get(&job_id).and_then(|job| settled_status(job)) {
            self.finish(context, job_id, status);
        }
    }

    /// Makes the job terminal with `status`: workflows still holding a worker are told to stop
    /// and, like pending ones, become `Cancelled`; the idempotency key is committed. One lookup.
    pub(crate) fn finish(&mut self, context: &mut Context<'_>, job_id: JobId, status: JobStatus) {
        let State {
            globals,
            jobs,
            keys,
            index,
            ..
        } = self;
        let Some(job) = jobs.get_mut(&job_id).map(Arc::make_mut) else {
            return;
        };
        let fence_token = globals.fence_token;
        for (workflow, state) in (0u32..).map(WorkflowId).zip(&job.workflows) {
            if let (false, true, Some(worker)) = (
                state.status.is_terminal(),
                state.status.holds_worker(),
                state.worker,
            ) {
                let target = WorkflowRef {
                    job: job_id,
                    workflow,
                    attempt: state.attempt,
                };
                context.report.stop_orders.push(StopOrder {
                    worker,
                    target,
                    fence_token,
                });
            }
        }
        let open = job.workflow_ids_with(|state| !state.status.is_terminal());
        for workflow in open {
            let cancel = |state: &mut WorkflowState| state.status = WorkflowStatus::Cancelled;
            change_workflow(job, index, context, workflow, cancel, None);
        }
        index.job_status_changed(job_id, job.status, status);
        job.status = status;
        index.cancelling.remove(&job_id);
        let now_ms = context.now_ms;
        let entries_max = globals.config.timeline_entries_max;
        job.record(
            context.index,
            now_ms,
            Happening::Finished { status },
            entries_max,
        );
        job.finished_at_ms = Some(now_ms);
        job.trim_finished();
        index.retained_finished.insert((now_ms, job_id));
        context.touch_job(job_id);
        if let Some(key) = &job.idempotency_key {
            let ttl_ms = globals.config.idempotency_ttl_ms;
            commit_key(keys, index, context, job_id, key, ttl_ms);
        }
    }

    /// A workflow attempt ended badly: back to `Pending` while both retry budgets last (and no
    /// cancel is in progress), else `Failed` (or `Cancelled` if it was being cancelled and its
    /// worker is gone). Then the job may finish.
    pub(crate) fn fail_attempt(
        &mut self,
        context: &mut Context<'_>,
        job_id: JobId,
        workflow: WorkflowId,
        cause: FailureCause,
        error: Option<(String, Option<i32>)>,
    ) {
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        let Some(state) = job.workflow(workflow) else {
            return;
        };
        let attempt = state.attempt;
        let cancelling = job.cancel_requested_at_ms.is_some();
        let retry = !cancelling
            && job.retries_used < job.spec.retry_budget()
            && state.retries_used < job.spec.retry_budget_per_workflow();
        let final_status = if cancelling && cause == FailureCause::WorkerLost {
            WorkflowStatus::Cancelled
        } else {
            WorkflowStatus::Failed
        };
        self.update_workflow(context, job_id, workflow, |state| {
            if let Some((error, exit_code)) = error {
                state.failure = Some(Box::new(crate::Failure { error, exit_code }));
            }
            if retry {
                state.status = WorkflowStatus::Pending;
                state.retries_used += 1;
                state.worker = None;
                state.fence_token = None;
                state.started_at_ms = None;
                state.progress = 0;
            } else {
                state.status = final_status;
            }
        });
        if retry {
            if let Some(job) = self.jobs.get_mut(&job_id).map(Arc::make_mut) {
                job.retries_used += 1;
            }
        }
        let what = Happening::WorkflowFailed {
            workflow,
            attempt,
            cause,
            retried: retry,
        };
        self.record(context, job_id, what);
        self.settle(context, job_id);
    }

    /// Compacts the oldest finished jobs beyond the retention limit.
    pub(crate) fn compact_finished(&mut self, context: &mut Context<'_>) {
        let retained = self.globals.config.retained_finished_jobs;
        while self.index.retained_finished.len() as u64 > retained {
            let Some((_, job_id)) = self.index.retained_finished.pop_first() else {
                break;
            };
            if let Some(job) = self.jobs.get_mut(&job_id).map(Arc::make_mut) {
                job.compact();
                context.touch_job(job_id);
            }
        }
    }
}

/// Starts the TTL of the job's idempotency key, if the key is still bound to it.
fn commit_key(
    keys: &mut KeyMap,
    index: &mut Indexes,
    context: &mut Context<'_>,
    job_id: JobId,
    key: &IdempotencyKey,
    ttl_ms: u64,
) {
    let Some(entry) = keys.get_mut(key) else {
        return;
    };
    if entry.job != Some(job_id) {
        return;
    }
    index.remove_key(entry);
    entry.committed_at_ms = Some(context.now_ms);
    entry.expires_at_ms = context.now_ms.saturating_add(ttl_ms);
    index.add_key(entry);
    context.touch_key(key);
}
