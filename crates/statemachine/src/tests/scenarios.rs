//! Scenario tests: whole lifecycles through `decide` and `apply`, including the races the
//! brief calls out (completion against timeout, concurrent duplicate submits).

use super::harness::{rejection, spec, Sim};
use crate::{
    decide, BodyHash, Command, DenialReason, Event, FenceToken, IdempotencyKey, JobStatus,
    LogIndex, Outcome, Rejection, ReportKind, State, TimeoutReason, WorkerId, WorkflowId,
    WorkflowStatus,
};

fn leader_with_worker(cores: u32) -> Sim {
    let mut sim = Sim::new();
    sim.become_leader(1, 1);
    sim.register(1, cores);
    sim
}

#[test]
fn two_workflows_complete_and_the_job_completes() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("build", 2));
    assert_eq!(sim.status(job), JobStatus::Pending);
    sim.run(job, 0, 1);
    sim.run(job, 1, 1);
    assert_eq!(sim.status(job), JobStatus::Running);
    assert_eq!(sim.state.cores_used(WorkerId(1)), 2);
    assert_eq!(
        sim.report(job, 0, 1, ReportKind::Completed),
        Outcome::Applied
    );
    assert_eq!(sim.status(job), JobStatus::Running);
    assert_eq!(
        sim.report(job, 1, 1, ReportKind::Completed),
        Outcome::Applied
    );
    assert_eq!(sim.status(job), JobStatus::Completed);
    assert_eq!(sim.workflow_status(job, 1), WorkflowStatus::Completed);
    assert_eq!(sim.state.cores_used(WorkerId(1)), 0);
    let timeline = sim.state.timeline(job).unwrap();
    assert!(matches!(
        timeline.last().unwrap().what,
        crate::Happening::Finished { .. }
    ));
}

#[test]
fn a_failed_workflow_fails_the_job_and_is_named() {
    let mut sim = leader_with_worker(4);
    let mut job_spec = spec("build", 2);
    job_spec.retry_budget = 0;
    let job = sim.submit(job_spec);
    sim.run(job, 0, 1);
    sim.run(job, 1, 1);
    sim.report(job, 0, 1, ReportKind::Completed);
    let failed = ReportKind::Failed {
        error: "exit 3".into(),
        exit_code: Some(3),
    };
    assert_eq!(sim.report(job, 1, 1, failed), Outcome::Applied);
    assert_eq!(sim.status(job), JobStatus::Failed);
    let view = sim.state.job_view(job).unwrap();
    assert_eq!(view.failed_workflows, vec![WorkflowId(1)]);
    assert_eq!(view.workflows[1].exit_code, Some(3));
    for workflow in &view.workflows {
        let (Some(started), Some(finished)) = (workflow.started_at_ms, workflow.finished_at_ms)
        else {
            panic!("timings missing: {workflow:?}");
        };
        assert!(finished >= started, "{workflow:?}");
    }
}

#[test]
fn a_retried_attempt_clears_its_timings() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("flaky", 1));
    sim.run(job, 0, 1);
    let failed = ReportKind::Failed {
        error: "boom".into(),
        exit_code: Some(1),
    };
    sim.report(job, 0, 1, failed);
    let view = sim.state.job_view(job).unwrap();
    assert_eq!(view.workflows[0].status, WorkflowStatus::Pending);
    assert_eq!(view.workflows[0].started_at_ms, None);
    assert_eq!(view.workflows[0].finished_at_ms, None);
    sim.run(job, 0, 1);
    let view = sim.state.job_view(job).unwrap();
    assert!(view.workflows[0].started_at_ms.is_some());
    assert_eq!(view.workflows[0].finished_at_ms, None);
}

#[test]
fn retries_stop_at_the_workflow_budget_then_the_job_budget() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("flaky", 2));
    let fail = || ReportKind::Failed {
        error: "boom".into(),
        exit_code: Some(1),
    };
    for _ in 0..2 {
        sim.run(job, 0, 1);
        sim.report(job, 0, 1, fail());
        assert_eq!(sim.workflow_status(job, 0), WorkflowStatus::Pending);
    }
    sim.run(job, 0, 1);
    sim.report(job, 0, 1, fail());
    assert_eq!(
        sim.workflow_status(job, 0),
        WorkflowStatus::Failed,
        "per-workflow budget of 2"
    );
    assert_eq!(sim.attempt(job, 0).0, 3);
    sim.run(job, 1, 1);
    sim.report(job, 1, 1, fail());
    assert_eq!(
        sim.workflow_status(job, 1),
        WorkflowStatus::Pending,
        "job budget has 1 left"
    );
    sim.run(job, 1, 1);
    sim.report(job, 1, 1, fail());
    assert_eq!(
        sim.workflow_status(job, 1),
        WorkflowStatus::Failed,
        "job budget of 3 spent"
    );
    assert_eq!(sim.status(job), JobStatus::Failed);
    assert_eq!(sim.state.job(job).unwrap().retries_used, 3);
}

#[test]
fn extension_sequence_then_maximum_and_no_progress_denials() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("long", 1));
    sim.run(job, 0, 1);
    let ask = |sim: &mut Sim, progress| {
        sim.exec(Command::RequestExtension {
            job,
            worker: WorkerId(1),
            progress,
        })
    };
    let mut grants = Vec::new();
    for progress in 0..5 {
        match ask(&mut sim, progress) {
            Outcome::ExtensionGranted { grant_ms, .. } => grants.push(grant_ms),
            other => panic!("grant {progress}: {other:?}"),
        }
    }
    assert_eq!(grants, vec![15_000, 7_500, 3_750, 1_875, 1_000]);
    assert_eq!(
        sim.state.job(job).unwrap().total_extensions_granted_ms(),
        29_125
    );
    let denied = ask(&mut sim, 100);
    assert!(matches!(
        denied,
        Outcome::ExtensionDenied {
            reason: DenialReason::MaximumReached,
            eviction_candidate: false,
            ..
        }
    ));
}

#[test]
fn extension_without_progress_is_denied_and_three_denials_make_an_eviction_candidate() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("long", 1));
    sim.run(job, 0, 1);
    let ask = |sim: &mut Sim, progress| {
        sim.exec(Command::RequestExtension {
            job,
            worker: WorkerId(1),
            progress,
        })
    };
    assert!(matches!(
        ask(&mut sim, 0),
        Outcome::ExtensionGranted {
            grant_ms: 15_000,
            ..
        }
    ));
    for denial in 1..=3 {
        match ask(&mut sim, 0) {
            Outcome::ExtensionDenied {
                reason,
                eviction_candidate,
                ..
            } => {
                assert_eq!(reason, DenialReason::NoProgress);
                assert_eq!(eviction_candidate, denial >= 3, "denial {denial}");
            }
            other => panic!("{other:?}"),
        }
    }
    let report = sim.last_report.as_ref().unwrap();
    assert_eq!(report.eviction_candidates, vec![WorkerId(1)]);
    assert!(matches!(
        ask(&mut sim, 1),
        Outcome::ExtensionGranted {
            grant_ms: 7_500,
            ..
        }
    ));
}

#[test]
fn a_worker_not_running_the_job_cannot_ask_for_an_extension() {
    let mut sim = leader_with_worker(4);
    sim.register(2, 4);
    let job = sim.submit(spec("long", 1));
    sim.run(job, 0, 1);
    let outcome = sim.exec(Command::RequestExtension {
        job,
        worker: WorkerId(2),
        progress: 1,
    });
    assert!(matches!(
        rejection(outcome),
        Rejection::NotRunningJob { .. }
    ));
}

fn timed_job(sim: &mut Sim, timeout_ms: u64) -> crate::JobId {
    let mut job_spec = spec("timed", 1);
    job_spec.timeout_ms = timeout_ms;
    job_spec.stuck_threshold_ms = 1_000_000;
    let job = sim.submit(job_spec);
    sim.run(job, 0, 1);
    job
}

#[test]
fn overall_timeout_fires_only_past_the_limit() {
    let mut sim = leader_with_worker(4);
    let job = timed_job(&mut sim, 10_000);
    sim.advance(10_000);
    assert_eq!(
        decide(&sim.state, Command::CheckTimeouts, sim.now_ms),
        Ok(vec![])
    );
    sim.advance(1);
    sim.exec(Command::CheckTimeouts);
    assert_eq!(sim.status(job), JobStatus::TimedOut);
    let record = sim.state.job(job).unwrap().timed_out.unwrap();
    assert_eq!(record.reason, TimeoutReason::Overall);
    assert_eq!(sim.workflow_status(job, 0), WorkflowStatus::Cancelled);
    let stops = &sim.last_report.as_ref().unwrap().stop_orders;
    assert_eq!(stops.len(), 1, "the running workflow is told to stop");
    assert_eq!(sim.state.cores_used(WorkerId(1)), 0);
}

#[test]
fn extensions_push_the_overall_timeout_back() {
    let mut sim = leader_with_worker(4);
    let job = timed_job(&mut sim, 10_000);
    sim.exec(Command::RequestExtension {
        job,
        worker: WorkerId(1),
        progress: 0,
    });
    sim.advance(25_000);
    assert_eq!(
        decide(&sim.state, Command::CheckTimeouts, sim.now_ms),
        Ok(vec![])
    );
    sim.advance(1);
    sim.exec(Command::CheckTimeouts);
    assert_eq!(sim.status(job), JobStatus::TimedOut);
}

#[test]
fn stuck_detection_and_a_grant_counting_as_progress() {
    let mut sim = leader_with_worker(4);
    let mut job_spec = spec("quiet", 1);
    job_spec.stuck_threshold_ms = 120_000;
    let job = sim.submit(job_spec);
    sim.run(job, 0, 1);
    sim.advance(100_000);
    sim.exec(Command::RequestExtension {
        job,
        worker: WorkerId(1),
        progress: 0,
    });
    sim.advance(100_000);
    assert_eq!(
        decide(&sim.state, Command::CheckTimeouts, sim.now_ms),
        Ok(vec![])
    );
    sim.advance(20_001);
    sim.exec(Command::CheckTimeouts);
    assert_eq!(sim.status(job), JobStatus::TimedOut);
    assert_eq!(
        sim.state.job(job).unwrap().timed_out.unwrap().reason,
        TimeoutReason::Stuck
    );
}

#[test]
fn completion_applied_before_an_in_flight_timeout_wins() {
    let mut sim = leader_with_worker(4);
    let job = timed_job(&mut sim, 10_000);
    sim.advance(10_001);
    let timeout = decide(&sim.state, Command::CheckTimeouts, sim.now_ms).unwrap();
    assert_eq!(timeout.len(), 1);
    assert_eq!(
        sim.report(job, 0, 1, ReportKind::Completed),
        Outcome::Applied
    );
    let outcome = sim.propose(timeout);
    assert_eq!(
        rejection(outcome),
        Rejection::JobTerminal {
            job,
            status: JobStatus::Completed
        }
    );
    assert_eq!(sim.status(job), JobStatus::Completed);
}

#[test]
fn timeout_applied_before_a_completion_wins() {
    let mut sim = leader_with_worker(4);
    let job = timed_job(&mut sim, 10_000);
    sim.advance(10_001);
    let completion = Command::Report(crate::WorkerReport {
        worker: WorkerId(1),
        exit: None,
        target: crate::WorkflowRef {
            job,
            workflow: WorkflowId(0),
            attempt: sim.attempt(job, 0),
        },
        kind: ReportKind::Completed,
    });
    let completion = decide(&sim.state, completion, sim.now_ms).unwrap();
    sim.exec(Command::CheckTimeouts);
    let outcome = sim.propose(completion);
    assert_eq!(
        rejection(outcome),
        Rejection::JobTerminal {
            job,
            status: JobStatus::TimedOut
        }
    );
    assert_eq!(sim.status(job), JobStatus::TimedOut);
}

#[test]
fn a_timeout_from_a_deposed_leader_is_refused() {
    let mut sim = leader_with_worker(4);
    let job = timed_job(&mut sim, 10_000);
    sim.advance(10_001);
    let timeout = decide(&sim.state, Command::CheckTimeouts, sim.now_ms).unwrap();
    assert!(matches!(
        sim.become_leader(2, 2),
        Outcome::LeaderChanged {
            fence_token: FenceToken(2),
            ..
        }
    ));
    let outcome = sim.propose(timeout);
    assert!(matches!(
        rejection(outcome),
        Rejection::FenceMismatch { .. }
    ));
    assert_eq!(
        sim.status(job),
        JobStatus::Running,
        "the new leader keeps tracking it"
    );
    sim.exec(Command::CheckTimeouts);
    assert_eq!(sim.status(job), JobStatus::TimedOut);
}

#[test]
fn cancel_twice_and_cancel_after_the_end() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("c", 2));
    sim.run(job, 0, 1);
    let cancel = Command::CancelJob {
        job,
        fence_token: None,
    };
    let first = sim.exec(cancel.clone());
    assert_eq!(
        first,
        Outcome::CancelAccepted {
            job,
            already_cancelled: false,
            status: JobStatus::Running
        }
    );
    assert_eq!(sim.workflow_status(job, 0), WorkflowStatus::Cancelling);
    assert_eq!(sim.workflow_status(job, 1), WorkflowStatus::Cancelled);
    assert_eq!(sim.last_report.as_ref().unwrap().stop_orders.len(), 1);
    let second = sim.exec(cancel.clone());
    assert!(matches!(
        second,
        Outcome::CancelAccepted {
            already_cancelled: true,
            ..
        }
    ));
    assert_eq!(
        sim.report(job, 0, 1, ReportKind::Cancelled),
        Outcome::Applied
    );
    assert_eq!(sim.status(job), JobStatus::Cancelled);
    let third = sim.exec(cancel);
    assert_eq!(
        third,
        Outcome::CancelAccepted {
            job,
            already_cancelled: true,
            status: JobStatus::Cancelled
        }
    );
}

#[test]
fn cancel_never_overwrites_a_terminal_status() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("done", 1));
    sim.run(job, 0, 1);
    sim.report(job, 0, 1, ReportKind::Completed);
    let outcome = sim.exec(Command::CancelJob {
        job,
        fence_token: Some(FenceToken(99)),
    });
    assert_eq!(
        outcome,
        Outcome::AlreadyTerminal {
            job,
            status: JobStatus::Completed
        }
    );
    assert_eq!(sim.status(job), JobStatus::Completed);
}

#[test]
fn cancel_grace_then_forced_cancel() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("slow to stop", 1));
    sim.run(job, 0, 1);
    sim.exec(Command::CancelJob {
        job,
        fence_token: Some(FenceToken(1)),
    });
    sim.advance(29_999);
    assert_eq!(
        decide(&sim.state, Command::CheckTimeouts, sim.now_ms),
        Ok(vec![])
    );
    sim.advance(1);
    sim.exec(Command::CheckTimeouts);
    assert_eq!(sim.status(job), JobStatus::Cancelled);
    assert_eq!(sim.workflow_status(job, 0), WorkflowStatus::Cancelled);
    assert_eq!(sim.state.cores_used(WorkerId(1)), 0);
}

#[test]
fn same_key_same_body_is_a_duplicate_and_other_body_a_conflict() {
    let mut sim = leader_with_worker(4);
    let key = IdempotencyKey::new("ci", "run-42");
    let first = sim.submit_keyed(&key, spec("a", 1));
    let Outcome::JobAccepted { job } = first else {
        panic!("{first:?}")
    };
    let again = sim.submit_keyed(&key, spec("a", 1));
    assert_eq!(
        again,
        Outcome::Duplicate {
            job,
            status: JobStatus::Pending
        }
    );
    let other = sim.submit_keyed(&key, spec("b", 1));
    assert_eq!(
        rejection(other),
        Rejection::IdempotencyConflict {
            key: key.clone(),
            original_job: Some(job)
        }
    );
    let elsewhere = sim.submit_keyed(&IdempotencyKey::new("other", "run-42"), spec("b", 1));
    assert!(
        matches!(elsewhere, Outcome::JobAccepted { .. }),
        "keys are scoped by namespace"
    );
    assert_eq!(sim.state.jobs().count(), 2);
}

#[test]
fn concurrent_duplicates_decided_together_still_make_one_job() {
    let mut sim = leader_with_worker(4);
    let key = IdempotencyKey::new("ci", "race");
    let command = Command::SubmitJob {
        idempotency_key: Some(key.clone()),
        spec: spec("a", 1),
    };
    let first = decide(&sim.state, command.clone(), sim.now_ms).unwrap();
    let second = decide(&sim.state, command, sim.now_ms).unwrap();
    let Outcome::JobAccepted { job } = sim.propose(first) else {
        panic!()
    };
    assert_eq!(
        sim.propose(second),
        Outcome::Duplicate {
            job,
            status: JobStatus::Pending
        }
    );
    assert_eq!(sim.state.jobs().count(), 1);
}

#[test]
fn a_key_expires_ttl_after_its_job_finished_and_can_be_reused() {
    let mut sim = leader_with_worker(4);
    let key = IdempotencyKey::new("ci", "k");
    let Outcome::JobAccepted { job } = sim.submit_keyed(&key, spec("a", 1)) else {
        panic!()
    };
    sim.advance(crate::IDEMPOTENCY_TTL_MS_DEFAULT * 2);
    assert_eq!(
        decide(&sim.state, Command::ExpireIdempotency, sim.now_ms),
        Ok(vec![]),
        "job live"
    );
    sim.run(job, 0, 1);
    sim.report(job, 0, 1, ReportKind::Completed);
    sim.advance(crate::IDEMPOTENCY_TTL_MS_DEFAULT - 1);
    assert_eq!(
        decide(&sim.state, Command::ExpireIdempotency, sim.now_ms),
        Ok(vec![])
    );
    sim.advance(1);
    sim.exec(Command::ExpireIdempotency);
    assert_eq!(sim.state.idempotency_entry(&key), None);
    let again = sim.submit_keyed(&key, spec("b", 1));
    assert!(matches!(again, Outcome::JobAccepted { job: other } if other != job));
}

#[test]
fn a_premature_expiry_is_refused() {
    let mut sim = leader_with_worker(4);
    let key = IdempotencyKey::new("ci", "k");
    sim.submit_keyed(&key, spec("a", 1));
    let outcome = sim.propose(vec![Event::IdempotencyExpired { key: key.clone() }]);
    assert!(matches!(
        rejection(outcome),
        Rejection::ConditionNotMet { .. }
    ));
    assert!(sim.state.idempotency_entry(&key).is_some());
}

#[test]
fn losing_a_worker_requeues_its_work_and_refuses_its_reports() {
    let mut sim = leader_with_worker(4);
    sim.register(2, 4);
    let job = sim.submit(spec("moved", 2));
    sim.run(job, 0, 1);
    sim.dispatch(job, 1, 1);
    sim.exec(Command::RequestExtension {
        job,
        worker: WorkerId(1),
        progress: 0,
    });
    let old_attempt = sim.attempt(job, 0);
    assert_eq!(
        sim.exec(Command::WorkerLost {
            worker: WorkerId(1)
        }),
        Outcome::Applied
    );
    assert_eq!(sim.workflow_status(job, 0), WorkflowStatus::Pending);
    assert_eq!(sim.workflow_status(job, 1), WorkflowStatus::Pending);
    assert_eq!(sim.state.cores_used(WorkerId(1)), 0);
    assert!(
        sim.state
            .job(job)
            .unwrap()
            .extension_tracker(WorkerId(1))
            .grants
            == 0,
        "extensions cleaned"
    );
    let late = Command::Report(crate::WorkerReport {
        worker: WorkerId(1),
        exit: None,
        target: crate::WorkflowRef {
            job,
            workflow: WorkflowId(0),
            attempt: old_attempt,
        },
        kind: ReportKind::Completed,
    });
    assert!(matches!(
        rejection(sim.exec(late)),
        Rejection::InvalidTransition { .. }
    ));
    let events = decide(
        &sim.state,
        Command::DispatchPending {
            max_assignments: 10,
        },
        0,
    )
    .unwrap();
    assert_eq!(events.len(), 2, "both go to worker 2");
    sim.propose(events);
    assert_eq!(sim.state.cores_used(WorkerId(2)), 2);
    assert_eq!(sim.attempt(job, 0).0, old_attempt.0 + 1);
}

#[test]
fn dispatch_respects_capacity_and_draining() {
    let mut sim = leader_with_worker(1);
    let job = sim.submit(spec("wide", 2));
    let events = decide(
        &sim.state,
        Command::DispatchPending {
            max_assignments: 10,
        },
        0,
    )
    .unwrap();
    assert_eq!(events.len(), 1, "one core, one workflow");
    sim.propose(events);
    let second = Command::DispatchWorkflow {
        job,
        workflow: WorkflowId(1),
        worker: None,
    };
    assert_eq!(
        rejection(sim.exec(second)),
        Rejection::NoCapacity { cores_needed: 1 }
    );
    sim.register(2, 8);
    sim.exec(Command::DrainWorker {
        worker: WorkerId(2),
    });
    let events = decide(
        &sim.state,
        Command::DispatchPending {
            max_assignments: 10,
        },
        0,
    )
    .unwrap();
    assert!(events.is_empty(), "draining workers get nothing");
}

#[test]
fn an_entry_applied_twice_changes_nothing_the_second_time() {
    let mut sim = leader_with_worker(4);
    sim.submit(spec("once", 1));
    let (index, proposal) = sim.log.last().cloned().unwrap();
    let hash = crate::state_hash(&sim.state);
    let report = crate::apply(&mut sim.state, index, &proposal);
    assert!(matches!(
        Outcome::for_command(&report.outcomes),
        Outcome::Rejected {
            reason: Rejection::AlreadyApplied { .. }
        }
    ));
    assert_eq!(crate::state_hash(&sim.state), hash);
}

#[test]
fn replayer_stops_at_an_index_or_a_time_and_knows_the_fence() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("replayed", 1));
    sim.advance(1_000);
    sim.become_leader(2, 2);
    let stamp_of_second_leader = sim.now_ms;
    sim.advance(1_000);
    sim.run(job, 0, 1);
    let full = crate::state_hash(&sim.state);

    let mut all = crate::Replayer::new(State::default(), crate::StopAt::End);
    for (index, proposal) in &sim.log {
        all.feed(*index, proposal);
    }
    assert_eq!(crate::state_hash(all.state()), full);
    assert_eq!(all.fence_at(LogIndex(1)), FenceToken(1));
    assert_eq!(all.fence_at(sim.log.last().unwrap().0), FenceToken(2));

    let mut until_time = crate::Replayer::new(
        State::default(),
        crate::StopAt::Time(stamp_of_second_leader),
    );
    for (index, proposal) in &sim.log {
        until_time.feed(*index, proposal);
    }
    assert!(until_time.is_stopped());
    let summary = until_time.summary();
    assert_eq!(summary.fence_token, FenceToken(2));
    assert_eq!(summary.jobs_by_status.get(&JobStatus::Pending), Some(&1));

    let mut until_index = crate::Replayer::new(State::default(), crate::StopAt::Index(LogIndex(2)));
    for (index, proposal) in &sim.log {
        until_index.feed(*index, proposal);
    }
    assert_eq!(until_index.applied().0, 2);
    assert_eq!(until_index.summary().last_applied, LogIndex(2));
}

/// ADR 0025: a submit right after the event that reserved its key afresh is that
/// reservation's body, and takes its hash; a submit meeting a reservation made anywhere else is
/// checked against it by hashing its own body.
#[test]
fn a_submit_takes_the_hash_of_the_reservation_just_before_it_and_checks_any_other() {
    let mut sim = leader_with_worker(4);
    let paired = IdempotencyKey::new("ci", "paired");
    let claimed = BodyHash(7);
    assert_ne!(claimed, crate::codec::body_hash(&spec("a", 1)));
    let outcome = sim.propose(vec![
        Event::IdempotencyReserved {
            key: paired.clone(),
            body_hash: claimed,
        },
        Event::JobSubmitted {
            idempotency_key: Some(paired.clone()),
            spec: spec("a", 1),
        },
    ]);
    let Outcome::JobAccepted { job } = outcome else {
        panic!("{outcome:?}")
    };
    let entry = sim.state.idempotency_entry(&paired).unwrap();
    assert_eq!((entry.body_hash, entry.job), (claimed, Some(job)));

    let apart = IdempotencyKey::new("ci", "apart");
    sim.propose(vec![Event::IdempotencyReserved {
        key: apart.clone(),
        body_hash: claimed,
    }]);
    let outcome = sim.propose(vec![Event::JobSubmitted {
        idempotency_key: Some(apart.clone()),
        spec: spec("a", 1),
    }]);
    assert_eq!(
        rejection(outcome),
        Rejection::IdempotencyConflict {
            key: apart.clone(),
            original_job: None
        }
    );

    let not_fresh = sim.propose(vec![
        Event::IdempotencyReserved {
            key: apart.clone(),
            body_hash: crate::codec::body_hash(&spec("a", 1)),
        },
        Event::JobSubmitted {
            idempotency_key: Some(apart.clone()),
            spec: spec("a", 1),
        },
    ]);
    assert!(
        matches!(not_fresh, Outcome::Rejected { .. }),
        "a reservation that was not fresh pairs with nothing: {not_fresh:?}"
    );
    assert_eq!(sim.state.jobs().count(), 1);
}
