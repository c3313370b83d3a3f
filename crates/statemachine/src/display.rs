//! One-line human forms of events and timeline lines, for `steward log dump --decode` and
//! `log replay --job`. Stable on purpose: the CLI's snapshot tests compare them.
//!
//! JSON output uses the serde derives instead; nothing here is parsed back.

use std::fmt;

use crate::{Event, FailureCause, Happening, WorkflowRef};

impl fmt::Display for WorkflowRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "job={} workflow={} attempt={}",
            self.job, self.workflow, self.attempt
        )
    }
}

impl fmt::Display for Event {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Event::IdempotencyReserved { key, body_hash } => {
                write!(formatter, "{name} key={key} body={body_hash}")
            }
            Event::JobSubmitted {
                idempotency_key,
                spec,
            } => {
                write!(
                    formatter,
                    "{name} name={:?} workflows={}",
                    spec.name,
                    spec.workflows.len()
                )?;
                if let Some(key) = idempotency_key {
                    write!(formatter, " key={key}")?;
                }
                write!(formatter, " timeout_ms={}", spec.timeout_ms)
            }
            Event::WorkflowDispatched {
                target,
                worker,
                fence_token,
            } => {
                write!(
                    formatter,
                    "{name} {target} worker={worker} fence={fence_token}"
                )
            }
            Event::WorkflowStarted { target, worker }
            | Event::WorkflowCompleted { target, worker }
            | Event::WorkflowCancelled { target, worker } => {
                write!(formatter, "{name} {target} worker={worker}")
            }
            Event::WorkflowProgress {
                target,
                worker,
                progress,
            } => {
                write!(
                    formatter,
                    "{name} {target} worker={worker} progress={progress}"
                )
            }
            Event::WorkflowFailed {
                target,
                worker,
                error,
                exit_code,
            } => {
                write!(formatter, "{name} {target} worker={worker} error={error:?}")?;
                match exit_code {
                    Some(code) => write!(formatter, " exit_code={code}"),
                    None => Ok(()),
                }
            }
            Event::WorkflowTimedOut {
                target,
                fence_token,
            } => {
                write!(formatter, "{name} {target} fence={fence_token}")
            }
            Event::CancelRequested { job, fence_token } => match fence_token {
                Some(fence) => write!(formatter, "{name} job={job} fence={fence}"),
                None => write!(formatter, "{name} job={job}"),
            },
            Event::JobCancelled { job, fence_token } => {
                write!(formatter, "{name} job={job} fence={fence_token}")
            }
            Event::JobTimedOut {
                job,
                reason,
                fence_token,
            } => {
                write!(
                    formatter,
                    "{name} job={job} reason={reason} fence={fence_token}"
                )
            }
            Event::ExtensionGranted {
                job,
                worker,
                grant_number,
                grant_ms,
                progress,
            } => write!(
                formatter,
                "{name} job={job} worker={worker} grant={grant_number} grant_ms={grant_ms} \
                 progress={progress}"
            ),
            Event::ExtensionDenied {
                job,
                worker,
                reason,
                progress,
            } => write!(
                formatter,
                "{name} job={job} worker={worker} reason={:?} progress={progress}",
                reason.to_string()
            ),
            Event::LeaderChanged {
                term,
                leader,
                fence_token,
            } => {
                write!(
                    formatter,
                    "{name} term={term} leader={leader} fence={fence_token}"
                )
            }
            Event::IdempotencyExpired { key } => write!(formatter, "{name} key={key}"),
            Event::WorkerRegistered {
                worker,
                cores,
                address,
            } => {
                write!(
                    formatter,
                    "{name} worker={worker} cores={cores} address={address}"
                )
            }
            Event::WorkerLost { worker } | Event::WorkerDrained { worker } => {
                write!(formatter, "{name} worker={worker}")
            }
            Event::WorkflowExited {
                target,
                worker,
                exit,
            } => {
                write!(formatter, "{name} {target} worker={worker}")?;
                if let Some(code) = exit.exit_code {
                    write!(formatter, " exit_code={code}")?;
                }
                if let Some(signal) = exit.signal {
                    write!(formatter, " signal={signal}")?;
                }
                write!(
                    formatter,
                    " duration_ms={} output_bytes={}",
                    exit.duration_ms,
                    exit.output_tail.len()
                )
            }
        }
    }
}

impl fmt::Display for Happening {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Happening::Submitted => write!(formatter, "submitted"),
            Happening::Dispatched {
                workflow,
                attempt,
                worker,
                fence_token,
            } => {
                write!(
                    formatter,
                    "workflow {workflow} attempt {attempt} dispatched to worker {worker} \
                     (fence {fence_token})"
                )
            }
            Happening::Started { workflow, attempt } => {
                write!(formatter, "workflow {workflow} attempt {attempt} started")
            }
            Happening::Progress { workflow, progress } => {
                write!(formatter, "workflow {workflow} progress {progress}")
            }
            Happening::WorkflowCompleted { workflow } => {
                write!(formatter, "workflow {workflow} completed")
            }
            Happening::WorkflowFailed {
                workflow,
                attempt,
                cause,
                retried,
            } => {
                let next = if *retried { "retried" } else { "not retried" };
                let cause = match cause {
                    FailureCause::Reported => "failed",
                    FailureCause::TimedOut => "timed out",
                    FailureCause::WorkerLost => "lost its worker",
                };
                write!(
                    formatter,
                    "workflow {workflow} attempt {attempt} {cause}, {next}"
                )
            }
            Happening::WorkflowCancelled { workflow } => {
                write!(formatter, "workflow {workflow} cancelled")
            }
            Happening::CancelRequested => write!(formatter, "cancel requested"),
            Happening::ExtensionGranted { worker, grant_ms } => {
                write!(
                    formatter,
                    "extension of {grant_ms} ms granted to worker {worker}"
                )
            }
            Happening::ExtensionDenied { worker, reason } => {
                write!(formatter, "extension denied to worker {worker}: {reason}")
            }
            Happening::TimedOut {
                reason,
                fence_token,
            } => {
                write!(formatter, "timed out ({reason}) under fence {fence_token}")
            }
            Happening::Finished { status } => write!(formatter, "finished: {status}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        Attempt, Event, FailureCause, FenceToken, Happening, JobId, WorkerId, WorkflowId,
        WorkflowRef,
    };

    #[test]
    fn human_forms_are_stable() {
        let target = WorkflowRef {
            job: JobId(57_003),
            workflow: WorkflowId(1),
            attempt: Attempt(2),
        };
        let event = Event::WorkflowDispatched {
            target,
            worker: WorkerId(4),
            fence_token: FenceToken(3),
        };
        assert_eq!(
            event.to_string(),
            "workflow_dispatched job=57003 workflow=1 attempt=2 worker=4 fence=3"
        );
        let failed = Happening::WorkflowFailed {
            workflow: WorkflowId(0),
            attempt: Attempt(1),
            cause: FailureCause::WorkerLost,
            retried: true,
        };
        assert_eq!(
            failed.to_string(),
            "workflow 0 attempt 1 lost its worker, retried"
        );
        let granted = Event::ExtensionGranted {
            job: JobId(1000),
            worker: WorkerId(2),
            grant_number: 1,
            grant_ms: 15_000,
            progress: 7,
        };
        assert_eq!(
            granted.to_string(),
            "extension_granted job=1000 worker=2 grant=1 grant_ms=15000 progress=7"
        );
    }
}
