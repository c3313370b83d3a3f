//! Recorded workflow exits: what an exit report adds, what it cannot add, the bound, and the
//! formats (snapshot format 1 and event schema 1 still read).

use super::harness::{rejection, spec, Sim};
use crate::{
    decode_proposal, Command, Event, ExitRecord, JobStatus, Outcome, Proposal, Rejection,
    ReportKind, State, WorkerId, WorkerReport, WorkflowId, WorkflowRef, OUTPUT_RECORDS_MAX,
    OUTPUT_TAIL_BYTES_MAX,
};

fn leader_with_worker(cores: u32) -> Sim {
    let mut sim = Sim::new();
    sim.become_leader(1, 1);
    sim.register(1, cores);
    sim
}

fn exit(code: i32, tail: &str) -> ExitRecord {
    ExitRecord {
        exit_code: Some(code),
        signal: None,
        duration_ms: 42,
        output_tail: tail.to_owned(),
    }
}

#[test]
fn an_exit_report_records_its_output_before_the_completion() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("build", 1));
    sim.run(job, 0, 1);
    let outcome = sim.report_exit(job, 0, 1, ReportKind::Completed, exit(0, "done\n"));
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(sim.status(job), JobStatus::Completed);
    let (_, proposal) = sim.log.last().unwrap();
    let names: Vec<&str> = proposal.events.iter().map(Event::name).collect();
    assert_eq!(names, ["workflow_exited", "workflow_completed"]);
    let output = sim.state.output(job, WorkflowId(0)).unwrap();
    assert_eq!(output.exit, exit(0, "done\n"));
    assert_eq!(output.worker, WorkerId(1));
    assert_eq!(output.at_ms, sim.now_ms);
    let touched = &sim.last_report.as_ref().unwrap().touched;
    assert!(touched.outputs.contains(&(job, WorkflowId(0))));
}

#[test]
fn a_failure_and_a_cancellation_record_their_exits_too() {
    let mut sim = leader_with_worker(4);
    let mut failing = spec("build", 1);
    failing.retry_budget = 0;
    let failed_job = sim.submit(failing);
    sim.run(failed_job, 0, 1);
    let failed = ReportKind::Failed {
        error: "exit status 3".into(),
        exit_code: Some(3),
    };
    sim.report_exit(failed_job, 0, 1, failed, exit(3, "oops"));
    assert_eq!(sim.status(failed_job), JobStatus::Failed);
    assert_eq!(
        sim.state.output(failed_job, WorkflowId(0)).unwrap().exit,
        exit(3, "oops")
    );

    let cancelled_job = sim.submit(spec("sleep", 1));
    sim.run(cancelled_job, 0, 1);
    sim.exec(Command::CancelJob {
        job: cancelled_job,
        fence_token: None,
    });
    let killed = ExitRecord {
        exit_code: None,
        signal: Some(15),
        duration_ms: 9,
        output_tail: String::new(),
    };
    let outcome = sim.report_exit(cancelled_job, 0, 1, ReportKind::Cancelled, killed.clone());
    assert_eq!(outcome, Outcome::Applied);
    assert_eq!(sim.status(cancelled_job), JobStatus::Cancelled);
    assert_eq!(
        sim.state.output(cancelled_job, WorkflowId(0)).unwrap().exit,
        killed
    );
}

#[test]
fn exit_details_on_a_start_or_progress_report_are_ignored() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("build", 1));
    sim.dispatch(job, 0, 1);
    let outcome = sim.report_exit(job, 0, 1, ReportKind::Started, exit(0, "early"));
    assert_eq!(outcome, Outcome::Applied);
    let progress = ReportKind::Progress { progress: 1 };
    assert_eq!(
        sim.report_exit(job, 0, 1, progress, exit(0, "x")),
        Outcome::Applied
    );
    assert!(sim.state.output(job, WorkflowId(0)).is_none());
    assert_eq!(sim.state.outputs_of(job).count(), 0);
}

#[test]
fn a_refused_exit_report_records_nothing() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("build", 1));
    sim.run(job, 0, 1);
    let stale = WorkerReport {
        worker: WorkerId(1),
        target: WorkflowRef {
            job,
            workflow: WorkflowId(0),
            attempt: crate::Attempt(sim.attempt(job, 0).0 + 1),
        },
        kind: ReportKind::Completed,
        exit: Some(exit(0, "late")),
    };
    let outcome = sim.exec(Command::Report(stale));
    assert!(matches!(rejection(outcome), Rejection::StaleAttempt { .. }));
    let wrong_worker = WorkerReport {
        worker: WorkerId(2),
        target: WorkflowRef {
            job,
            workflow: WorkflowId(0),
            attempt: sim.attempt(job, 0),
        },
        kind: ReportKind::Completed,
        exit: Some(exit(0, "not mine")),
    };
    let outcome = sim.exec(Command::Report(wrong_worker));
    assert!(matches!(rejection(outcome), Rejection::WrongWorker { .. }));
    assert!(sim.state.output(job, WorkflowId(0)).is_none());
}

#[test]
fn apply_refuses_an_exit_of_a_finished_job_even_if_proposed() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("build", 1));
    sim.run(job, 0, 1);
    let target = WorkflowRef {
        job,
        workflow: WorkflowId(0),
        attempt: sim.attempt(job, 0),
    };
    sim.report(job, 0, 1, ReportKind::Completed);
    let late = Event::WorkflowExited {
        target,
        worker: WorkerId(1),
        exit: exit(0, "after the fact"),
    };
    assert!(matches!(
        rejection(sim.propose(vec![late])),
        Rejection::JobTerminal { .. }
    ));
    assert!(sim.state.output(job, WorkflowId(0)).is_none());
}

#[test]
fn a_retried_workflow_keeps_the_latest_attempts_exit() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("flaky", 1));
    sim.run(job, 0, 1);
    let failed = ReportKind::Failed {
        error: "exit status 1".into(),
        exit_code: Some(1),
    };
    let first = sim.attempt(job, 0);
    sim.report_exit(job, 0, 1, failed, exit(1, "first try"));
    assert_eq!(sim.state.output(job, WorkflowId(0)).unwrap().attempt, first);
    sim.run(job, 0, 1);
    let second = sim.attempt(job, 0);
    assert_ne!(first, second);
    sim.report_exit(job, 0, 1, ReportKind::Completed, exit(0, "second try"));
    let output = sim.state.output(job, WorkflowId(0)).unwrap();
    assert_eq!(output.attempt, second);
    assert_eq!(output.exit.output_tail, "second try");
    assert_eq!(sim.status(job), JobStatus::Completed);
}

#[test]
fn an_oversized_tail_is_cut_to_its_last_bytes_even_when_proposed_raw() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("chatty", 1));
    sim.run(job, 0, 1);
    let target = WorkflowRef {
        job,
        workflow: WorkflowId(0),
        attempt: sim.attempt(job, 0),
    };
    let long = "a".repeat(3 * OUTPUT_TAIL_BYTES_MAX) + "the end";
    let raw = Event::WorkflowExited {
        target,
        worker: WorkerId(1),
        exit: exit(0, &long),
    };
    assert_eq!(sim.propose(vec![raw]), Outcome::Applied);
    let tail = &sim
        .state
        .output(job, WorkflowId(0))
        .unwrap()
        .exit
        .output_tail;
    assert_eq!(tail.len(), OUTPUT_TAIL_BYTES_MAX);
    assert!(tail.ends_with("the end"));
}

#[test]
fn outputs_beyond_the_bound_drop_the_oldest_jobs_first() {
    let mut sim = leader_with_worker(4);
    let per_job = crate::WORKFLOWS_PER_JOB_MAX;
    let jobs_needed = OUTPUT_RECORDS_MAX / per_job + 1;
    let mut jobs = Vec::new();
    for _ in 0..jobs_needed {
        let job = sim.submit(spec("wide", per_job));
        for workflow in 0..per_job as u32 {
            sim.run(job, workflow, 1);
            sim.report_exit(job, workflow, 1, ReportKind::Completed, exit(0, ""));
        }
        jobs.push(job);
    }
    let recorded = jobs_needed * per_job;
    assert!(recorded > OUTPUT_RECORDS_MAX);
    assert_eq!(sim.state.parts().outputs().len(), OUTPUT_RECORDS_MAX);
    let dropped = recorded - OUTPUT_RECORDS_MAX;
    // The oldest job lost its first `dropped` workflows' records, the newest kept all of its.
    assert_eq!(
        sim.state.outputs_of(jobs[0]).count(),
        per_job.saturating_sub(dropped)
    );
    assert_eq!(sim.state.outputs_of(*jobs.last().unwrap()).count(), per_job);
    let last_dropped = WorkflowId(u32::try_from(dropped).unwrap() - 1);
    assert!(sim.state.output(jobs[0], last_dropped).is_none());
    // The last exit pushed the oldest remaining record out, and the view is told.
    let touched = &sim.last_report.as_ref().unwrap().touched;
    assert!(touched.outputs.contains(&(jobs[0], last_dropped)));
}

#[test]
fn snapshots_keep_outputs_and_older_formats_are_refused() {
    let mut sim = leader_with_worker(4);
    let job = sim.submit(spec("build", 2));
    sim.run(job, 0, 1);
    sim.report_exit(job, 0, 1, ReportKind::Completed, exit(0, "kept"));
    let restored = State::restore(&sim.state.snapshot().unwrap()).unwrap();
    assert_eq!(restored.state_hash(), sim.state.state_hash());
    assert_eq!(
        restored
            .output(job, WorkflowId(0))
            .unwrap()
            .exit
            .output_tail,
        "kept"
    );

    // Formats 1 and 2 held unpacked job records: refused by version, as is a future format.
    let current = State::restore(&sim.state.snapshot().unwrap()).unwrap();
    assert_eq!(current.job(job), sim.state.job(job));
    for found in [1u16, 2, 4] {
        let mut bytes = b"STSN".to_vec();
        bytes.extend_from_slice(&found.to_le_bytes());
        assert!(matches!(
            State::restore(&bytes),
            Err(crate::Error::UnsupportedVersion { found: f, .. }) if f == found
        ));
    }
}

#[test]
fn a_schema_1_proposal_still_decodes() {
    let proposal = Proposal {
        stamp_ms: 5,
        events: vec![Event::WorkerLost {
            worker: WorkerId(3),
        }],
    };
    let mut bytes = b"STEV\x01\x00".to_vec();
    bytes.extend(bincode::serde::encode_to_vec(&proposal, bincode::config::standard()).unwrap());
    assert_eq!(decode_proposal(&bytes).unwrap(), proposal);
    let mut unknown = b"STEV\x03\x00".to_vec();
    unknown.extend(bincode::serde::encode_to_vec(&proposal, bincode::config::standard()).unwrap());
    assert!(matches!(
        decode_proposal(&unknown),
        Err(crate::Error::UnsupportedVersion { found: 3, .. })
    ));
}
