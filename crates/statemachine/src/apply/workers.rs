//! Worker events: registration, loss, draining, and the extension grants and denials they ask
//! for.

use std::sync::Arc;

use crate::apply::jobs::live_job;
use crate::apply::{Applied, Context};
use crate::limits::EXTENSION_DENIALS_FOR_EVICTION;
use crate::limits::{extension_grant_ms, ADDRESS_BYTES_MAX, CORES_MAX, EXTENSIONS_MAX};
use crate::{
    DenialReason, FailureCause, Happening, JobId, JobStatus, Outcome, Rejection, State, Worker,
    WorkerId, WorkerStatus, WorkflowStatus,
};

pub(super) fn register(
    state: &mut State,
    context: &mut Context<'_>,
    worker_id: WorkerId,
    cores: u32,
    address: &str,
) -> Applied {
    validate_registration(cores, address)?;
    let worker = Worker {
        id: worker_id,
        address: address.to_owned(),
        cores,
        status: WorkerStatus::Live,
        registered_at_ms: context.now_ms,
        lost_at_ms: None,
    };
    state.workers.insert(worker_id, worker);
    context.touch_worker(worker_id);
    Ok(Outcome::Applied)
}

/// Checks a registration's fields; shared with `decide`.
pub(crate) fn validate_registration(cores: u32, address: &str) -> Result<(), Rejection> {
    let invalid = |field: &str, reason: String| Rejection::InvalidField {
        field: field.to_owned(),
        reason,
    };
    if cores == 0 || cores > CORES_MAX * 64 {
        return Err(invalid(
            "cores",
            format!("must be between 1 and {}", CORES_MAX * 64),
        ));
    }
    if address.len() > ADDRESS_BYTES_MAX {
        return Err(invalid(
            "address",
            format!("longer than {ADDRESS_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

pub(super) fn drain(state: &mut State, context: &mut Context<'_>, worker_id: WorkerId) -> Applied {
    let worker = state
        .workers
        .get_mut(&worker_id)
        .ok_or(Rejection::WorkerNotFound { worker: worker_id })?;
    if worker.status == WorkerStatus::Lost {
        return Err(Rejection::WorkerUnavailable {
            worker: worker_id,
            status: worker.status,
        });
    }
    worker.status = WorkerStatus::Draining;
    context.touch_worker(worker_id);
    Ok(Outcome::Applied)
}

/// Marks the worker lost: workflows it was cancelling are cancelled, the others fail their
/// attempt with cause `WorkerLost` (and are retried within budget); its extension trackers are
/// removed from every job that is not finished. Losing a lost worker changes nothing.
pub(super) fn lose(state: &mut State, context: &mut Context<'_>, worker_id: WorkerId) -> Applied {
    let worker = state
        .workers
        .get_mut(&worker_id)
        .ok_or(Rejection::WorkerNotFound { worker: worker_id })?;
    if worker.status == WorkerStatus::Lost {
        return Ok(Outcome::Applied);
    }
    worker.status = WorkerStatus::Lost;
    worker.lost_at_ms = Some(context.now_ms);
    context.touch_worker(worker_id);
    let assigned: Vec<_> = state
        .index
        .assignments
        .get(&worker_id)
        .into_iter()
        .flatten()
        .copied()
        .collect();
    for (job_id, workflow) in assigned {
        let cancelling = state
            .jobs
            .get(&job_id)
            .and_then(|job| job.workflow(workflow))
            .is_some_and(|runtime| runtime.status == WorkflowStatus::Cancelling);
        if cancelling {
            state.update_workflow(context, job_id, workflow, |runtime| {
                runtime.status = WorkflowStatus::Cancelled;
            });
            state.record(context, job_id, Happening::WorkflowCancelled { workflow });
            state.settle(context, job_id);
        } else {
            state.fail_attempt(context, job_id, workflow, FailureCause::WorkerLost, None);
        }
    }
    let active: Vec<JobId> = [JobStatus::Pending, JobStatus::Running]
        .iter()
        .filter_map(|status| state.index.by_status.get(status))
        .flatten()
        .copied()
        .collect();
    for job_id in active {
        if let Some(job) = state.jobs.get_mut(&job_id).map(Arc::make_mut) {
            let removed = job
                .extensions
                .as_mut()
                .and_then(|ext| ext.trackers.remove(&worker_id));
            if removed.is_some() {
                context.touch_job(job_id);
            }
        }
    }
    Ok(Outcome::Applied)
}

/// A grant as proposed.
pub(super) struct Grant {
    pub number: u8,
    pub ms: u64,
    pub progress: u64,
}

pub(super) fn grant_extension(
    state: &mut State,
    context: &mut Context<'_>,
    job_id: JobId,
    worker_id: WorkerId,
    grant: Grant,
) -> Applied {
    let job = live_job(state, job_id)?;
    check_running(state, job_id, worker_id)?;
    let tracker = job.extension_tracker(worker_id);
    let expected = tracker.grants.saturating_add(1);
    let progressed = tracker.grants == 0 || grant.progress > tracker.last_progress;
    if grant.number != expected || extension_grant_ms(expected) != Some(grant.ms) || !progressed {
        return Err(Rejection::StaleExtension {
            job: job_id,
            worker: worker_id,
        });
    }
    let now_ms = context.now_ms;
    if let Some(job) = state.jobs.get_mut(&job_id).map(Arc::make_mut) {
        let extensions = job.extensions_mut();
        let tracker = extensions.trackers.entry(worker_id).or_default();
        tracker.grants = expected;
        tracker.total_granted_ms = tracker.total_granted_ms.saturating_add(grant.ms);
        tracker.last_progress = grant.progress;
        tracker.consecutive_denials = 0;
        let worker_total_ms = tracker.total_granted_ms;
        extensions.total_granted_ms = extensions.total_granted_ms.saturating_add(grant.ms);
        extensions.max_worker_extension_ms =
            extensions.max_worker_extension_ms.max(worker_total_ms);
        extensions.last_extension_at_ms = Some(now_ms);
        job.last_progress_at_ms = now_ms;
    }
    let what = Happening::ExtensionGranted {
        worker: worker_id,
        grant_ms: grant.ms,
    };
    state.record(context, job_id, what);
    Ok(Outcome::ExtensionGranted {
        job: job_id,
        worker: worker_id,
        grant_ms: grant.ms,
        extensions_remaining: EXTENSIONS_MAX.saturating_sub(expected),
    })
}

pub(super) fn deny_extension(
    state: &mut State,
    context: &mut Context<'_>,
    job_id: JobId,
    worker_id: WorkerId,
    reason: DenialReason,
    progress: u64,
) -> Applied {
    let job = live_job(state, job_id)?;
    check_running(state, job_id, worker_id)?;
    let tracker = job.extension_tracker(worker_id);
    if denial_reason(tracker.grants, tracker.last_progress, progress) != Some(reason) {
        return Err(Rejection::StaleExtension {
            job: job_id,
            worker: worker_id,
        });
    }
    let mut denials = 0;
    if let Some(job) = state.jobs.get_mut(&job_id).map(Arc::make_mut) {
        let tracker = job.extensions_mut().trackers.entry(worker_id).or_default();
        tracker.consecutive_denials = tracker.consecutive_denials.saturating_add(1);
        denials = tracker.consecutive_denials;
    }
    state.record(
        context,
        job_id,
        Happening::ExtensionDenied {
            worker: worker_id,
            reason,
        },
    );
    let eviction_candidate = denials >= EXTENSION_DENIALS_FOR_EVICTION;
    if eviction_candidate && !context.report.eviction_candidates.contains(&worker_id) {
        context.report.eviction_candidates.push(worker_id);
    }
    Ok(Outcome::ExtensionDenied {
        job: job_id,
        worker: worker_id,
        reason,
        eviction_candidate,
    })
}

/// Why a request with `progress` would be denied given the tracker, or `None` if granted.
pub(crate) fn denial_reason(grants: u8, last_progress: u64, progress: u64) -> Option<DenialReason> {
    if grants >= EXTENSIONS_MAX {
        Some(DenialReason::MaximumReached)
    } else if grants > 0 && progress <= last_progress {
        Some(DenialReason::NoProgress)
    } else {
        None
    }
}

/// The worker must be running (not merely assigned) a workflow of the job.
pub(crate) fn check_running(
    state: &State,
    job_id: JobId,
    worker_id: WorkerId,
) -> Result<(), Rejection> {
    let running = state.jobs.get(&job_id).is_some_and(|job| {
        job.workflows.iter().any(|runtime| {
            runtime.status == WorkflowStatus::Running && runtime.worker == Some(worker_id)
        })
    });
    if running {
        Ok(())
    } else {
        Err(Rejection::NotRunningJob {
            job: job_id,
            worker: worker_id,
        })
    }
}
