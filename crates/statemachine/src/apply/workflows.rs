//! Workflow-level events: dispatch, the worker's reports, and per-attempt timeouts.

use std::sync::Arc;

use crate::apply::jobs::{check_fence, check_live, live_job};
use crate::apply::transitions::{change_workflow, settled_status};
use crate::apply::{Applied, Context};
use crate::limits::ERROR_BYTES_MAX;
use crate::{
    Attempt, Event, FailureCause, FenceToken, Happening, Job, JobStatus, Outcome, Rejection, State,
    StopOrder, WorkerId, WorkerStatus, WorkflowOutput, WorkflowRef, WorkflowState, WorkflowStatus,
};

pub(super) fn dispatch(
    state: &mut State,
    context: &mut Context<'_>,
    target: WorkflowRef,
    worker_id: WorkerId,
    fence_token: FenceToken,
) -> Applied {
    check_fence(state, Some(fence_token))?;
    let job = live_job(state, target.job)?;
    if job.is_cancelling() {
        return Err(Rejection::JobCancelling { job: target.job });
    }
    let runtime = workflow_of(job, target)?;
    if runtime.status != WorkflowStatus::Pending {
        return Err(invalid(target, runtime.status, "dispatch"));
    }
    let next = Attempt(runtime.attempt.0.saturating_add(1));
    if target.attempt != next {
        return Err(stale(target, next));
    }
    let cores_needed = job.spec.workflow_cores(target.workflow.0 as usize);
    check_capacity(state, worker_id, cores_needed)?;
    let what = Happening::Dispatched {
        workflow: target.workflow,
        attempt: next,
        worker: worker_id,
        fence_token,
    };
    let assign = |runtime: &mut WorkflowState| {
        runtime.status = WorkflowStatus::Dispatched;
        runtime.attempt = next;
        runtime.worker = Some(worker_id);
        runtime.fence_token = Some(fence_token);
        runtime.started_at_ms = None;
        runtime.finished_at_ms = None;
        runtime.progress = 0;
    };
    let entries_max = state.globals.config.timeline_entries_max;
    if let Some(job) = state.jobs.get_mut(&target.job).map(Arc::make_mut) {
        let what = Some((what, entries_max));
        change_workflow(
            job,
            &mut state.index,
            context,
            target.workflow,
            assign,
            what,
        );
        if job.status == JobStatus::Pending {
            state
                .index
                .job_status_changed(target.job, job.status, JobStatus::Running);
            job.status = JobStatus::Running;
        }
    }
    Ok(Outcome::Applied)
}

/// The worker must be live with `cores_needed` free cores.
pub(crate) fn check_capacity(
    state: &State,
    worker_id: WorkerId,
    cores_needed: u32,
) -> Result<(), Rejection> {
    let worker = state
        .workers
        .get(&worker_id)
        .ok_or(Rejection::WorkerNotFound { worker: worker_id })?;
    if worker.status != WorkerStatus::Live {
        return Err(Rejection::WorkerUnavailable {
            worker: worker_id,
            status: worker.status,
        });
    }
    let cores_free = worker.cores.saturating_sub(state.cores_used(worker_id));
    if cores_needed > cores_free {
        return Err(Rejection::InsufficientCapacity {
            worker: worker_id,
            cores_free,
            cores_needed,
        });
    }
    Ok(())
}

/// Checks a worker report against the state: the job is live, the attempt and the worker are
/// the current ones, the transition is allowed and progress grew. Shared with `decide`.
pub(crate) fn check_report(state: &State, event: &Event) -> Result<WorkflowRef, Rejection> {
    let target = report_target(event)?;
    check_report_on(live_job(state, target.job)?, event)
}

/// The attempt a worker report is about.
fn report_target(event: &Event) -> Result<WorkflowRef, Rejection> {
    match event {
        Event::WorkflowStarted { target, .. }
        | Event::WorkflowProgress { target, .. }
        | Event::WorkflowCompleted { target, .. }
        | Event::WorkflowFailed { target, .. }
        | Event::WorkflowCancelled { target, .. }
        | Event::WorkflowExited { target, .. } => Ok(*target),
        _ => {
            let reason = format!("{} is not a worker report", event.name());
            Err(Rejection::InvalidField {
                field: "event".to_owned(),
                reason,
            })
        }
    }
}

/// [`check_report`] on the live job the report is about.
fn check_report_on(job: &Job, event: &Event) -> Result<WorkflowRef, Rejection> {
    let (target, worker, allowed, action): (_, _, &[WorkflowStatus], _) = match event {
        Event::WorkflowStarted { target, worker } => {
            (target, worker, &[WorkflowStatus::Dispatched], "start")
        }
        Event::WorkflowProgress { target, worker, .. } => (
            target,
            worker,
            &[WorkflowStatus::Running],
            "report progress",
        ),
        Event::WorkflowCompleted { target, worker } => (
            target,
            worker,
            &[WorkflowStatus::Running, WorkflowStatus::Cancelling],
            "complete",
        ),
        Event::WorkflowFailed { target, worker, .. } => (
            target,
            worker,
            &[
                WorkflowStatus::Dispatched,
                WorkflowStatus::Running,
                WorkflowStatus::Cancelling,
            ],
            "fail",
        ),
        Event::WorkflowCancelled { target, worker } => (
            target,
            worker,
            &[WorkflowStatus::Cancelling],
            "confirm cancellation",
        ),
        Event::WorkflowExited { target, worker, .. } => (
            target,
            worker,
            &[
                WorkflowStatus::Dispatched,
                WorkflowStatus::Running,
                WorkflowStatus::Cancelling,
            ],
            "record the exit of",
        ),
        _ => return report_target(event),
    };
    let runtime = workflow_of(job, *target)?;
    if runtime.attempt != target.attempt {
        return Err(stale(*target, runtime.attempt));
    }
    if runtime.status.holds_worker() && runtime.worker != Some(*worker) {
        let (job, workflow) = (target.job, target.workflow);
        return Err(Rejection::WrongWorker {
            job,
            workflow,
            worker: *worker,
        });
    }
    if !allowed.contains(&runtime.status) {
        return Err(invalid(*target, runtime.status, action));
    }
    if let Event::WorkflowProgress { progress, .. } = event {
        if *progress <= runtime.progress {
            return Err(invalid(
                *target,
                runtime.status,
                "report progress that did not grow",
            ));
        }
    }
    Ok(*target)
}

/// Applies a worker report. Start, progress and completion (the bulk of the log) look the job
/// up once for the check and the change, and once more only when the job finishes.
pub(super) fn report(state: &mut State, context: &mut Context<'_>, event: &Event) -> Applied {
    let target = report_target(event)?;
    let (job_id, workflow) = (target.job, target.workflow);
    if let Event::WorkflowFailed {
        error, exit_code, ..
    } = event
    {
        check_report(state, event)?;
        let failure = Some((truncate(error, ERROR_BYTES_MAX), *exit_code));
        state.fail_attempt(context, job_id, workflow, FailureCause::Reported, failure);
        return Ok(Outcome::Applied);
    }
    if let Event::WorkflowExited { worker, exit, .. } = event {
        check_report(state, event)?;
        let output = WorkflowOutput {
            job: job_id,
            workflow,
            attempt: target.attempt,
            worker: *worker,
            at_ms: context.now_ms,
            exit: exit.clone().bounded(),
        };
        state.record_output(context, output);
        return Ok(Outcome::Applied);
    }
    let entries_max = state.globals.config.timeline_entries_max;
    let job = state
        .jobs
        .get_mut(&job_id)
        .map(Arc::make_mut)
        .ok_or(Rejection::JobNotFound { job: job_id })?;
    check_live(job)?;
    check_report_on(job, event)?;
    let now_ms = context.now_ms;
    let index = &mut state.index;
    match event {
        Event::WorkflowStarted { .. } => {
            let what = Happening::Started {
                workflow,
                attempt: target.attempt,
            };
            let start = |runtime: &mut WorkflowState| {
                runtime.status = WorkflowStatus::Running;
                runtime.started_at_ms = Some(now_ms);
            };
            change_workflow(
                job,
                index,
                context,
                workflow,
                start,
                Some((what, entries_max)),
            );
        }
        Event::WorkflowProgress { progress, .. } => {
            let progress = *progress;
            let what = Happening::Progress { workflow, progress };
            let report = |runtime: &mut WorkflowState| runtime.progress = progress;
            change_workflow(
                job,
                index,
                context,
                workflow,
                report,
                Some((what, entries_max)),
            );
        }
        _ => {
            let (what, next) = match event {
                Event::WorkflowCompleted { .. } => (
                    Happening::WorkflowCompleted { workflow },
                    WorkflowStatus::Completed,
                ),
                _ => (
                    Happening::WorkflowCancelled { workflow },
                    WorkflowStatus::Cancelled,
                ),
            };
            let end = |runtime: &mut WorkflowState| runtime.status = next;
            change_workflow(
                job,
                index,
                context,
                workflow,
                end,
                Some((what, entries_max)),
            );
            if let Some(status) = settled_status(job) {
                state.finish(context, job_id, status);
            }
        }
    }
    Ok(Outcome::Applied)
}

pub(super) fn time_out(
    state: &mut State,
    context: &mut Context<'_>,
    target: WorkflowRef,
    fence_token: FenceToken,
) -> Applied {
    check_fence(state, Some(fence_token))?;
    let job = live_job(state, target.job)?;
    if job.is_cancelling() {
        return Err(Rejection::JobCancelling { job: target.job });
    }
    let runtime = workflow_of(job, target)?;
    if runtime.attempt != target.attempt {
        return Err(stale(target, runtime.attempt));
    }
    if !job.workflow_timeout_due(target.workflow, context.now_ms) {
        let what = format!("timeout of job {} workflow {}", target.job, target.workflow);
        return Err(Rejection::ConditionNotMet {
            what,
            at_ms: context.now_ms,
        });
    }
    if let Some(worker) = runtime.worker {
        context.report.stop_orders.push(StopOrder {
            worker,
            target,
            fence_token,
        });
    }
    state.fail_attempt(
        context,
        target.job,
        target.workflow,
        FailureCause::TimedOut,
        None,
    );
    Ok(Outcome::Applied)
}

fn workflow_of(job: &Job, target: WorkflowRef) -> Result<&WorkflowState, Rejection> {
    job.workflow(target.workflow)
        .ok_or(Rejection::WorkflowNotFound {
            job: target.job,
            workflow: target.workflow,
        })
}

fn invalid(target: WorkflowRef, from: WorkflowStatus, action: &str) -> Rejection {
    Rejection::InvalidTransition {
        job: target.job,
        workflow: target.workflow,
        from,
        action: action.to_owned(),
    }
}

fn stale(target: WorkflowRef, current: Attempt) -> Rejection {
    Rejection::StaleAttempt {
        job: target.job,
        workflow: target.workflow,
        presented: target.attempt,
        current,
    }
}

/// Cuts `text` to at most `bytes_max` bytes on a character boundary.
pub(crate) fn truncate(text: &str, bytes_max: usize) -> String {
    if text.len() <= bytes_max {
        return text.to_owned();
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
