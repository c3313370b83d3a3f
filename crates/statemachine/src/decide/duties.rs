//! The leader's duties as pure scans over the state: dispatch, timeout checks (including the
//! cancel grace period and per-workflow timeouts) and idempotency expiry.
//!
//! Each returns the events to propose, bounded per proposal; the node calls them on its timers.

use std::collections::BTreeMap;

use crate::apply::jobs::live_job;
use crate::apply::workflows::check_capacity;
use crate::limits::{EXPIRIES_PER_PROPOSAL_MAX, TIMEOUTS_PER_PROPOSAL_MAX};
use crate::{
    Attempt, Event, IdempotencyKey, JobId, JobStatus, Rejection, State, WorkerId, WorkerStatus,
    WorkflowId, WorkflowRef, WorkflowStatus,
};

/// Dispatches one pending workflow to `worker`, or to the live worker with the most free cores.
pub(super) fn dispatch_one(
    state: &State,
    job: JobId,
    workflow: WorkflowId,
    worker: Option<WorkerId>,
) -> Result<Event, Rejection> {
    let record = live_job(state, job)?;
    if record.is_cancelling() {
        return Err(Rejection::JobCancelling { job });
    }
    let runtime = record
        .workflow(workflow)
        .ok_or(Rejection::WorkflowNotFound { job, workflow })?;
    if runtime.status != WorkflowStatus::Pending {
        return Err(Rejection::InvalidTransition {
            job,
            workflow,
            from: runtime.status,
            action: "dispatch".to_owned(),
        });
    }
    let cores_needed = record
        .spec()
        .workflow_limits(workflow.0 as usize)
        .map_or(1, |limits| limits.cores);
    let worker = match worker {
        Some(worker) => {
            check_capacity(state, worker, cores_needed)?;
            worker
        }
        None => pick_worker(&free_cores(state), cores_needed)
            .ok_or(Rejection::NoCapacity { cores_needed })?,
    };
    let target = WorkflowRef {
        job,
        workflow,
        attempt: Attempt(runtime.attempt.0.saturating_add(1)),
    };
    Ok(Event::WorkflowDispatched {
        target,
        worker,
        fence_token: state.globals().fence_token,
    })
}

/// Assigns pending workflows, oldest job first, while live workers have room.
pub(super) fn dispatch_pending(state: &State, max_assignments: u32) -> Vec<Event> {
    let mut free = free_cores(state);
    let mut events = Vec::new();
    for &(job, workflow) in &state.index.pending_workflows {
        if events.len() >= max_assignments as usize || free.is_empty() {
            break;
        }
        let Some(record) = state.job(job) else {
            continue;
        };
        let (Some(limits), Some(runtime)) = (
            record.spec().workflow_limits(workflow.0 as usize),
            record.workflow(workflow),
        ) else {
            continue;
        };
        let Some(worker) = pick_worker(&free, limits.cores) else {
            continue;
        };
        if let Some(cores) = free.get_mut(&worker) {
            *cores -= limits.cores;
        }
        let target = WorkflowRef {
            job,
            workflow,
            attempt: Attempt(runtime.attempt.0.saturating_add(1)),
        };
        let fence_token = state.globals().fence_token;
        events.push(Event::WorkflowDispatched {
            target,
            worker,
            fence_token,
        });
    }
    events
}

fn free_cores(state: &State) -> BTreeMap<WorkerId, u32> {
    state
        .workers()
        .filter(|worker| worker.status == WorkerStatus::Live)
        .map(|worker| {
            (
                worker.id,
                worker.cores.saturating_sub(state.cores_used(worker.id)),
            )
        })
        .filter(|(_, free)| *free > 0)
        .collect()
}

/// The worker with the most free cores that fits, lowest id on ties.
fn pick_worker(free: &BTreeMap<WorkerId, u32>, cores_needed: u32) -> Option<WorkerId> {
    free.iter()
        .filter(|(_, cores)| **cores >= cores_needed)
        .max_by(|(id_a, cores_a), (id_b, cores_b)| cores_a.cmp(cores_b).then(id_b.cmp(id_a)))
        .map(|(id, _)| *id)
}

/// Every job whose cancel grace passed, every overdue or stuck job, every workflow attempt past
/// its own timeout, at `now_ms`.
pub(super) fn check_timeouts(state: &State, now_ms: u64) -> Vec<Event> {
    let fence_token = state.globals().fence_token;
    let grace_ms = state.globals().config.cancel_grace_ms;
    let mut events = Vec::new();
    let active = [JobStatus::Pending, JobStatus::Running]
        .into_iter()
        .filter_map(|status| state.index.by_status.get(&status))
        .flatten();
    for &job in active {
        if events.len() >= TIMEOUTS_PER_PROPOSAL_MAX {
            break;
        }
        let Some(record) = state.job(job) else {
            continue;
        };
        if let Some(requested_at_ms) = record.cancel_requested_at_ms {
            let job_grace_ms = record.spec().cancel_grace_ms_or(grace_ms);
            if now_ms >= requested_at_ms.saturating_add(job_grace_ms) {
                events.push(Event::JobCancelled { job, fence_token });
            }
            continue;
        }
        if let Some(reason) = record.timeout_due(now_ms) {
            events.push(Event::JobTimedOut {
                job,
                reason,
                fence_token,
            });
            continue;
        }
        for workflow in
            record.workflow_ids_with(|runtime| runtime.status == WorkflowStatus::Running)
        {
            if record.workflow_timeout_due(workflow, now_ms) {
                let attempt = record.workflow(workflow).map_or(Attempt(0), |r| r.attempt);
                let target = WorkflowRef {
                    job,
                    workflow,
                    attempt,
                };
                events.push(Event::WorkflowTimedOut {
                    target,
                    fence_token,
                });
            }
        }
    }
    events
}

/// Every idempotency key whose expiry is at or before `now_ms`.
pub(super) fn expire_keys(state: &State, now_ms: u64) -> Vec<Event> {
    state
        .index
        .key_expiry
        .iter()
        .take_while(|(expires_at_ms, _)| *expires_at_ms <= now_ms)
        .take(EXPIRIES_PER_PROPOSAL_MAX)
        .map(|(_, key)| Event::IdempotencyExpired {
            key: IdempotencyKey::clone(key),
        })
        .collect()
}
