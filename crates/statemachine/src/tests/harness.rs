//! A test driver: runs commands through `decide` and `apply` like the node does, with a
//! manual clock and consecutive log indexes.

use crate::{
    apply, decide, ApplyReport, Attempt, Command, Event, IdempotencyKey, JobId, JobSpec, LogIndex,
    NodeId, Outcome, Proposal, ReportKind, State, Term, WorkerId, WorkerReport, WorkflowId,
    WorkflowRef, WorkflowSpec,
};

/// State plus clock plus log.
pub struct Sim {
    pub state: State,
    pub now_ms: u64,
    pub log: Vec<(LogIndex, Proposal)>,
    pub last_report: Option<ApplyReport>,
}

impl Sim {
    pub fn new() -> Sim {
        Sim::with_state(State::default())
    }

    pub fn with_state(state: State) -> Sim {
        Sim {
            state,
            now_ms: 1_000_000,
            log: Vec::new(),
            last_report: None,
        }
    }

    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    /// decide + propose + apply; the command's outcome.
    pub fn exec(&mut self, command: Command) -> Outcome {
        match decide(&self.state, command, self.now_ms) {
            Err(reason) => Outcome::Rejected { reason },
            Ok(events) => self.propose(events),
        }
    }

    /// Applies `events` as one proposal stamped now, skipping `decide`.
    pub fn propose(&mut self, events: Vec<Event>) -> Outcome {
        let index = LogIndex(self.state.globals().last_applied.0 + 1);
        let proposal = Proposal {
            stamp_ms: self.now_ms,
            events,
        };
        let report = apply(&mut self.state, index, &proposal);
        let outcome = Outcome::for_command(&report.outcomes);
        self.log.push((index, proposal));
        self.last_report = Some(report);
        outcome
    }

    pub fn submit(&mut self, spec: JobSpec) -> JobId {
        match self.exec(Command::SubmitJob {
            idempotency_key: None,
            spec,
        }) {
            Outcome::JobAccepted { job } => job,
            other => panic!("submit refused: {other:?}"),
        }
    }

    pub fn submit_keyed(&mut self, key: &IdempotencyKey, spec: JobSpec) -> Outcome {
        self.exec(Command::SubmitJob {
            idempotency_key: Some(key.clone()),
            spec,
        })
    }

    pub fn register(&mut self, worker: u64, cores: u32) {
        let command = Command::RegisterWorker {
            worker: WorkerId(worker),
            cores,
            address: format!("w{worker}"),
        };
        assert_eq!(self.exec(command), Outcome::Applied);
    }

    pub fn become_leader(&mut self, term: u64, node: u64) -> Outcome {
        self.exec(Command::BecomeLeader {
            term: Term(term),
            node: NodeId(node),
        })
    }

    /// Dispatches the workflow to the worker; the new attempt.
    pub fn dispatch(&mut self, job: JobId, workflow: u32, worker: u64) -> Attempt {
        let command = Command::DispatchWorkflow {
            job,
            workflow: WorkflowId(workflow),
            worker: Some(WorkerId(worker)),
        };
        assert_eq!(self.exec(command), Outcome::Applied, "dispatch");
        self.attempt(job, workflow)
    }

    pub fn attempt(&self, job: JobId, workflow: u32) -> Attempt {
        self.state
            .job(job)
            .unwrap()
            .workflow(WorkflowId(workflow))
            .unwrap()
            .attempt
    }

    pub fn report(&mut self, job: JobId, workflow: u32, worker: u64, kind: ReportKind) -> Outcome {
        let target = WorkflowRef {
            job,
            workflow: WorkflowId(workflow),
            attempt: self.attempt(job, workflow),
        };
        self.exec(Command::Report(WorkerReport {
            worker: WorkerId(worker),
            exit: None,
            target,
            kind,
        }))
    }

    /// A report with exit details (what the node sends for an ended attempt).
    pub fn report_exit(
        &mut self,
        job: JobId,
        workflow: u32,
        worker: u64,
        kind: ReportKind,
        exit: crate::ExitRecord,
    ) -> Outcome {
        let target = WorkflowRef {
            job,
            workflow: WorkflowId(workflow),
            attempt: self.attempt(job, workflow),
        };
        self.exec(Command::Report(WorkerReport {
            worker: WorkerId(worker),
            exit: Some(exit),
            target,
            kind,
        }))
    }

    /// Dispatches and starts the workflow on the worker.
    pub fn run(&mut self, job: JobId, workflow: u32, worker: u64) {
        self.dispatch(job, workflow, worker);
        assert_eq!(
            self.report(job, workflow, worker, ReportKind::Started),
            Outcome::Applied
        );
    }

    pub fn status(&self, job: JobId) -> crate::JobStatus {
        self.state.job(job).unwrap().status
    }

    pub fn workflow_status(&self, job: JobId, workflow: u32) -> crate::WorkflowStatus {
        self.state
            .job(job)
            .unwrap()
            .workflow(WorkflowId(workflow))
            .unwrap()
            .status
    }
}

pub fn workflow(name: &str) -> WorkflowSpec {
    WorkflowSpec::new(name, vec!["sh".into(), "-c".into(), "true".into()])
}

/// A job with `count` one-core workflows.
pub fn spec(name: &str, count: usize) -> JobSpec {
    JobSpec::new(
        name,
        (0..count).map(|n| workflow(&format!("w{n}"))).collect(),
    )
}

pub fn rejection(outcome: Outcome) -> crate::Rejection {
    match outcome {
        Outcome::Rejected { reason } => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}
