//! What a client submits: a job spec with its workflows, and its validation.
//!
//! Validation names the offending field (`workflows[1].cores`) so the HTTP API can answer a 4xx
//! that points at it. It runs in `decide` and again in `apply`, since a spec inside a log entry
//! is input too. This module does not know about ids, scheduling or time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::limits::{
    ARGV_ENTRIES_MAX, CORES_MAX, JOB_TIMEOUT_MS_DEFAULT, KEY_BYTES_MAX, MAP_ENTRIES_MAX,
    NAMESPACE_BYTES_MAX, NAME_BYTES_MAX, RETRY_BUDGET_DEFAULT, RETRY_BUDGET_MAX,
    RETRY_BUDGET_PER_WORKFLOW_DEFAULT, STUCK_THRESHOLD_MS_DEFAULT, STUCK_THRESHOLD_MS_MIN,
    TIMEOUT_MS_MAX, VALUE_BYTES_MAX, WORKFLOWS_PER_JOB_MAX,
};
use crate::{IdempotencyKey, Rejection};

/// A job as submitted: a name, labels, workflows and the limits that govern it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Human name; need not be unique. 1 to [`NAME_BYTES_MAX`] bytes.
    pub name: String,
    /// Free-form labels. At most [`MAP_ENTRIES_MAX`].
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The workflows, at least one, at most [`WORKFLOWS_PER_JOB_MAX`].
    pub workflows: Vec<WorkflowSpec>,
    /// Overall timeout from submission, before extensions. Default: [`JOB_TIMEOUT_MS_DEFAULT`].
    /// Minimum: 1. Maximum: [`TIMEOUT_MS_MAX`].
    #[serde(default = "default_job_timeout_ms")]
    pub timeout_ms: u64,
    /// No progress for this long makes the running job stuck.
    /// Default: [`STUCK_THRESHOLD_MS_DEFAULT`]. Minimum: [`STUCK_THRESHOLD_MS_MIN`].
    #[serde(default = "default_stuck_threshold_ms")]
    pub stuck_threshold_ms: u64,
    /// Re-dispatches the whole job may spend. Default: [`RETRY_BUDGET_DEFAULT`].
    /// Maximum: [`RETRY_BUDGET_MAX`].
    #[serde(default = "default_retry_budget")]
    pub retry_budget: u32,
    /// Re-dispatches each workflow may spend. Default: [`RETRY_BUDGET_PER_WORKFLOW_DEFAULT`].
    /// Maximum: [`RETRY_BUDGET_MAX`].
    #[serde(default = "default_retry_budget_per_workflow")]
    pub retry_budget_per_workflow: u32,
}

/// One workflow: a command run as a child process on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Name, unique within the job. 1 to [`NAME_BYTES_MAX`] bytes.
    pub name: String,
    /// argv: program then arguments; at least one entry, the first non-empty.
    pub command: Vec<String>,
    /// Extra environment variables. At most [`MAP_ENTRIES_MAX`].
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Cores reserved on the worker. Default: 1. Minimum: 1. Maximum: [`CORES_MAX`].
    #[serde(default = "default_cores")]
    pub cores: u32,
    /// Timeout of one attempt from its start, if any. Minimum: 1. Maximum: [`TIMEOUT_MS_MAX`].
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

fn default_job_timeout_ms() -> u64 {
    JOB_TIMEOUT_MS_DEFAULT
}
fn default_stuck_threshold_ms() -> u64 {
    STUCK_THRESHOLD_MS_DEFAULT
}
fn default_retry_budget() -> u32 {
    RETRY_BUDGET_DEFAULT
}
fn default_retry_budget_per_workflow() -> u32 {
    RETRY_BUDGET_PER_WORKFLOW_DEFAULT
}
fn default_cores() -> u32 {
    1
}

impl JobSpec {
    /// A spec with the given name and workflows and every other field at its default.
    pub fn new(name: impl Into<String>, workflows: Vec<WorkflowSpec>) -> JobSpec {
        JobSpec {
            name: name.into(),
            labels: BTreeMap::new(),
            workflows,
            timeout_ms: JOB_TIMEOUT_MS_DEFAULT,
            stuck_threshold_ms: STUCK_THRESHOLD_MS_DEFAULT,
            retry_budget: RETRY_BUDGET_DEFAULT,
            retry_budget_per_workflow: RETRY_BUDGET_PER_WORKFLOW_DEFAULT,
        }
    }

    /// Checks every field; the first problem found is returned, naming the field.
    pub fn validate(&self) -> Result<(), Rejection> {
        check_name("name", &self.name)?;
        check_map("labels", &self.labels)?;
        if self.workflows.is_empty() {
            return Err(invalid("workflows", "a job needs at least one workflow"));
        }
        if self.workflows.len() > WORKFLOWS_PER_JOB_MAX {
            return Err(invalid(
                "workflows",
                &format!("more than {WORKFLOWS_PER_JOB_MAX}"),
            ));
        }
        check_timeout("timeout_ms", self.timeout_ms)?;
        if self.stuck_threshold_ms < STUCK_THRESHOLD_MS_MIN {
            let reason = format!("below the minimum of {STUCK_THRESHOLD_MS_MIN} ms");
            return Err(invalid("stuck_threshold_ms", &reason));
        }
        if self.retry_budget > RETRY_BUDGET_MAX {
            return Err(invalid(
                "retry_budget",
                &format!("above {RETRY_BUDGET_MAX}"),
            ));
        }
        if self.retry_budget_per_workflow > RETRY_BUDGET_MAX {
            let reason = format!("above {RETRY_BUDGET_MAX}");
            return Err(invalid("retry_budget_per_workflow", &reason));
        }
        for (position, workflow) in self.workflows.iter().enumerate() {
            workflow.validate(&format!("workflows[{position}]"))?;
            let earlier = &self.workflows[..position];
            if earlier.iter().any(|other| other.name == workflow.name) {
                let field = format!("workflows[{position}].name");
                return Err(invalid(&field, "duplicate workflow name"));
            }
        }
        Ok(())
    }
}

impl WorkflowSpec {
    /// A workflow running `command` on one core with no timeout of its own.
    pub fn new(name: impl Into<String>, command: Vec<String>) -> WorkflowSpec {
        WorkflowSpec {
            name: name.into(),
            command,
            env: BTreeMap::new(),
            cores: 1,
            timeout_ms: None,
        }
    }

    fn validate(&self, prefix: &str) -> Result<(), Rejection> {
        check_name(&format!("{prefix}.name"), &self.name)?;
        let command_field = format!("{prefix}.command");
        match self.command.first() {
            None => return Err(invalid(&command_field, "empty command")),
            Some(program) if program.is_empty() => {
                return Err(invalid(&format!("{prefix}.command[0]"), "empty program"))
            }
            Some(_) => {}
        }
        if self.command.len() > ARGV_ENTRIES_MAX {
            return Err(invalid(
                &command_field,
                &format!("more than {ARGV_ENTRIES_MAX} entries"),
            ));
        }
        for (position, argument) in self.command.iter().enumerate() {
            check_value(&format!("{prefix}.command[{position}]"), argument)?;
        }
        check_map(&format!("{prefix}.env"), &self.env)?;
        if self.cores == 0 {
            return Err(invalid(&format!("{prefix}.cores"), "must be at least 1"));
        }
        if self.cores > CORES_MAX {
            return Err(invalid(
                &format!("{prefix}.cores"),
                &format!("above {CORES_MAX}"),
            ));
        }
        if let Some(timeout_ms) = self.timeout_ms {
            check_timeout(&format!("{prefix}.timeout_ms"), timeout_ms)?;
        }
        Ok(())
    }
}

/// Checks an idempotency key's sizes; the field is `idempotency_key.namespace` or `.key`.
pub fn validate_key(key: &IdempotencyKey) -> Result<(), Rejection> {
    if key.namespace.len() > NAMESPACE_BYTES_MAX {
        let reason = format!("longer than {NAMESPACE_BYTES_MAX} bytes");
        return Err(invalid("idempotency_key.namespace", &reason));
    }
    if key.key.is_empty() {
        return Err(invalid("idempotency_key.key", "empty key"));
    }
    if key.key.len() > KEY_BYTES_MAX {
        let reason = format!("longer than {KEY_BYTES_MAX} bytes");
        return Err(invalid("idempotency_key.key", &reason));
    }
    Ok(())
}

fn invalid(field: &str, reason: &str) -> Rejection {
    Rejection::InvalidField {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

fn check_name(field: &str, name: &str) -> Result<(), Rejection> {
    if name.is_empty() {
        return Err(invalid(field, "empty name"));
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(invalid(
            field,
            &format!("longer than {NAME_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

fn check_value(field: &str, value: &str) -> Result<(), Rejection> {
    if value.len() > VALUE_BYTES_MAX {
        return Err(invalid(
            field,
            &format!("longer than {VALUE_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

fn check_map(field: &str, map: &BTreeMap<String, String>) -> Result<(), Rejection> {
    if map.len() > MAP_ENTRIES_MAX {
        return Err(invalid(
            field,
            &format!("more than {MAP_ENTRIES_MAX} entries"),
        ));
    }
    for (key, value) in map {
        check_name(&format!("{field}.{key}"), key)?;
        check_value(&format!("{field}.{key}"), value)?;
    }
    Ok(())
}

fn check_timeout(field: &str, timeout_ms: u64) -> Result<(), Rejection> {
    if timeout_ms == 0 {
        return Err(invalid(field, "must be at least 1 ms"));
    }
    if timeout_ms > TIMEOUT_MS_MAX {
        return Err(invalid(field, &format!("above {TIMEOUT_MS_MAX} ms")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(name: &str) -> WorkflowSpec {
        WorkflowSpec::new(name, vec!["sh".into(), "-c".into(), "true".into()])
    }

    fn field_of(spec: &JobSpec) -> String {
        match spec.validate() {
            Err(Rejection::InvalidField { field, .. }) => field,
            other => panic!("expected InvalidField, got {other:?}"),
        }
    }

    #[test]
    fn valid_spec_passes() {
        assert_eq!(
            JobSpec::new("build", vec![workflow("a"), workflow("b")]).validate(),
            Ok(())
        );
    }

    #[test]
    fn each_invalid_field_is_named() {
        let base = JobSpec::new("build", vec![workflow("a"), workflow("b")]);
        type Mutation = Box<dyn Fn(&mut JobSpec)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("name", Box::new(|spec| spec.name.clear())),
            (
                "name",
                Box::new(|spec| spec.name = "x".repeat(NAME_BYTES_MAX + 1)),
            ),
            ("workflows", Box::new(|spec| spec.workflows.clear())),
            (
                "workflows",
                Box::new(|spec| spec.workflows = vec![workflow("a"); WORKFLOWS_PER_JOB_MAX + 1]),
            ),
            ("timeout_ms", Box::new(|spec| spec.timeout_ms = 0)),
            (
                "timeout_ms",
                Box::new(|spec| spec.timeout_ms = TIMEOUT_MS_MAX + 1),
            ),
            (
                "stuck_threshold_ms",
                Box::new(|spec| spec.stuck_threshold_ms = 99),
            ),
            (
                "retry_budget",
                Box::new(|spec| spec.retry_budget = RETRY_BUDGET_MAX + 1),
            ),
            (
                "retry_budget_per_workflow",
                Box::new(|spec| spec.retry_budget_per_workflow = RETRY_BUDGET_MAX + 1),
            ),
            (
                "labels.",
                Box::new(|spec| drop(spec.labels.insert(String::new(), "v".into()))),
            ),
            (
                "workflows[0].command",
                Box::new(|spec| spec.workflows[0].command.clear()),
            ),
            (
                "workflows[1].command[0]",
                Box::new(|spec| spec.workflows[1].command[0].clear()),
            ),
            (
                "workflows[0].cores",
                Box::new(|spec| spec.workflows[0].cores = 0),
            ),
            (
                "workflows[0].cores",
                Box::new(|spec| spec.workflows[0].cores = CORES_MAX + 1),
            ),
            (
                "workflows[1].timeout_ms",
                Box::new(|spec| spec.workflows[1].timeout_ms = Some(0)),
            ),
            (
                "workflows[1].name",
                Box::new(|spec| spec.workflows[1].name = "a".into()),
            ),
            (
                "workflows[0].name",
                Box::new(|spec| spec.workflows[0].name.clear()),
            ),
            (
                "workflows[0].command[2]",
                Box::new(|spec| spec.workflows[0].command[2] = "x".repeat(VALUE_BYTES_MAX + 1)),
            ),
        ];
        for (expected, mutate) in cases {
            let mut spec = base.clone();
            mutate(&mut spec);
            assert_eq!(field_of(&spec), expected, "case {expected}");
        }
    }

    #[test]
    fn keys_are_checked() {
        assert!(validate_key(&IdempotencyKey::new("ci", "k1")).is_ok());
        assert!(validate_key(&IdempotencyKey::new("ci", "")).is_err());
        assert!(validate_key(&IdempotencyKey::new("x".repeat(129), "k")).is_err());
    }

    #[test]
    fn json_uses_defaults_and_refuses_unknown_fields() {
        let json = r#"{"name":"n","workflows":[{"name":"w","command":["true"]}]}"#;
        let spec: JobSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.retry_budget, RETRY_BUDGET_DEFAULT);
        assert_eq!(spec.workflows[0].cores, 1);
        let json = r#"{"name":"n","workflows":[],"bogus":1}"#;
        assert!(serde_json::from_str::<JobSpec>(json).is_err());
    }
}
