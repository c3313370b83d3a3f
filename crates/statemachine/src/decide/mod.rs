//! `decide`: the leader turns a command into events, or refuses it, against the state it has
//! applied so far and the time it will stamp on the proposal.
//!
//! `decide` is advisory: the state may change between deciding and applying (other proposals
//! in flight), so `apply` re-checks every event. What `decide` adds is early refusal (a client
//! learns about an invalid spec without a log entry) and the leader duties' scans (timeouts,
//! expiry, dispatch). It never mutates the state and reads no clock: `now_ms` is the stamp the
//! caller will put on the proposal.

mod duties;

use crate::apply::jobs::{check_fence, live_job};
use crate::apply::workers::{check_running, denial_reason, validate_registration};
use crate::apply::workflows::check_report;
use crate::codec::body_hash;
use crate::limits::extension_grant_ms;
use crate::spec::validate_key;
use crate::{Command, Event, JobId, Rejection, ReportKind, State, WorkerReport, WorkerStatus};

/// Decides what to propose for `command` at `now_ms` (the stamp the proposal will carry).
///
/// An empty list means there is nothing to do (for example `DispatchPending` with no room).
/// Commands whose answer depends on the state at apply (a duplicate submit, a second cancel)
/// still produce events, so the answer is always the applied, committed one.
pub fn decide(state: &State, command: Command, now_ms: u64) -> Result<Vec<Event>, Rejection> {
    match command {
        Command::SubmitJob {
            idempotency_key,
            spec,
        } => {
            spec.validate()?;
            let Some(key) = idempotency_key else {
                return Ok(vec![Event::JobSubmitted {
                    idempotency_key: None,
                    spec,
                }]);
            };
            validate_key(&key)?;
            let hash = body_hash(&spec);
            match state.idempotency_entry(&key) {
                Some(entry) if entry.body_hash != hash => {
                    return Err(Rejection::IdempotencyConflict {
                        key,
                        original_job: entry.job,
                    });
                }
                Some(_) => {}
                None => {
                    let live_keys_max = state.globals().config.idempotency_live_keys_max;
                    if state.keys.len() as u64 >= live_keys_max {
                        return Err(Rejection::IdempotencyCapacity { live_keys_max });
                    }
                }
            }
            Ok(vec![
                Event::IdempotencyReserved {
                    key: key.clone(),
                    body_hash: hash,
                },
                Event::JobSubmitted {
                    idempotency_key: Some(key),
                    spec,
                },
            ])
        }
        Command::CancelJob { job, fence_token } => {
            let record = state.job(job).ok_or(Rejection::JobNotFound { job })?;
            if !record.status.is_terminal() && !record.is_cancelling() {
                check_fence(state, fence_token)?;
            }
            Ok(vec![Event::CancelRequested { job, fence_token }])
        }
        Command::Report(report) => {
            let (exited, event) = report_events(report);
            check_report(state, &event)?;
            Ok(exited.into_iter().chain([event]).collect())
        }
        Command::RequestExtension {
            job,
            worker,
            progress,
        } => decide_extension(state, job, worker, progress),
        Command::RegisterWorker {
            worker,
            cores,
            address,
        } => {
            validate_registration(cores, &address)?;
            Ok(vec![Event::WorkerRegistered {
                worker,
                cores,
                address,
            }])
        }
        Command::WorkerLost { worker } => {
            state
                .worker(worker)
                .ok_or(Rejection::WorkerNotFound { worker })?;
            Ok(vec![Event::WorkerLost { worker }])
        }
        Command::DrainWorker { worker } => {
            let record = state
                .worker(worker)
                .ok_or(Rejection::WorkerNotFound { worker })?;
            if record.status == WorkerStatus::Lost {
                return Err(Rejection::WorkerUnavailable {
                    worker,
                    status: record.status,
                });
            }
            Ok(vec![Event::WorkerDrained { worker }])
        }
        Command::DispatchWorkflow {
            job,
            workflow,
            worker,
        } => duties::dispatch_one(state, job, workflow, worker).map(|event| vec![event]),
        Command::DispatchPending { max_assignments } => {
            Ok(duties::dispatch_pending(state, max_assignments))
        }
        Command::BecomeLeader { term, node } => {
            let globals = state.globals();
            if term <= globals.term {
                return Err(Rejection::StaleLeader {
                    term,
                    fence_token: globals.fence_token,
                    current_term: globals.term,
                    current_fence: globals.fence_token,
                });
            }
            let fence_token = crate::FenceToken(globals.fence_token.0.saturating_add(1));
            Ok(vec![Event::LeaderChanged {
                term,
                leader: node,
                fence_token,
            }])
        }
        Command::CheckTimeouts => Ok(duties::check_timeouts(state, now_ms)),
        Command::ExpireIdempotency => Ok(duties::expire_keys(state, now_ms)),
    }
}

/// The report's own event, preceded by a `WorkflowExited` when an exit report carries the
/// process's exit details.
fn report_events(report: WorkerReport) -> (Option<Event>, Event) {
    let WorkerReport {
        worker,
        target,
        kind,
        exit,
    } = report;
    let ends_attempt = matches!(
        kind,
        ReportKind::Completed | ReportKind::Failed { .. } | ReportKind::Cancelled
    );
    let exited = exit
        .filter(|_| ends_attempt)
        .map(|exit| Event::WorkflowExited {
            target,
            worker,
            exit: exit.bounded(),
        });
    let event = match kind {
        ReportKind::Started => Event::WorkflowStarted { target, worker },
        ReportKind::Progress { progress } => Event::WorkflowProgress {
            target,
            worker,
            progress,
        },
        ReportKind::Completed => Event::WorkflowCompleted { target, worker },
        ReportKind::Failed { error, exit_code } => Event::WorkflowFailed {
            target,
            worker,
            error,
            exit_code,
        },
        ReportKind::Cancelled => Event::WorkflowCancelled { target, worker },
    };
    (exited, event)
}

fn decide_extension(
    state: &State,
    job: JobId,
    worker: crate::WorkerId,
    progress: u64,
) -> Result<Vec<Event>, Rejection> {
    let record = live_job(state, job)?;
    check_running(state, job, worker)?;
    let tracker = record.extension_tracker(worker);
    if let Some(reason) = denial_reason(tracker.grants, tracker.last_progress, progress) {
        return Ok(vec![Event::ExtensionDenied {
            job,
            worker,
            reason,
            progress,
        }]);
    }
    let grant_number = tracker.grants.saturating_add(1);
    let Some(grant_ms) = extension_grant_ms(grant_number) else {
        let reason = crate::DenialReason::MaximumReached;
        return Ok(vec![Event::ExtensionDenied {
            job,
            worker,
            reason,
            progress,
        }]);
    };
    Ok(vec![Event::ExtensionGranted {
        job,
        worker,
        grant_number,
        grant_ms,
        progress,
    }])
}
