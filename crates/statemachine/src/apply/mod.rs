//! `apply`: folds one stamped proposal into the state, event by event, re-checking each event
//! against the state it finds.
//!
//! Deterministic by construction: the only time is the proposal's stamp (made monotonic with
//! `max(stamp, last applied stamp)`), job ids come from the log index, and every collection is
//! ordered. An event that no longer holds (stale fence, terminal job, stale attempt, duplicate
//! key) yields [`Outcome::Rejected`] and changes nothing. Transitions that follow from others
//! (a job finishing when its last workflow does, a retry after a failure, a key's commit) are
//! made here rather than proposed, so that two concurrent proposals can never both miss them.
//! This module does not decide anything on its own initiative: no timer, no scan.

pub(crate) mod jobs;
mod outputs;
mod transitions;
pub(crate) mod workers;
pub(crate) mod workflows;

use crate::prepare::{Prepared, ReadySubmit};
use crate::{
    ApplyReport, Event, IdempotencyKey, JobId, LogIndex, Outcome, Proposal, Rejection, State,
    WorkerId, WorkflowId,
};

/// Per-proposal context shared by the event handlers.
pub(crate) struct Context<'r> {
    /// The entry's log index.
    pub index: LogIndex,
    /// The effective time: `max(stamp, last applied stamp)`.
    pub now_ms: u64,
    /// Jobs created so far in this proposal (the next job's ordinal).
    pub jobs_created: u32,
    /// What is being reported.
    pub report: &'r mut ApplyReport,
    /// The spec-only work done ahead for each event, when the proposal was prepared (one slot
    /// per event; empty otherwise).
    ready: &'r mut [Option<ReadySubmit>],
    /// The position of the event being applied.
    position: usize,
    /// Whether `report.touched` lists the records changed.
    touches: Touches,
    /// The position and key of the last event that reserved a key that was not live.
    pub fresh_reservation: Option<(usize, &'r IdempotencyKey)>,
}

/// How a fold runs: what it lists, and how it takes keyed submits.
#[derive(Debug, Clone, Copy)]
struct Mode {
    touches: Touches,
    pairs: Pairs,
}

impl Mode {
    /// `apply` and `apply_prepared`: everything listed, pairs at once.
    const LIVE: Mode = Mode {
        touches: Touches::Listed,
        pairs: Pairs::Fused,
    };
    /// `replay_prepared`: nothing listed, pairs at once.
    const REPLAY: Mode = Mode {
        touches: Touches::Skipped,
        pairs: Pairs::Fused,
    };
    /// The reference of the property tests: everything listed, pairs one by one.
    #[cfg(test)]
    const ONE_BY_ONE: Mode = Mode {
        touches: Touches::Listed,
        pairs: Pairs::OneByOne,
    };
}

/// Whether `apply` takes a keyed submit's two events at once ([`jobs::reserve_and_submit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pairs {
    /// At once where they can be: what every caller gets.
    Fused,
    /// One by one, the reference the fused path is tested against.
    #[cfg(test)]
    OneByOne,
}

/// Whether `apply` lists the records it changed in [`ApplyReport::touched`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Touches {
    /// Listed: the node's view writer rewrites exactly those records.
    Listed,
    /// Not listed: a fold whose records are already written, or are never written.
    Skipped,
}

impl<'r> Context<'r> {
    /// Whether the event just before the current one reserved `key` afresh: a submit there is
    /// the reservation's own body (the leader appends the two for one submit), so the
    /// reservation's body hash is its body hash (ADR 0025).
    pub fn reserved_just_before(&self, key: &IdempotencyKey) -> bool {
        self.position
            .checked_sub(1)
            .is_some_and(|before| self.fresh_reservation == Some((before, key)))
    }

    /// Moves on to the next event, for a handler that applies two at once.
    pub fn advance(&mut self) {
        self.position += 1;
    }

    /// Takes the work done ahead for the current event, if it was prepared.
    pub fn take_ready(&mut self) -> Option<ReadySubmit> {
        self.ready.get_mut(self.position).and_then(Option::take)
    }

    /// Lists the job as changed.
    pub fn touch_job(&mut self, job: JobId) {
        if self.touches == Touches::Listed {
            self.report.touched.jobs.insert(job);
        }
    }

    /// Lists the idempotency entry as changed (or removed).
    pub fn touch_key(&mut self, key: &IdempotencyKey) {
        if self.touches == Touches::Listed {
            self.report.touched.idempotency_keys.insert(key.clone());
        }
    }

    /// Lists the worker as changed.
    pub fn touch_worker(&mut self, worker: WorkerId) {
        if self.touches == Touches::Listed {
            self.report.touched.workers.insert(worker);
        }
    }

    /// Lists the output record as written or dropped.
    pub fn touch_output(&mut self, output: (JobId, WorkflowId)) {
        if self.touches == Touches::Listed {
            self.report.touched.outputs.insert(output);
        }
    }
}

type Applied = Result<Outcome, Rejection>;

/// Applies the proposal in the log entry at `index`.
///
/// Returns one outcome per event plus the touched records. An entry at or below the last
/// applied index is refused as a whole ([`Rejection::AlreadyApplied`]) and changes nothing, so
/// replaying an already-applied suffix after a restart is harmless.
pub fn apply(state: &mut State, index: LogIndex, proposal: &Proposal) -> ApplyReport {
    apply_with(state, index, proposal, &mut [], Mode::LIVE)
}

/// [`apply`] with a keyed submit's two events applied one by one.
#[cfg(test)]
pub(crate) fn apply_one_by_one(
    state: &mut State,
    index: LogIndex,
    proposal: &Proposal,
) -> ApplyReport {
    apply_with(state, index, proposal, &mut [], Mode::ONE_BY_ONE)
}

/// [`apply`] for a [`Prepared`] proposal: the same result, with the spec-only work of its
/// submits already done. That work is used up: applying the same `prepared` again does it anew
/// (with the same result). Taken by reference so the caller decides where the proposal is
/// dropped (the thread that allocated it frees it fastest).
pub fn apply_prepared(state: &mut State, index: LogIndex, prepared: &mut Prepared) -> ApplyReport {
    let proposal = &prepared.proposal;
    apply_with(state, index, proposal, &mut prepared.submits, Mode::LIVE)
}

/// [`apply_prepared`] for a fold that writes no view: the same state, outcomes and stop orders,
/// with no record listed in [`ApplyReport::touched`] (only `globals`). A node's restart replays
/// entries its view already holds (ADR 0015); listing what they touched would cost a copy of
/// every key and a set insert per record, about a tenth of the fold, for a list nobody reads.
pub fn replay_prepared(state: &mut State, index: LogIndex, prepared: &mut Prepared) -> ApplyReport {
    let proposal = &prepared.proposal;
    apply_with(state, index, proposal, &mut prepared.submits, Mode::REPLAY)
}

fn apply_with(
    state: &mut State,
    index: LogIndex,
    proposal: &Proposal,
    ready: &mut [Option<ReadySubmit>],
    mode: Mode,
) -> ApplyReport {
    let mut report = ApplyReport::new(index, proposal.events.len());
    let last_applied = state.globals.last_applied;
    if index <= last_applied {
        let reason = Rejection::AlreadyApplied {
            index,
            last_applied,
        };
        report.outcomes = proposal
            .events
            .iter()
            .map(|_| Outcome::Rejected {
                reason: reason.clone(),
            })
            .collect();
        return report;
    }
    let now_ms = proposal.stamp_ms.max(state.globals.last_stamp_ms);
    state.globals.last_applied = index;
    state.globals.last_stamp_ms = now_ms;
    report.touched.globals = true;
    let mut context = Context {
        index,
        now_ms,
        jobs_created: 0,
        report: &mut report,
        ready,
        position: 0,
        touches: mode.touches,
        fresh_reservation: None,
    };
    let events = &proposal.events;
    while let Some(event) = events.get(context.position) {
        let next = events.get(context.position + 1);
        let fused = match mode.pairs {
            Pairs::Fused => jobs::reserve_and_submit(state, &mut context, event, next),
            #[cfg(test)]
            Pairs::OneByOne => None,
        };
        if let Some(job) = fused {
            let outcomes = &mut context.report.outcomes;
            outcomes.extend([Outcome::Applied, Outcome::JobAccepted { job }]);
        } else {
            let outcome = apply_event(state, &mut context, event)
                .unwrap_or_else(|reason| Outcome::Rejected { reason });
            context.report.outcomes.push(outcome);
        }
        context.advance();
    }
    state.compact_finished(&mut context);
    report
}

fn apply_event<'r>(state: &mut State, context: &mut Context<'r>, event: &'r Event) -> Applied {
    match event {
        Event::IdempotencyReserved { key, body_hash } => {
            jobs::reserve_key(state, context, key, *body_hash)
        }
        Event::JobSubmitted {
            idempotency_key,
            spec,
        } => jobs::submit(state, context, idempotency_key.as_ref(), spec),
        Event::CancelRequested { job, fence_token } => {
            jobs::request_cancel(state, context, *job, *fence_token)
        }
        Event::JobCancelled { job, fence_token } => {
            jobs::force_cancel(state, context, *job, *fence_token)
        }
        Event::JobTimedOut {
            job,
            reason,
            fence_token,
        } => jobs::time_out(state, context, *job, *reason, *fence_token),
        Event::IdempotencyExpired { key } => jobs::expire_key(state, context, key),
        Event::LeaderChanged {
            term,
            leader,
            fence_token,
        } => jobs::change_leader(state, *term, *leader, *fence_token),
        Event::WorkflowDispatched {
            target,
            worker,
            fence_token,
        } => workflows::dispatch(state, context, *target, *worker, *fence_token),
        Event::WorkflowStarted { .. }
        | Event::WorkflowProgress { .. }
        | Event::WorkflowCompleted { .. }
        | Event::WorkflowFailed { .. }
        | Event::WorkflowCancelled { .. }
        | Event::WorkflowExited { .. } => workflows::report(state, context, event),
        Event::WorkflowTimedOut {
            target,
            fence_token,
        } => workflows::time_out(state, context, *target, *fence_token),
        Event::ExtensionGranted {
            job,
            worker,
            grant_number,
            grant_ms,
            progress,
        } => {
            let grant = workers::Grant {
                number: *grant_number,
                ms: *grant_ms,
                progress: *progress,
            };
            workers::grant_extension(state, context, *job, *worker, grant)
        }
        Event::ExtensionDenied {
            job,
            worker,
            reason,
            progress,
        } => workers::deny_extension(state, context, *job, *worker, *reason, *progress),
        Event::WorkerRegistered {
            worker,
            cores,
            address,
        } => workers::register(state, context, *worker, *cores, address),
        Event::WorkerLost { worker } => workers::lose(state, context, *worker),
        Event::WorkerDrained { worker } => workers::drain(state, context, *worker),
    }
}
