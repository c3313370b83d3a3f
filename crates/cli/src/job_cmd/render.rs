//! Text rendering of jobs, lists, cancels and timelines for `steward job …`.
//!
//! It deliberately renders only: no I/O, no decisions (so it is easy to snapshot-test).

use std::fmt::Write as _;

use steward_node::api::types::{
    CancelJobResponse, CancelOutcome, JobEventsResponse, JobListResponse, JobView,
    SubmitJobResponse, WorkflowView,
};

use crate::output::timestamp;

/// A job, one `key: value` per line, then its workflows.
pub fn job(job: &JobView) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail (here and below).
    let _ = writeln!(out, "job {}  {}", job.id, job.status);
    let _ = writeln!(out, "  name:       {}", job.name);
    let _ = writeln!(out, "  submitted:  {}", timestamp(job.submitted_at_ms));
    if let Some(finished) = job.finished_at_ms {
        let _ = writeln!(out, "  finished:   {}", timestamp(finished));
    }
    let _ = writeln!(out, "  timeout:    {} ms", job.timeout_ms);
    if job.cancelling {
        let _ = writeln!(out, "  cancelling: yes (waiting for workflows to stop)");
    }
    if !job.labels.is_empty() {
        let labels: Vec<String> = job.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "  labels:     {}", labels.join(" "));
    }
    if let Some(reason) = &job.reason {
        let _ = writeln!(out, "  reason:     {reason}");
    }
    let _ = writeln!(out, "  fence:      {}", job.fence_token);
    let _ = writeln!(out, "  workflows:");
    for workflow in &job.workflows {
        let _ = writeln!(
            out,
            "    {:<16} {:<11} cores={} attempt={} worker={}  {}",
            workflow.name,
            workflow.status,
            workflow.cores,
            workflow.attempt,
            workflow
                .worker
                .map_or_else(|| "-".to_owned(), |w| w.to_string()),
            workflow.command.join(" ")
        );
        if let Some(timings) = workflow_timings(workflow) {
            let _ = writeln!(out, "      {timings}");
        }
    }
    out
}

/// `started … finished … (N.N s)` of a workflow's current attempt, or `None` before it started
/// (a workflow cancelled before running has only a finish time).
fn workflow_timings(workflow: &WorkflowView) -> Option<String> {
    match (workflow.started_at_ms, workflow.finished_at_ms) {
        (None, None) => None,
        (Some(started), None) => Some(format!("started {}", timestamp(started))),
        (None, Some(finished)) => Some(format!("finished {}", timestamp(finished))),
        (Some(started), Some(finished)) => {
            let took_ms = finished.saturating_sub(started);
            Some(format!(
                "started {}  finished {}  ({}.{:03} s)",
                timestamp(started),
                timestamp(finished),
                took_ms / 1000,
                took_ms % 1000
            ))
        }
    }
}

/// The answer to a submit.
pub fn submitted(answer: &SubmitJobResponse) -> String {
    let verb = if answer.duplicate {
        "already submitted (duplicate idempotency key)"
    } else {
        "submitted"
    };
    format!("job {} {verb}: {}\n", answer.job.id, answer.job.status)
}

/// A table of jobs.
pub fn job_table(page: &JobListResponse) -> String {
    let mut out = format!(
        "{:>8}  {:<10}  {:<23}  {:>9}  {}\n",
        "ID", "STATUS", "SUBMITTED", "WORKFLOWS", "NAME"
    );
    for job in &page.jobs {
        let _ = writeln!(
            out,
            "{:>8}  {:<10}  {:<23}  {:>9}  {}",
            job.id,
            job.status.as_str(),
            timestamp(job.submitted_at_ms),
            job.workflows.len(),
            job.name
        );
    }
    if let Some(cursor) = &page.next_cursor {
        let _ = writeln!(out, "(more: --cursor {cursor}, or --all)");
    }
    out
}

/// The answer to a cancel.
pub fn cancel(answer: &CancelJobResponse) -> String {
    let id = answer.job.id;
    match answer.outcome {
        CancelOutcome::Cancelled => format!("job {id} cancelled ({})\n", answer.job.status),
        CancelOutcome::AlreadyCancelled => format!("job {id} was already cancelled\n"),
        CancelOutcome::AlreadyTerminal => {
            format!(
                "job {id} had already ended ({}); nothing changed\n",
                answer.job.status
            )
        }
    }
}

/// A job's timeline.
pub fn events(timeline: &JobEventsResponse) -> String {
    let mut out = format!("job {} timeline\n", timeline.job_id);
    for event in &timeline.events {
        let detail = match &event.detail {
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let _ = writeln!(
            out,
            "  {}  #{:<8} {:<24} {}",
            timestamp(event.at_ms),
            event.index,
            event.kind,
            detail
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(started_at_ms: Option<u64>, finished_at_ms: Option<u64>) -> WorkflowView {
        WorkflowView {
            name: "build".into(),
            command: vec!["true".into()],
            cores: 1,
            status: "completed".into(),
            attempt: 1,
            worker: Some(7),
            last_error: None,
            exit_code: None,
            started_at_ms,
            finished_at_ms,
        }
    }

    #[test]
    fn timings_show_start_finish_and_duration() {
        assert_eq!(workflow_timings(&workflow(None, None)), None);
        let running = workflow_timings(&workflow(Some(1_000), None)).unwrap();
        assert!(running.starts_with("started "), "{running}");
        assert!(!running.contains("finished"), "{running}");
        let done = workflow_timings(&workflow(Some(1_000), Some(13_250))).unwrap();
        assert!(done.contains("finished "), "{done}");
        assert!(done.ends_with("(12.250 s)"), "{done}");
    }
}
