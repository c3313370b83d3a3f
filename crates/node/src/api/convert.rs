//! Conversions between the API's wire types and the state machine's domain types: submit body →
//! `JobSpec`, `State` → `JobView` / timeline, `Rejection` → the API error.
//!
//! It deliberately does not decide anything: defaults come from the state machine's limits, and
//! refusals are the state machine's, only renamed into HTTP terms.

use axum::http::StatusCode;
use steward_statemachine as sm;

use super::error::{ApiError, ErrorCode};
use super::types::{
    EventView, JobEventsResponse, JobStatus, JobView, SubmitJobRequest, WorkflowView,
};

/// The state machine's status for a wire status.
pub fn status_to_domain(status: JobStatus) -> sm::JobStatus {
    match status {
        JobStatus::Pending => sm::JobStatus::Pending,
        JobStatus::Running => sm::JobStatus::Running,
        JobStatus::Completed => sm::JobStatus::Completed,
        JobStatus::Failed => sm::JobStatus::Failed,
        JobStatus::Cancelled => sm::JobStatus::Cancelled,
        JobStatus::TimedOut => sm::JobStatus::TimedOut,
    }
}

/// The wire status for a state machine status.
pub fn status_to_wire(status: sm::JobStatus) -> JobStatus {
    match status {
        sm::JobStatus::Pending => JobStatus::Pending,
        sm::JobStatus::Running => JobStatus::Running,
        sm::JobStatus::Completed => JobStatus::Completed,
        sm::JobStatus::Failed => JobStatus::Failed,
        sm::JobStatus::Cancelled => JobStatus::Cancelled,
        sm::JobStatus::TimedOut => JobStatus::TimedOut,
    }
}

/// The domain spec for a validated submit body; absent fields take the state machine's
/// defaults. Values were range-checked by `validate::submit`, so the casts cannot wrap.
pub fn job_spec(request: SubmitJobRequest) -> sm::JobSpec {
    let name = request
        .name
        .unwrap_or_else(|| default_name(&request.workflows));
    let workflows = request
        .workflows
        .into_iter()
        .map(|workflow| sm::WorkflowSpec {
            name: workflow.name,
            command: workflow.command,
            env: workflow.env,
            cores: workflow
                .cores
                .map_or(1, |cores| cores.clamp(1, i64::from(u32::MAX)) as u32),
            timeout_ms: workflow.timeout_ms.map(|ms| ms.max(1) as u64),
            working_dir: workflow.working_dir,
        })
        .collect();
    let mut spec = sm::JobSpec::new(name, workflows);
    spec.labels = request.labels;
    if let Some(timeout_ms) = request.timeout_ms {
        spec.timeout_ms = timeout_ms.max(1) as u64;
    }
    if let Some(retry_budget) = request.retry_budget {
        spec.retry_budget = retry_budget;
    }
    spec.cancel_grace_ms = request
        .cancel_grace_ms
        .map(|grace_ms| grace_ms.max(1).unsigned_abs());
    spec
}

/// A job without a name is named after the program of its first workflow: the last path
/// component of `command[0]` (`./ci/build.sh` names the job `build.sh`), shortened to the name
/// limit on a character boundary; `job` when that is blank.
///
/// Not the whole command line: the arguments are already in the spec, and copying them into
/// the name made every unnamed job log and keep them twice (ADR 0032).
fn default_name(workflows: &[super::types::WorkflowSpec]) -> String {
    let program = workflows
        .first()
        .and_then(|workflow| workflow.command.first())
        .map_or("", |program| program.rsplit('/').next().unwrap_or(program));
    let mut name = String::new();
    for c in program.chars() {
        if name.len() + c.len_utf8() > super::validate::NAME_BYTES_MAX {
            break;
        }
        name.push(c);
    }
    if name.trim().is_empty() {
        "job".to_owned()
    } else {
        name
    }
}

/// The wire view of job `id`, or `None` if the state does not hold it.
pub fn job_view(state: &sm::State, id: u64) -> Option<JobView> {
    let job = state.job(sm::JobId(id))?;
    let view = state.job_view(sm::JobId(id))?;
    let workflows = view
        .workflows
        .iter()
        .zip(job.spec().to_spec().workflows)
        .map(|(runtime, spec)| WorkflowView {
            name: runtime.name.clone(),
            command: spec.command,
            cores: runtime.cores,
            status: serde_plain_name(&runtime.status),
            attempt: runtime.attempt.0,
            worker: runtime.worker.map(|worker| worker.0),
            last_error: runtime.last_error.clone(),
            exit_code: runtime.exit_code,
            started_at_ms: runtime.started_at_ms,
            finished_at_ms: runtime.finished_at_ms,
        })
        .collect();
    let reason = match (&view.timed_out, view.status) {
        (Some(record), _) => Some(format!("timed out ({})", record.reason)),
        (None, sm::JobStatus::Failed) => {
            let all = job.spec().workflow_names();
            let names: Vec<&str> = view
                .failed_workflows
                .iter()
                .filter_map(|id| all.get(id.0 as usize).copied())
                .collect();
            Some(format!("failed workflows: {}", names.join(", ")))
        }
        _ => None,
    };
    Some(JobView {
        id,
        name: view.name,
        status: status_to_wire(view.status),
        cancelling: view.cancelling,
        fence_token: view.fence_token.0,
        idempotency_key: view.idempotency_key.as_ref().map(|key| key.key.clone()),
        namespace: view.idempotency_key.map(|key| key.namespace),
        labels: view.labels,
        workflows,
        timeout_ms: view.timeout_ms,
        total_extensions_granted_ms: view.total_extensions_granted_ms,
        submitted_at_ms: view.submitted_at_ms,
        finished_at_ms: view.finished_at_ms,
        reason,
        retries_used: view.retries_used,
    })
}

/// The snake_case serde name of a unit enum variant (`WorkflowStatus::Running` → `running`).
fn serde_plain_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".to_owned(),
    }
}

/// Job `id`'s timeline, or `None` if the state does not hold the job.
pub fn timeline(state: &sm::State, id: u64) -> Option<JobEventsResponse> {
    let entries = state.timeline(sm::JobId(id))?;
    let events = entries
        .iter()
        .map(|entry| {
            let (kind, detail) = match serde_json::to_value(entry.what) {
                Ok(serde_json::Value::String(kind)) => (kind, serde_json::Value::Null),
                Ok(serde_json::Value::Object(map)) if map.len() == 1 => {
                    let (kind, detail) = map.into_iter().next().unwrap_or_default();
                    (kind, detail)
                }
                Ok(other) => ("unknown".to_owned(), other),
                Err(err) => (
                    "unknown".to_owned(),
                    serde_json::Value::String(err.to_string()),
                ),
            };
            EventView {
                index: entry.index.0,
                at_ms: entry.at_ms,
                kind,
                detail,
            }
        })
        .collect();
    Some(JobEventsResponse { job_id: id, events })
}

/// The API error for a state machine refusal (nothing changed when one is returned).
pub fn rejection(reason: &sm::Rejection) -> ApiError {
    let message = reason.to_string();
    match reason {
        sm::Rejection::InvalidField { field, .. } => {
            ApiError::invalid_field(field.clone(), message)
        }
        sm::Rejection::JobNotFound { job } => {
            ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message).with_job(job.0)
        }
        sm::Rejection::WorkflowNotFound { job, .. } => {
            ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
                .with_job(job.0)
                .with_field("workflow")
        }
        sm::Rejection::WorkerNotFound { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
        }
        sm::Rejection::IdempotencyConflict { key, original_job } => {
            let original = original_job.map_or_else(
                || "a job still being submitted".to_owned(),
                |job| format!("job {job}"),
            );
            let error = ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::IdempotencyConflict,
                format!(
                    "idempotency key `{}` was already used by {original} with a different body",
                    key.key
                ),
            )
            .with_field("idempotency-key");
            match original_job {
                Some(job) => error.with_job(job.0),
                None => error,
            }
        }
        sm::Rejection::IdempotencyCapacity { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::CapacityExceeded,
            message,
        ),
        sm::Rejection::FenceMismatch { .. } => {
            ApiError::new(StatusCode::CONFLICT, ErrorCode::FenceMismatch, message)
                .with_field("fence_token")
        }
        _ => ApiError::new(StatusCode::CONFLICT, ErrorCode::Rejected, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::WorkflowSpec;

    #[test]
    fn spec_takes_state_machine_defaults_and_names_unnamed_jobs() {
        let request = SubmitJobRequest {
            name: None,
            labels: Default::default(),
            workflows: vec![WorkflowSpec {
                name: "main".into(),
                command: vec!["echo".into(), "hi".into()],
                env: Default::default(),
                cores: Some(3),
                timeout_ms: Some(500),
                working_dir: None,
            }],
            timeout_ms: None,
            retry_budget: None,
            cancel_grace_ms: None,
        };
        let spec = job_spec(request.clone());
        assert_eq!(
            spec.name, "echo",
            "named after the program, not the command line"
        );
        let named = |program: &str| {
            let mut request = request.clone();
            request.workflows[0].command = vec![program.to_owned(), "--flag".to_owned()];
            job_spec(request).name
        };
        assert_eq!(named("./ci/build.sh"), "build.sh");
        assert_eq!(named("/usr/bin/"), "job", "a blank program name falls back");
        assert_eq!(
            named(&"é".repeat(200)).len(),
            256,
            "cut on a character boundary"
        );
        assert_eq!(spec.timeout_ms, sm::JOB_TIMEOUT_MS_DEFAULT);
        assert_eq!(spec.workflows[0].cores, 3);
        assert_eq!(spec.workflows[0].timeout_ms, Some(500));
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn statuses_round_trip() {
        for status in JobStatus::ALL {
            assert_eq!(status_to_wire(status_to_domain(status)), status);
            assert_eq!(status_to_domain(status).name(), status.as_str());
        }
    }

    #[test]
    fn rejections_keep_their_field() {
        let invalid = sm::Rejection::InvalidField {
            field: "workflows[0].cores".into(),
            reason: "zero".into(),
        };
        let err = rejection(&invalid);
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.detail.field.as_deref(), Some("workflows[0].cores"));
        let conflict = sm::Rejection::IdempotencyConflict {
            key: sm::IdempotencyKey::new("ns", "k"),
            original_job: Some(sm::JobId(7000)),
        };
        let err = rejection(&conflict);
        assert_eq!(
            (err.status, err.detail.job_id),
            (StatusCode::CONFLICT, Some(7000))
        );
    }
}
