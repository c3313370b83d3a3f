//! Validation of request bodies beyond what their types enforce: non-empty commands, positive
//! cores and timeouts, bounded sizes. Every failure names the offending field as a path.
//!
//! The limits are the state machine's own, so the API and `decide` never disagree; the spec is
//! validated again by the state machine (`JobSpec::validate`) after conversion. It deliberately
//! does not check anything that depends on cluster state (duplicate keys, unknown jobs): that is
//! the state machine's `decide`, run on the leader.

use std::collections::BTreeSet;

use super::error::{ApiError, ApiResult};
use super::types::SubmitJobRequest;

/// Most workflows one job may have (the state machine's limit).
pub const WORKFLOWS_PER_JOB_MAX: usize = steward_statemachine::WORKFLOWS_PER_JOB_MAX;
/// Most cores one workflow may ask for (the state machine's limit).
pub const CORES_MAX: i64 = steward_statemachine::CORES_MAX as i64;
/// Longest job, workflow or label name, in bytes (the state machine's limit).
pub const NAME_BYTES_MAX: usize = steward_statemachine::NAME_BYTES_MAX;
/// Longest accepted timeout in milliseconds (the state machine's limit).
pub const TIMEOUT_MS_MAX: i64 = steward_statemachine::TIMEOUT_MS_MAX as i64;
/// Longest idempotency key, in bytes (the state machine's limit).
pub const KEY_BYTES_MAX: usize = steward_statemachine::KEY_BYTES_MAX;
/// Longest namespace, in bytes (the state machine's limit).
pub const NAMESPACE_BYTES_MAX: usize = steward_statemachine::NAMESPACE_BYTES_MAX;

const _: () = assert!(WORKFLOWS_PER_JOB_MAX >= 1);
const _: () = assert!(CORES_MAX >= 1);

/// Checks a submit body; the first problem found is returned, naming its field.
pub fn submit(request: &SubmitJobRequest) -> ApiResult<()> {
    if let Some(name) = &request.name {
        name_ok("name", name)?;
    }
    if let Some(timeout_ms) = request.timeout_ms {
        timeout_ok("timeout_ms", timeout_ms)?;
    }
    if let Some(grace_ms) = request.cancel_grace_ms {
        let max = steward_statemachine::CANCEL_GRACE_MS_MAX;
        if grace_ms <= 0 || grace_ms.unsigned_abs() > max {
            return Err(ApiError::invalid_field(
                "cancel_grace_ms",
                format!("cancel grace must be 1 to {max} ms, got {grace_ms}"),
            ));
        }
    }
    for key in request.labels.keys() {
        name_ok(&format!("labels.{key}"), key)?;
    }
    if request.workflows.is_empty() {
        return Err(ApiError::invalid_field(
            "workflows",
            "a job needs at least one workflow",
        ));
    }
    if request.workflows.len() > WORKFLOWS_PER_JOB_MAX {
        return Err(ApiError::invalid_field(
            "workflows",
            format!("a job may have at most {WORKFLOWS_PER_JOB_MAX} workflows"),
        ));
    }
    let mut names = BTreeSet::new();
    for (i, workflow) in request.workflows.iter().enumerate() {
        let at = |field: &str| format!("workflows[{i}].{field}");
        name_ok(&at("name"), &workflow.name)?;
        if !names.insert(workflow.name.as_str()) {
            return Err(ApiError::invalid_field(
                at("name"),
                format!("workflow name `{}` is used twice", workflow.name),
            ));
        }
        match workflow.command.first() {
            None => {
                return Err(ApiError::invalid_field(
                    at("command"),
                    "command must not be empty",
                ))
            }
            Some(program) if program.trim().is_empty() => {
                return Err(ApiError::invalid_field(
                    format!("workflows[{i}].command[0]"),
                    "the program (first element of command) must not be empty",
                ))
            }
            Some(_) => {}
        }
        if let Some(cores) = workflow.cores {
            if !(1..=CORES_MAX).contains(&cores) {
                return Err(ApiError::invalid_field(
                    at("cores"),
                    format!("cores must be between 1 and {CORES_MAX}, got {cores}"),
                ));
            }
        }
        if let Some(timeout_ms) = workflow.timeout_ms {
            timeout_ok(&at("timeout_ms"), timeout_ms)?;
        }
        if let Some(dir) = &workflow.working_dir {
            let max = steward_statemachine::VALUE_BYTES_MAX;
            if dir.is_empty() || dir.contains('\0') || dir.len() > max {
                return Err(ApiError::invalid_field(
                    at("working_dir"),
                    format!("working_dir must be 1 to {max} bytes without NUL"),
                ));
            }
        }
    }
    Ok(())
}

/// Checks an idempotency key or namespace header value against `bytes_max`.
pub fn header_token(header: &str, value: &str, bytes_max: usize) -> ApiResult<()> {
    if value.is_empty() || value.len() > bytes_max {
        return Err(ApiError::invalid_field(
            header,
            format!("must be 1 to {bytes_max} bytes"),
        ));
    }
    Ok(())
}

fn name_ok(field: &str, name: &str) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::invalid_field(field, "must not be empty"));
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(ApiError::invalid_field(
            field,
            format!("must be at most {NAME_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

fn timeout_ok(field: &str, timeout_ms: i64) -> ApiResult<()> {
    if timeout_ms <= 0 {
        return Err(ApiError::invalid_field(
            field,
            format!("timeout must be positive, got {timeout_ms}"),
        ));
    }
    if timeout_ms > TIMEOUT_MS_MAX {
        return Err(ApiError::invalid_field(
            field,
            format!("timeout must be at most {TIMEOUT_MS_MAX} ms"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::WorkflowSpec;

    fn job(workflows: Vec<WorkflowSpec>) -> SubmitJobRequest {
        SubmitJobRequest {
            name: None,
            labels: Default::default(),
            workflows,
            timeout_ms: None,
            retry_budget: None,
            cancel_grace_ms: None,
        }
    }

    fn workflow(name: &str, command: &[&str]) -> WorkflowSpec {
        WorkflowSpec {
            name: name.into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            env: Default::default(),
            cores: None,
            timeout_ms: None,
            working_dir: None,
        }
    }

    fn field_of(request: &SubmitJobRequest) -> Option<String> {
        submit(request).err().and_then(|e| e.detail.field)
    }

    #[test]
    fn accepts_minimal_job() {
        assert!(submit(&job(vec![workflow("main", &["true"])])).is_ok());
    }

    #[test]
    fn names_each_bad_field() {
        assert_eq!(field_of(&job(vec![])).as_deref(), Some("workflows"));
        let empty = job(vec![workflow("main", &[])]);
        assert_eq!(field_of(&empty).as_deref(), Some("workflows[0].command"));
        let blank = job(vec![workflow("a", &["x"]), workflow("b", &[" "])]);
        assert_eq!(field_of(&blank).as_deref(), Some("workflows[1].command[0]"));
        let twice = job(vec![workflow("a", &["x"]), workflow("a", &["y"])]);
        assert_eq!(field_of(&twice).as_deref(), Some("workflows[1].name"));
        for cores in [0, -1, CORES_MAX + 1] {
            let mut bad = job(vec![workflow("a", &["x"])]);
            bad.workflows[0].cores = Some(cores);
            assert_eq!(field_of(&bad).as_deref(), Some("workflows[0].cores"));
        }
        for timeout in [0, -5] {
            let mut bad = job(vec![workflow("a", &["x"])]);
            bad.timeout_ms = Some(timeout);
            assert_eq!(field_of(&bad).as_deref(), Some("timeout_ms"));
            bad.timeout_ms = None;
            bad.workflows[0].timeout_ms = Some(timeout);
            assert_eq!(field_of(&bad).as_deref(), Some("workflows[0].timeout_ms"));
        }
        let max = steward_statemachine::CANCEL_GRACE_MS_MAX as i64;
        for grace in [0, -1, max + 1] {
            let mut bad = job(vec![workflow("a", &["x"])]);
            bad.cancel_grace_ms = Some(grace);
            assert_eq!(field_of(&bad).as_deref(), Some("cancel_grace_ms"));
        }
        for dir in ["", "a\0b"] {
            let mut bad = job(vec![workflow("a", &["x"])]);
            bad.workflows[0].working_dir = Some(dir.into());
            assert_eq!(field_of(&bad).as_deref(), Some("workflows[0].working_dir"));
        }
        let mut good = job(vec![workflow("a", &["x"])]);
        good.workflows[0].working_dir = Some("sub/dir".into());
        good.cancel_grace_ms = Some(max);
        assert!(submit(&good).is_ok());
    }
}
