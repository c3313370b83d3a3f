//! Job-level events: idempotency reservation and expiry, submission, cancellation, timeouts
//! and leader changes.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::apply::{Applied, Context};
use crate::codec::body_hash;
use crate::prepare::ReadySubmit;
use crate::spec::validate_key;
use crate::state::Indexes;
use crate::{
    BodyHash, Event, FenceToken, Happening, IdempotencyEntry, IdempotencyKey, Job, JobId, JobSpec,
    NodeId, Outcome, Rejection, State, StateConfig, StopOrder, StoredSpec, Term, TimeoutReason,
    TimeoutRecord, WorkflowRef, WorkflowStatus,
};

pub(super) fn reserve_key<'r>(
    state: &mut State,
    context: &mut Context<'r>,
    key: &'r IdempotencyKey,
    hash: BodyHash,
) -> Applied {
    validate_key(key)?;
    let live_keys = state.keys.len() as u64;
    // One search of the key map, not a lookup and then an insert: with a million live keys
    // the string comparisons dominate the fold.
    let slot = match state.keys.entry(key) {
        Entry::Occupied(occupied) => {
            return existing_key_outcome(&state.jobs, occupied.get(), hash)
                .map(|duplicate| duplicate.unwrap_or(Outcome::Applied));
        }
        Entry::Vacant(slot) => slot,
    };
    let live_keys_max = state.globals.config.idempotency_live_keys_max;
    if live_keys >= live_keys_max {
        return Err(Rejection::IdempotencyCapacity { live_keys_max });
    }
    let ttl_ms = state.globals.config.idempotency_ttl_ms;
    let entry = IdempotencyEntry {
        key: Arc::clone(slot.key().shared_key()),
        body_hash: hash,
        job: None,
        reserved_at_ms: context.now_ms,
        committed_at_ms: None,
        expires_at_ms: context.now_ms.saturating_add(ttl_ms),
    };
    state.index.add_key(&entry);
    slot.insert(Arc::new(entry));
    context.touch_key(key);
    context.fresh_reservation = Some((context.position, key));
    Ok(Outcome::Applied)
}

/// For a live key: a conflict if the body differs, the original job if bound, `None` if the
/// reservation is not bound yet.
fn existing_key_outcome(
    jobs: &BTreeMap<JobId, Arc<Job>>,
    entry: &IdempotencyEntry,
    hash: BodyHash,
) -> Result<Option<Outcome>, Rejection> {
    if entry.body_hash != hash {
        return Err(Rejection::IdempotencyConflict {
            key: IdempotencyKey::clone(&entry.key),
            original_job: entry.job,
        });
    }
    Ok(entry.job.and_then(|job| {
        jobs.get(&job).map(|record| Outcome::Duplicate {
            job,
            status: record.status,
        })
    }))
}

pub(super) fn submit(
    state: &mut State,
    context: &mut Context<'_>,
    key: Option<&IdempotencyKey>,
    spec: &JobSpec,
) -> Applied {
    spec.validate()?;
    let ready = context.take_ready();
    // The key's entry is found once and bound below (the fields borrowed are disjoint).
    let mut key_entry = None;
    if let Some(key) = key {
        validate_key(key)?;
        let entry = state
            .keys
            .get_mut(key)
            .ok_or_else(|| Rejection::KeyNotReserved { key: key.clone() })?;
        let hash = if context.reserved_just_before(key) {
            entry.body_hash
        } else {
            ready
                .as_ref()
                .and_then(|ready| ready.body_hash)
                .unwrap_or_else(|| body_hash(spec))
        };
        if let Some(duplicate) = existing_key_outcome(&state.jobs, entry, hash)? {
            return Ok(duplicate);
        }
        key_entry = Some((key, entry));
    }
    let id =
        JobId::from_position(context.index, context.jobs_created).ok_or(Rejection::TooManyJobs)?;
    let parts = (&mut state.jobs, &mut state.index, &state.globals.config);
    let shared_key = key_entry.as_ref().map(|(_, entry)| Arc::clone(&entry.key));
    create_job(parts, context, id, shared_key, spec, ready);
    if let Some((key, entry)) = key_entry {
        state.index.remove_key(entry);
        entry.job = Some(id);
        entry.expires_at_ms = u64::MAX;
        context.touch_key(key);
    }
    Ok(Outcome::JobAccepted { job: id })
}

/// A keyed submit's two events at once, when the first reserves a key that is not live and
/// the second is that key's valid submit: what applying them one after the other does
/// (`Applied`, then `JobAccepted`), with the entry inserted already bound. One search of the key
/// map instead of three, and the key never enters and leaves the expiry index. `None`, having
/// changed nothing, when the pair is anything else; the caller then applies them one by one.
pub(super) fn reserve_and_submit(
    state: &mut State,
    context: &mut Context<'_>,
    first: &Event,
    second: Option<&Event>,
) -> Option<JobId> {
    let (
        Event::IdempotencyReserved { key, body_hash },
        Some(Event::JobSubmitted {
            idempotency_key: Some(submitted_key),
            spec,
        }),
    ) = (first, second)
    else {
        return None;
    };
    if key != submitted_key || validate_key(key).is_err() || spec.validate().is_err() {
        return None;
    }
    if state.keys.len() as u64 >= state.globals.config.idempotency_live_keys_max {
        return None;
    }
    let id = JobId::from_position(context.index, context.jobs_created)?;
    let Entry::Vacant(slot) = state.keys.entry(key) else {
        return None;
    };
    // The submit's own slot of prepared work (the reservation has none).
    context.advance();
    let ready = context.take_ready();
    let parts = (&mut state.jobs, &mut state.index, &state.globals.config);
    let shared_key = Arc::clone(slot.key().shared_key());
    create_job(
        parts,
        context,
        id,
        Some(Arc::clone(&shared_key)),
        spec,
        ready,
    );
    slot.insert(Arc::new(IdempotencyEntry {
        key: shared_key,
        body_hash: *body_hash,
        job: Some(id),
        reserved_at_ms: context.now_ms,
        committed_at_ms: None,
        expires_at_ms: u64::MAX,
    }));
    context.touch_key(key);
    Some(id)
}

/// What creating a job changes: the jobs, the indexes, and the configuration it reads.
type JobsAndIndex<'a> = (
    &'a mut BTreeMap<JobId, Arc<Job>>,
    &'a mut Indexes,
    &'a StateConfig,
);

/// Creates the job of an accepted submit with id `id` and records its submission.
fn create_job(
    (jobs, index, config): JobsAndIndex<'_>,
    context: &mut Context<'_>,
    id: JobId,
    key: Option<Arc<IdempotencyKey>>,
    spec: &JobSpec,
    ready: Option<ReadySubmit>,
) {
    let Entry::Vacant(slot) = jobs.entry(id) else {
        panic!("invariant: job id {id} derived twice: index went backwards");
    };
    context.jobs_created += 1;
    let entries_max = config.timeline_entries_max;
    let stored = ready.map_or_else(|| StoredSpec::new(spec), |ready| ready.stored);
    let mut job = Job::new(id, key, spec, stored, context.now_ms, entries_max);
    job.record(
        context.index,
        context.now_ms,
        Happening::Submitted,
        entries_max,
    );
    index.add_job(&job);
    slot.insert(Arc::new(job));
    context.touch_job(id);
}

pub(super) fn request_cancel(
    state: &mut State,
    context: &mut Context<'_>,
    job_id: JobId,
    fence_token: Option<FenceToken>,
) -> Applied {
    let job = state
        .jobs
        .get(&job_id)
        .ok_or(Rejection::JobNotFound { job: job_id })?;
    match job.status {
        crate::JobStatus::Cancelled => {
            return Ok(Outcome::CancelAccepted {
                job: job_id,
                already_cancelled: true,
                status: job.status,
            })
        }
        status if status.is_terminal() => {
            return Ok(Outcome::AlreadyTerminal {
                job: job_id,
                status,
            })
        }
        _ => {}
    }
    if job.is_cancelling() {
        return Ok(Outcome::CancelAccepted {
            job: job_id,
            already_cancelled: true,
            status: job.status,
        });
    }
    check_fence(state, fence_token)?;
    let fence_token = state.globals.fence_token;
    let mut stopping = Vec::new();
    for workflow in job.workflow_ids_with(|workflow| !workflow.status.is_terminal()) {
        let Some(runtime) = job.workflow(workflow) else {
            continue;
        };
        let next = match (runtime.status.holds_worker(), runtime.worker) {
            (true, Some(worker)) => {
                let target = WorkflowRef {
                    job: job_id,
                    workflow,
                    attempt: runtime.attempt,
                };
                context.report.stop_orders.push(StopOrder {
                    worker,
                    target,
                    fence_token,
                });
                WorkflowStatus::Cancelling
            }
            _ => WorkflowStatus::Cancelled,
        };
        stopping.push((workflow, next));
    }
    if let Some(job) = state.jobs.get_mut(&job_id).map(Arc::make_mut) {
        job.cancel_requested_at_ms = Some(context.now_ms);
    }
    state.index.cancelling.insert(job_id);
    state.record(context, job_id, Happening::CancelRequested);
    for (workflow, next) in stopping {
        state.update_workflow(context, job_id, workflow, |runtime| runtime.status = next);
        if next == WorkflowStatus::Cancelled {
            state.record(context, job_id, Happening::WorkflowCancelled { workflow });
        }
    }
    state.settle(context, job_id);
    let status = state
        .jobs
        .get(&job_id)
        .map(|job| job.status)
        .unwrap_or(crate::JobStatus::Pending);
    Ok(Outcome::CancelAccepted {
        job: job_id,
        already_cancelled: false,
        status,
    })
}

pub(super) fn force_cancel(
    state: &mut State,
    context: &mut Context<'_>,
    job_id: JobId,
    fence_token: FenceToken,
) -> Applied {
    check_fence(state, Some(fence_token))?;
    let job = live_job(state, job_id)?;
    let grace_ms = job
        .spec()
        .cancel_grace_ms_or(state.globals.config.cancel_grace_ms);
    let due = job
        .cancel_requested_at_ms
        .is_some_and(|requested| context.now_ms >= requested.saturating_add(grace_ms));
    if !due {
        let what = format!("cancel grace period of job {job_id} passed");
        return Err(Rejection::ConditionNotMet {
            what,
            at_ms: context.now_ms,
        });
    }
    state.finish(context, job_id, crate::JobStatus::Cancelled);
    Ok(Outcome::Applied)
}

pub(super) fn time_out(
    state: &mut State,
    context: &mut Context<'_>,
    job_id: JobId,
    reason: TimeoutReason,
    fence_token: FenceToken,
) -> Applied {
    check_fence(state, Some(fence_token))?;
    let job = live_job(state, job_id)?;
    if job.is_cancelling() {
        return Err(Rejection::JobCancelling { job: job_id });
    }
    let holds = match reason {
        TimeoutReason::Overall => job.overall_timeout_due(context.now_ms),
        TimeoutReason::Stuck => job.stuck_due(context.now_ms),
    };
    if !holds {
        let what = format!("{reason} timeout of job {job_id}");
        return Err(Rejection::ConditionNotMet {
            what,
            at_ms: context.now_ms,
        });
    }
    let record = TimeoutRecord {
        reason,
        at_ms: context.now_ms,
        fence_token,
    };
    if let Some(job) = state.jobs.get_mut(&job_id).map(Arc::make_mut) {
        job.timed_out = Some(record);
    }
    state.record(
        context,
        job_id,
        Happening::TimedOut {
            reason,
            fence_token,
        },
    );
    state.finish(context, job_id, crate::JobStatus::TimedOut);
    Ok(Outcome::Applied)
}

pub(super) fn expire_key(
    state: &mut State,
    context: &mut Context<'_>,
    key: &IdempotencyKey,
) -> Applied {
    let entry = state
        .keys
        .get(key)
        .ok_or_else(|| Rejection::KeyNotFound { key: key.clone() })?;
    if entry.expires_at_ms > context.now_ms {
        let what = format!("expiry of idempotency key {key}");
        return Err(Rejection::ConditionNotMet {
            what,
            at_ms: context.now_ms,
        });
    }
    state.index.remove_key(entry);
    // The job loses its bound entry: a view that stores a bound entry with its job (the node's
    // sled view, ADR 0017) rewrites that job's record.
    if let Some(job) = entry.job {
        context.touch_job(job);
    }
    state.keys.remove(key);
    context.touch_key(key);
    Ok(Outcome::Applied)
}

pub(super) fn change_leader(
    state: &mut State,
    term: Term,
    leader: NodeId,
    fence_token: FenceToken,
) -> Applied {
    let globals = &mut state.globals;
    if term <= globals.term || fence_token.0 != globals.fence_token.0.saturating_add(1) {
        return Err(Rejection::StaleLeader {
            term,
            fence_token,
            current_term: globals.term,
            current_fence: globals.fence_token,
        });
    }
    globals.term = term;
    globals.leader = Some(leader);
    globals.fence_token = fence_token;
    Ok(Outcome::LeaderChanged {
        term,
        leader,
        fence_token,
    })
}

/// The presented fence, if any, must be the one in force.
pub(crate) fn check_fence(state: &State, presented: Option<FenceToken>) -> Result<(), Rejection> {
    match presented {
        Some(presented) if presented != state.globals.fence_token => {
            Err(Rejection::FenceMismatch {
                presented,
                current: state.globals.fence_token,
            })
        }
        _ => Ok(()),
    }
}

/// The job, which must exist and not be terminal.
pub(crate) fn live_job(state: &State, job_id: JobId) -> Result<&Job, Rejection> {
    let job = state
        .jobs
        .get(&job_id)
        .ok_or(Rejection::JobNotFound { job: job_id })?;
    check_live(job)?;
    Ok(job)
}

/// The job must not be terminal.
pub(crate) fn check_live(job: &Job) -> Result<(), Rejection> {
    if job.status.is_terminal() {
        return Err(Rejection::JobTerminal {
            job: job.id,
            status: job.status,
        });
    }
    Ok(())
}
