//! Scenario tests: whole lifecycles through `decide` and `apply`.

use super::harness::{spec, Sim};
use crate::{JobStatus, Outcome, ReportKind, WorkflowStatus};

#[test]
fn two_workflows_complete_and_the_job_completes() {
    let mut sim = Sim::new();
    sim.become_leader(1, 1);
    sim.register(1, 4);
    let job = sim.submit(spec("build", 2));
    assert_eq!(sim.status(job), JobStatus::Pending);
    sim.run(job, 0, 1);
    sim.run(job, 1, 1);
    assert_eq!(sim.status(job), JobStatus::Running);
    assert_eq!(sim.state.cores_used(crate::WorkerId(1)), 2);
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
    assert_eq!(sim.state.cores_used(crate::WorkerId(1)), 0);
}
