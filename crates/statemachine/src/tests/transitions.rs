//! Table-driven tests: the workflow transition matrix for every worker report, and one row per
//! rejection, each checking that the refused event left every record untouched.

use super::harness::{rejection, spec, Sim};
use crate::{
    decide, Attempt, BodyHash, Command, DenialReason, Event, FenceToken, IdempotencyKey, JobId,
    LogIndex, NodeId, Outcome, Proposal, Rejection, ReportKind, State, StateConfig, Term,
    TimeoutReason, WorkerId, WorkflowId, WorkflowRef, WorkflowStatus,
};

/// Puts workflow 0 of a fresh three-workflow job into `status` while the job stays live.
fn job_with_workflow_in(sim: &mut Sim, status: WorkflowStatus) -> JobId {
    let mut job_spec = spec("matrix", 3);
    job_spec.retry_budget = 0;
    let job = sim.submit(job_spec);
    let fail = ReportKind::Failed {
        error: "x".into(),
        exit_code: None,
    };
    match status {
        WorkflowStatus::Pending => {}
        WorkflowStatus::Dispatched => {
            sim.dispatch(job, 0, 1);
        }
        WorkflowStatus::Running => sim.run(job, 0, 1),
        WorkflowStatus::Completed => {
            sim.run(job, 0, 1);
            sim.report(job, 0, 1, ReportKind::Completed);
        }
        WorkflowStatus::Failed => {
            sim.run(job, 0, 1);
            sim.report(job, 0, 1, fail);
        }
        WorkflowStatus::Cancelling | WorkflowStatus::Cancelled => {
            if status == WorkflowStatus::Cancelling {
                sim.run(job, 0, 1);
            }
            sim.run(job, 1, 1);
            sim.exec(Command::CancelJob {
                job,
                fence_token: None,
            });
        }
    }
    assert_eq!(sim.workflow_status(job, 0), status, "fixture");
    job
}

fn report_event(job: JobId, attempt: Attempt, kind: usize) -> Event {
    let target = WorkflowRef {
        job,
        workflow: WorkflowId(0),
        attempt,
    };
    let worker = WorkerId(1);
    match kind {
        0 => Event::WorkflowStarted { target, worker },
        1 => Event::WorkflowProgress {
            target,
            worker,
            progress: 5,
        },
        2 => Event::WorkflowCompleted { target, worker },
        3 => Event::WorkflowFailed {
            target,
            worker,
            error: "e".into(),
            exit_code: Some(2),
        },
        _ => Event::WorkflowCancelled { target, worker },
    }
}

#[test]
fn workflow_transition_matrix() {
    use WorkflowStatus::*;
    // Columns: started, progress, completed, failed, cancelled. `Some(next)` = accepted.
    let table: [(WorkflowStatus, [Option<WorkflowStatus>; 5]); 7] = [
        (Pending, [None, None, None, None, None]),
        (Dispatched, [Some(Running), None, None, Some(Failed), None]),
        (
            Running,
            [None, Some(Running), Some(Completed), Some(Failed), None],
        ),
        (
            Cancelling,
            [None, None, Some(Completed), Some(Failed), Some(Cancelled)],
        ),
        (Completed, [None, None, None, None, None]),
        (Failed, [None, None, None, None, None]),
        (Cancelled, [None, None, None, None, None]),
    ];
    for (from, row) in table {
        for (kind, expected) in row.into_iter().enumerate() {
            let mut sim = Sim::new();
            sim.become_leader(1, 1);
            sim.register(1, 8);
            let job = job_with_workflow_in(&mut sim, from);
            let before = sim.state.to_records();
            let outcome = sim.propose(vec![report_event(job, sim.attempt(job, 0), kind)]);
            match expected {
                Some(next) => {
                    assert_eq!(outcome, Outcome::Applied, "{from} report {kind}");
                    assert_eq!(sim.workflow_status(job, 0), next, "{from} report {kind}");
                }
                None => {
                    assert!(
                        matches!(rejection(outcome), Rejection::InvalidTransition { .. }),
                        "{from} report {kind}"
                    );
                    assert_unchanged(&before, &sim.state);
                }
            }
        }
    }
}

fn assert_unchanged(before: &crate::Records, after: &State) {
    let after = after.to_records();
    assert_eq!(before.jobs, after.jobs, "jobs unchanged");
    assert_eq!(before.idempotency, after.idempotency, "keys unchanged");
    assert_eq!(before.workers, after.workers, "workers unchanged");
    assert_eq!(
        before.globals.fence_token, after.globals.fence_token,
        "fence unchanged"
    );
}

/// The shared fixture: fence 1; worker 1 live (4 cores), 2 lost, 3 draining; job `pending`
/// (one workflow), job `running` (workflow 0 running on worker 1, workflow 1 pending), job
/// `done` (completed), job `stopping` (cancel in progress), key ns/k bound to `pending`.
struct Fixture {
    sim: Sim,
    pending: JobId,
    running: JobId,
    done: JobId,
    stopping: JobId,
}

fn fixture() -> Fixture {
    let config = StateConfig {
        idempotency_live_keys_max: 2,
        ..StateConfig::default()
    };
    let mut sim = Sim::with_state(State::new(config).unwrap());
    sim.become_leader(1, 1);
    sim.register(1, 4);
    sim.register(2, 4);
    sim.register(3, 4);
    sim.exec(Command::WorkerLost {
        worker: WorkerId(2),
    });
    sim.exec(Command::DrainWorker {
        worker: WorkerId(3),
    });
    let key = IdempotencyKey::new("ns", "k");
    let Outcome::JobAccepted { job: pending } = sim.submit_keyed(&key, spec("p", 1)) else {
        panic!()
    };
    let running = sim.submit(spec("r", 2));
    sim.run(running, 0, 1);
    let done = sim.submit(spec("d", 1));
    sim.run(done, 0, 1);
    sim.report(done, 0, 1, ReportKind::Completed);
    let stopping = sim.submit(spec("s", 1));
    sim.run(stopping, 0, 1);
    sim.exec(Command::CancelJob {
        job: stopping,
        fence_token: None,
    });
    Fixture {
        sim,
        pending,
        running,
        done,
        stopping,
    }
}

#[test]
fn every_rejection_leaves_the_state_unchanged() {
    let probe = fixture();
    let (pending, running, done, stopping) =
        (probe.pending, probe.running, probe.done, probe.stopping);
    let fence = FenceToken(1);
    let at = |job, workflow, attempt| WorkflowRef {
        job,
        workflow: WorkflowId(workflow),
        attempt: Attempt(attempt),
    };
    let key = IdempotencyKey::new("ns", "k");
    let mut bad_spec = spec("bad", 1);
    bad_spec.workflows[0].command.clear();
    type Check = fn(&Rejection) -> bool;
    let rows: Vec<(&str, Vec<Event>, Check)> = vec![
        (
            "invalid spec",
            vec![Event::JobSubmitted {
                idempotency_key: None,
                spec: bad_spec,
            }],
            |r| matches!(r, Rejection::InvalidField { field, .. } if field == "workflows[0].command"),
        ),
        (
            "unknown job",
            vec![Event::CancelRequested {
                job: JobId(1),
                fence_token: None,
            }],
            |r| matches!(r, Rejection::JobNotFound { .. }),
        ),
        (
            "unknown workflow",
            vec![Event::WorkflowStarted {
                target: at(running, 9, 1),
                worker: WorkerId(1),
            }],
            |r| matches!(r, Rejection::WorkflowNotFound { .. }),
        ),
        (
            "unknown worker",
            vec![Event::WorkerLost {
                worker: WorkerId(77),
            }],
            |r| matches!(r, Rejection::WorkerNotFound { .. }),
        ),
        (
            "key with another body",
            vec![Event::IdempotencyReserved {
                key: key.clone(),
                body_hash: BodyHash(1),
            }],
            |r| matches!(r, Rejection::IdempotencyConflict { .. }),
        ),
        (
            "live-key bound",
            vec![
                Event::IdempotencyReserved {
                    key: IdempotencyKey::new("ns", "k2"),
                    body_hash: BodyHash(1),
                },
                Event::IdempotencyReserved {
                    key: IdempotencyKey::new("ns", "k3"),
                    body_hash: BodyHash(1),
                },
            ],
            |r| matches!(r, Rejection::IdempotencyCapacity { live_keys_max: 2 }),
        ),
        (
            "submit without reservation",
            vec![Event::JobSubmitted {
                idempotency_key: Some(IdempotencyKey::new("ns", "nope")),
                spec: spec("x", 1),
            }],
            |r| matches!(r, Rejection::KeyNotReserved { .. }),
        ),
        (
            "expire unknown key",
            vec![Event::IdempotencyExpired {
                key: IdempotencyKey::new("ns", "x"),
            }],
            |r| matches!(r, Rejection::KeyNotFound { .. }),
        ),
        (
            "expire live key",
            vec![Event::IdempotencyExpired { key: key.clone() }],
            |r| matches!(r, Rejection::ConditionNotMet { .. }),
        ),
        (
            "cancel with a stale fence",
            vec![Event::CancelRequested {
                job: running,
                fence_token: Some(FenceToken(0)),
            }],
            |r| matches!(r, Rejection::FenceMismatch { .. }),
        ),
        (
            "dispatch with a stale fence",
            vec![Event::WorkflowDispatched {
                target: at(running, 1, 1),
                worker: WorkerId(1),
                fence_token: FenceToken(0),
            }],
            |r| matches!(r, Rejection::FenceMismatch { .. }),
        ),
        (
            "leader change skipping a fence",
            vec![Event::LeaderChanged {
                term: Term(5),
                leader: NodeId(2),
                fence_token: FenceToken(3),
            }],
            |r| matches!(r, Rejection::StaleLeader { .. }),
        ),
        (
            "second leader change in one term",
            vec![Event::LeaderChanged {
                term: Term(1),
                leader: NodeId(2),
                fence_token: FenceToken(2),
            }],
            |r| matches!(r, Rejection::StaleLeader { .. }),
        ),
        (
            "leader change from an older term",
            vec![Event::LeaderChanged {
                term: Term(0),
                leader: NodeId(2),
                fence_token: FenceToken(2),
            }],
            |r| matches!(r, Rejection::StaleLeader { .. }),
        ),
        (
            "timeout of a finished job",
            vec![Event::JobTimedOut {
                job: done,
                reason: TimeoutReason::Overall,
                fence_token: fence,
            }],
            |r| matches!(r, Rejection::JobTerminal { .. }),
        ),
        (
            "report on a finished job",
            vec![Event::WorkflowCompleted {
                target: at(done, 0, 1),
                worker: WorkerId(1),
            }],
            |r| matches!(r, Rejection::JobTerminal { .. }),
        ),
        (
            "timeout of a cancelling job",
            vec![Event::JobTimedOut {
                job: stopping,
                reason: TimeoutReason::Overall,
                fence_token: fence,
            }],
            |r| matches!(r, Rejection::JobCancelling { .. }),
        ),
        (
            "dispatch in a cancelling job",
            vec![Event::WorkflowDispatched {
                target: at(stopping, 0, 2),
                worker: WorkerId(1),
                fence_token: fence,
            }],
            |r| matches!(r, Rejection::JobCancelling { .. }),
        ),
        (
            "dispatch of a running workflow",
            vec![Event::WorkflowDispatched {
                target: at(running, 0, 2),
                worker: WorkerId(1),
                fence_token: fence,
            }],
            |r| matches!(r, Rejection::InvalidTransition { .. }),
        ),
        (
            "report about an old attempt",
            vec![Event::WorkflowCompleted {
                target: at(running, 0, 7),
                worker: WorkerId(1),
            }],
            |r| matches!(r, Rejection::StaleAttempt { .. }),
        ),
        (
            "dispatch skipping an attempt",
            vec![Event::WorkflowDispatched {
                target: at(running, 1, 3),
                worker: WorkerId(1),
                fence_token: fence,
            }],
            |r| matches!(r, Rejection::StaleAttempt { .. }),
        ),
        (
            "report from another worker",
            vec![Event::WorkflowCompleted {
                target: at(running, 0, 1),
                worker: WorkerId(3),
            }],
            |r| matches!(r, Rejection::WrongWorker { .. }),
        ),
        (
            "dispatch to a lost worker",
            vec![Event::WorkflowDispatched {
                target: at(running, 1, 1),
                worker: WorkerId(2),
                fence_token: fence,
            }],
            |r| matches!(r, Rejection::WorkerUnavailable { .. }),
        ),
        (
            "dispatch to a draining worker",
            vec![Event::WorkflowDispatched {
                target: at(pending, 0, 1),
                worker: WorkerId(3),
                fence_token: fence,
            }],
            |r| matches!(r, Rejection::WorkerUnavailable { .. }),
        ),
        (
            "drain a lost worker",
            vec![Event::WorkerDrained {
                worker: WorkerId(2),
            }],
            |r| matches!(r, Rejection::WorkerUnavailable { .. }),
        ),
        (
            "register with no cores",
            vec![Event::WorkerRegistered {
                worker: WorkerId(9),
                cores: 0,
                address: "a".into(),
            }],
            |r| matches!(r, Rejection::InvalidField { field, .. } if field == "cores"),
        ),
        (
            "timeout not due",
            vec![Event::JobTimedOut {
                job: running,
                reason: TimeoutReason::Overall,
                fence_token: fence,
            }],
            |r| matches!(r, Rejection::ConditionNotMet { .. }),
        ),
        (
            "stuck not due",
            vec![Event::JobTimedOut {
                job: running,
                reason: TimeoutReason::Stuck,
                fence_token: fence,
            }],
            |r| matches!(r, Rejection::ConditionNotMet { .. }),
        ),
        (
            "grace not passed",
            vec![Event::JobCancelled {
                job: stopping,
                fence_token: fence,
            }],
            |r| matches!(r, Rejection::ConditionNotMet { .. }),
        ),
        (
            "workflow timeout not configured",
            vec![Event::WorkflowTimedOut {
                target: at(running, 0, 1),
                fence_token: fence,
            }],
            |r| matches!(r, Rejection::ConditionNotMet { .. }),
        ),
        (
            "extension for a job the worker does not run",
            vec![Event::ExtensionGranted {
                job: pending,
                worker: WorkerId(1),
                grant_number: 1,
                grant_ms: 15_000,
                progress: 0,
            }],
            |r| matches!(r, Rejection::NotRunningJob { .. }),
        ),
        (
            "grant out of sequence",
            vec![Event::ExtensionGranted {
                job: running,
                worker: WorkerId(1),
                grant_number: 2,
                grant_ms: 7_500,
                progress: 0,
            }],
            |r| matches!(r, Rejection::StaleExtension { .. }),
        ),
        (
            "denial that does not hold",
            vec![Event::ExtensionDenied {
                job: running,
                worker: WorkerId(1),
                reason: DenialReason::NoProgress,
                progress: 0,
            }],
            |r| matches!(r, Rejection::StaleExtension { .. }),
        ),
        (
            "too many jobs in one entry",
            vec![
                Event::JobSubmitted {
                    idempotency_key: None,
                    spec: spec("x", 1)
                };
                1001
            ],
            |r| matches!(r, Rejection::TooManyJobs),
        ),
    ];
    for (name, events, check) in rows {
        let mut sim = fixture().sim;
        let before = sim.state.to_records();
        let last = events.len() - 1;
        let report = {
            let index = LogIndex(sim.state.globals().last_applied.0 + 1);
            crate::apply(
                &mut sim.state,
                index,
                &Proposal {
                    stamp_ms: sim.now_ms,
                    events,
                },
            )
        };
        let outcome = report.outcomes[last].clone();
        let reason = rejection(outcome);
        assert!(check(&reason), "{name}: got {reason:?}");
        if last == 0 {
            assert_unchanged(&before, &sim.state);
        }
    }
}

#[test]
fn an_entry_below_the_last_applied_index_is_refused_whole() {
    let mut sim = fixture().sim;
    let before = sim.state.to_records();
    let events = vec![Event::WorkerDrained {
        worker: WorkerId(1),
    }];
    let report = crate::apply(
        &mut sim.state,
        LogIndex(1),
        &Proposal {
            stamp_ms: 0,
            events,
        },
    );
    assert!(matches!(
        report.outcomes.as_slice(),
        [Outcome::Rejected {
            reason: Rejection::AlreadyApplied { .. }
        }]
    ));
    assert_eq!(before, sim.state.to_records());
}

#[test]
fn decide_refuses_early_with_the_same_reasons() {
    let Fixture {
        sim, running, done, ..
    } = fixture();
    let state = &sim.state;
    let now = sim.now_ms;
    let mut bad_spec = spec("bad", 1);
    bad_spec.workflows[0].cores = 0;
    type Check = fn(&Rejection) -> bool;
    let rows: Vec<(Command, Check)> = vec![
        (
            Command::SubmitJob {
                idempotency_key: None,
                spec: bad_spec,
            },
            |r| matches!(r, Rejection::InvalidField { field, .. } if field == "workflows[0].cores"),
        ),
        (
            Command::SubmitJob {
                idempotency_key: Some(IdempotencyKey::new("ns", "k")),
                spec: spec("other body", 1),
            },
            |r| {
                matches!(
                    r,
                    Rejection::IdempotencyConflict {
                        original_job: Some(_),
                        ..
                    }
                )
            },
        ),
        (
            Command::SubmitJob {
                idempotency_key: Some(IdempotencyKey::new("ns", "")),
                spec: spec("x", 1),
            },
            |r| matches!(r, Rejection::InvalidField { field, .. } if field == "idempotency_key.key"),
        ),
        (
            Command::CancelJob {
                job: JobId(5),
                fence_token: None,
            },
            |r| matches!(r, Rejection::JobNotFound { .. }),
        ),
        (
            Command::CancelJob {
                job: running,
                fence_token: Some(FenceToken(9)),
            },
            |r| matches!(r, Rejection::FenceMismatch { .. }),
        ),
        (
            Command::BecomeLeader {
                term: Term(1),
                node: NodeId(3),
            },
            |r| matches!(r, Rejection::StaleLeader { .. }),
        ),
        (
            Command::DispatchWorkflow {
                job: running,
                workflow: WorkflowId(1),
                worker: Some(WorkerId(2)),
            },
            |r| matches!(r, Rejection::WorkerUnavailable { .. }),
        ),
        (
            Command::DispatchWorkflow {
                job: done,
                workflow: WorkflowId(0),
                worker: None,
            },
            |r| matches!(r, Rejection::JobTerminal { .. }),
        ),
        (
            Command::RequestExtension {
                job: running,
                worker: WorkerId(3),
                progress: 1,
            },
            |r| matches!(r, Rejection::NotRunningJob { .. }),
        ),
        (
            Command::DrainWorker {
                worker: WorkerId(2),
            },
            |r| matches!(r, Rejection::WorkerUnavailable { .. }),
        ),
        (
            Command::WorkerLost {
                worker: WorkerId(42),
            },
            |r| matches!(r, Rejection::WorkerNotFound { .. }),
        ),
        (
            Command::RegisterWorker {
                worker: WorkerId(4),
                cores: 1,
                address: "x".repeat(300),
            },
            |r| matches!(r, Rejection::InvalidField { field, .. } if field == "address"),
        ),
    ];
    for (command, check) in rows {
        let described = format!("{command:?}");
        match decide(state, command, now) {
            Err(reason) => assert!(check(&reason), "{described}: got {reason:?}"),
            Ok(events) => panic!("{described}: expected a refusal, got {events:?}"),
        }
    }
    let wide = {
        let mut wide = spec("wide", 1);
        wide.workflows[0].cores = 64;
        wide
    };
    let mut sim = sim;
    let job = sim.submit(wide);
    let outcome = sim.exec(Command::DispatchWorkflow {
        job,
        workflow: WorkflowId(0),
        worker: None,
    });
    assert_eq!(
        rejection(outcome),
        Rejection::NoCapacity { cores_needed: 64 }
    );
    let outcome = sim.exec(Command::DispatchWorkflow {
        job,
        workflow: WorkflowId(0),
        worker: Some(WorkerId(1)),
    });
    assert!(matches!(
        rejection(outcome),
        Rejection::InsufficientCapacity {
            cores_needed: 64,
            ..
        }
    ));
}

#[test]
fn records_that_contradict_each_other_are_refused() {
    let sim = fixture().sim;
    let records = sim.state.to_records();
    let mut twice = records.clone();
    twice.jobs.push(twice.jobs[0].clone());
    assert!(State::from_owned_records(twice).is_err(), "duplicate job");
    let mut future = records.clone();
    future.globals.last_applied = LogIndex(1);
    assert!(
        State::from_owned_records(future).is_err(),
        "job newer than the last index"
    );
    let mut orphan = records.clone();
    orphan.workers.clear();
    assert!(
        State::from_owned_records(orphan).is_err(),
        "running on an unknown worker"
    );
    let mut dangling = records.clone();
    dangling.jobs.retain(|job| job.idempotency_key.is_none());
    assert!(
        State::from_owned_records(dangling).is_err(),
        "key naming a missing job"
    );
    let mut mismatched = records.clone();
    mismatched.jobs[0].workflows.clear();
    assert!(
        State::from_owned_records(mismatched).is_err(),
        "workflow lists differ"
    );
    assert!(State::from_owned_records(records).is_ok());
}
