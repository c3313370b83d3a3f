//! What a client submits: a job spec with its workflows, and its validation.
//!
//! Validation names the offending field (`workflows[1].cores`) so the HTTP API can answer a 4xx
//! that points at it. It runs in `decide` and again in `apply`, since a spec inside a log entry
//! is input too. This module does not know about ids, scheduling or time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::limits::{
    ARGV_ENTRIES_MAX, CANCEL_GRACE_MS_MAX, CORES_MAX, JOB_TIMEOUT_MS_DEFAULT, KEY_BYTES_MAX,
    MAP_ENTRIES_MAX, NAMESPACE_BYTES_MAX, NAME_BYTES_MAX, RETRY_BUDGET_DEFAULT, RETRY_BUDGET_MAX,
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
    /// SIGTERM → SIGKILL grace when the job is cancelled, and how long the leader waits for its
    /// workflows to stop before declaring it `Cancelled` anyway. Default: `None`, the cluster's
    /// `StateConfig::cancel_grace_ms` (30 s). Minimum: 1. Maximum: [`CANCEL_GRACE_MS_MAX`].
    #[serde(default)]
    pub cancel_grace_ms: Option<u64>,
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
    /// Working directory of the command on the worker, instead of the worker's `--work-dir`; a
    /// relative path is taken from the `--work-dir`. Default: `None`. 1 to [`VALUE_BYTES_MAX`]
    /// bytes, no NUL.
    #[serde(default)]
    pub working_dir: Option<String>,
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
            cancel_grace_ms: None,
        }
    }

    /// The job's cancel grace: its own, else the cluster's `default_ms`.
    pub fn cancel_grace_ms_or(&self, default_ms: u64) -> u64 {
        self.cancel_grace_ms.unwrap_or(default_ms)
    }

    /// Checks every field; the first problem found is returned, naming the field. Field paths
    /// are only formatted on failure: `apply` runs this for every submitted job.
    pub fn validate(&self) -> Result<(), Rejection> {
        check_name(&self.name).map_err(|reason| invalid("name", &reason))?;
        check_map(&self.labels)
            .map_err(|(key, reason)| invalid(&map_field("labels", key), &reason))?;
        if self.workflows.is_empty() {
            return Err(invalid("workflows", "a job needs at least one workflow"));
        }
        if self.workflows.len() > WORKFLOWS_PER_JOB_MAX {
            return Err(invalid(
                "workflows",
                &format!("more than {WORKFLOWS_PER_JOB_MAX}"),
            ));
        }
        check_timeout(self.timeout_ms).map_err(|reason| invalid("timeout_ms", &reason))?;
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
        if let Some(grace_ms) = self.cancel_grace_ms {
            if grace_ms == 0 || grace_ms > CANCEL_GRACE_MS_MAX {
                let reason = format!("must be 1 to {CANCEL_GRACE_MS_MAX} ms, got {grace_ms}");
                return Err(invalid("cancel_grace_ms", &reason));
            }
        }
        for (position, workflow) in self.workflows.iter().enumerate() {
            let field = |suffix: &str| format!("workflows[{position}].{suffix}");
            workflow
                .validate()
                .map_err(|(suffix, reason)| invalid(&field(&suffix), &reason))?;
            let earlier = &self.workflows[..position];
            if earlier.iter().any(|other| other.name == workflow.name) {
                return Err(invalid(&field("name"), "duplicate workflow name"));
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
            working_dir: None,
        }
    }

    /// Checks the fields; on failure, the field path below the workflow and the reason.
    fn validate(&self) -> Result<(), (String, String)> {
        check_name(&self.name).map_err(at("name"))?;
        match self.command.first() {
            None => return Err(("command".to_owned(), "empty command".to_owned())),
            Some(program) if program.is_empty() => {
                return Err(("command[0]".to_owned(), "empty program".to_owned()))
            }
            Some(_) => {}
        }
        if self.command.len() > ARGV_ENTRIES_MAX {
            return Err(at("command")(format!(
                "more than {ARGV_ENTRIES_MAX} entries"
            )));
        }
        for (position, argument) in self.command.iter().enumerate() {
            check_value(argument).map_err(|reason| (format!("command[{position}]"), reason))?;
        }
        check_map(&self.env).map_err(|(key, reason)| (map_field("env", key), reason))?;
        if self.cores == 0 {
            return Err(at("cores")("must be at least 1".to_owned()));
        }
        if self.cores > CORES_MAX {
            return Err(at("cores")(format!("above {CORES_MAX}")));
        }
        if let Some(timeout_ms) = self.timeout_ms {
            check_timeout(timeout_ms).map_err(at("timeout_ms"))?;
        }
        if let Some(dir) = &self.working_dir {
            if dir.is_empty() || dir.contains('\0') {
                return Err(at("working_dir")("empty or contains NUL".to_owned()));
            }
            check_value(dir).map_err(at("working_dir"))?;
        }
        Ok(())
    }
}

/// Pairs a failure reason with the field path below the workflow.
fn at(suffix: &'static str) -> impl Fn(String) -> (String, String) {
    move |reason| (suffix.to_owned(), reason)
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

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".to_owned());
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(format!("longer than {NAME_BYTES_MAX} bytes"));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), String> {
    if value.len() > VALUE_BYTES_MAX {
        return Err(format!("longer than {VALUE_BYTES_MAX} bytes"));
    }
    Ok(())
}

/// On failure, the offending key (`None` when the map as a whole is too large) and the reason.
fn check_map(map: &BTreeMap<String, String>) -> Result<(), (Option<String>, String)> {
    if map.len() > MAP_ENTRIES_MAX {
        return Err((None, format!("more than {MAP_ENTRIES_MAX} entries")));
    }
    for (key, value) in map {
        check_name(key)
            .and_then(|()| check_value(value))
            .map_err(|reason| (Some(key.clone()), reason))?;
    }
    Ok(())
}

/// `base` or `base.key`.
fn map_field(base: &str, key: Option<String>) -> String {
    match key {
        Some(key) => format!("{base}.{key}"),
        None => base.to_owned(),
    }
}

fn check_timeout(timeout_ms: u64) -> Result<(), String> {
    if timeout_ms == 0 {
        return Err("must be at least 1 ms".to_owned());
    }
    if timeout_ms > TIMEOUT_MS_MAX {
        return Err(format!("above {TIMEOUT_MS_MAX} ms"));
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
                "cancel_grace_ms",
                Box::new(|spec| spec.cancel_grace_ms = Some(0)),
            ),
            (
                "workflows[0].working_dir",
                Box::new(|spec| spec.workflows[0].working_dir = Some(String::new())),
            ),
            (
                "cancel_grace_ms",
                Box::new(|spec| spec.cancel_grace_ms = Some(CANCEL_GRACE_MS_MAX + 1)),
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
