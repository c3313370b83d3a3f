//! One attempt's life on the worker: start the process, report `started`, forward progress,
//! ask for extensions near the deadline, and report the exit — or, when told to stop, SIGTERM
//! the group, SIGKILL after the grace period, and report `cancelled`.
//!
//! Reports are retried until a manager answers (applied or refused): the state machine refuses
//! a repeated report as an invalid transition, so a retry after a lost answer never counts
//! twice. It deliberately does not decide *whether* to run: the agent does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use steward_statemachine::{ReportKind, WorkflowRef};
use tokio::sync::watch;

use super::agent::Shared;
use super::link::Answer;
use super::process::{ExitKind, ProcessExit, ProcessSpec, RunningProcess};
use super::protocol::{
    Assignment, AttemptLog, ExitDetails, ExtensionRequest, ExtensionResponse, LogSource,
    ReportRequest, ReportResponse, StopReason, PROTOCOL_VERSION,
};

/// How often a running attempt looks at its progress and deadline. Default: 100 ms.
pub const ATTEMPT_TICK_MS: u64 = 100;

/// What the agent keeps about an attempt while it runs (and until its last report is answered).
#[derive(Debug)]
pub struct AttemptHandle {
    /// Set to stop the attempt.
    pub stop: watch::Sender<Option<StopReason>>,
    /// When the leader last said the deadline is (local clock).
    pub deadline: Mutex<Option<Instant>>,
    /// The live log (tail refreshed by the task).
    pub log: Mutex<AttemptLog>,
}

/// Starts the task running `assignment`; returns its handle.
pub fn start(shared: Arc<Shared>, assignment: Assignment) -> Arc<AttemptHandle> {
    let (stop, stop_rx) = watch::channel(None);
    let handle = Arc::new(AttemptHandle {
        stop,
        deadline: Mutex::new(None),
        log: Mutex::new(AttemptLog {
            target: assignment.target,
            workflow_name: assignment.name.clone(),
            worker: shared.config.worker_id,
            running: true,
            exit_code: None,
            signal: None,
            duration_ms: 0,
            tail: String::new(),
            source: LogSource::Worker,
        }),
    });
    tokio::spawn(run(shared, assignment, handle.clone(), stop_rx));
    handle
}

async fn run(
    shared: Arc<Shared>,
    assignment: Assignment,
    handle: Arc<AttemptHandle>,
    mut stop: watch::Receiver<Option<StopReason>>,
) {
    let target = assignment.target;
    let mut env = assignment.env.clone();
    env.insert("STEWARD_JOB_ID".into(), target.job.0.to_string());
    env.insert("STEWARD_WORKFLOW".into(), assignment.name.clone());
    env.insert("STEWARD_ATTEMPT".into(), target.attempt.0.to_string());
    let spec = ProcessSpec {
        argv: assignment.command.clone(),
        env,
        // `join` keeps an absolute `working_dir` as it is and puts a relative one below.
        cwd: assignment.working_dir.as_ref().map_or_else(
            || shared.config.work_dir.clone(),
            |dir| shared.config.work_dir.join(dir),
        ),
    };
    let mut process = match RunningProcess::spawn(&spec) {
        Ok(process) => process,
        Err(err) => {
            tracing::info!(?target, %err, "workflow could not start");
            let kind = ReportKind::Failed {
                error: err.to_string(),
                exit_code: None,
            };
            report(&shared, target, kind, None).await;
            finish_log(&handle, None, err.to_string());
            shared.forget(target);
            return;
        }
    };
    tracing::info!(?target, pgid = process.pgid(), "workflow started");
    report(&shared, target, ReportKind::Started, None).await;
    let grace = Duration::from_millis(assignment.cancel_grace_ms);
    let mut progress = process.progress();
    let mut reported_progress = 0u64;
    let mut extensions = Extensions::default();
    let mut last_progress_report = None;
    let mut tick = tokio::time::interval(Duration::from_millis(ATTEMPT_TICK_MS));
    let (exit, stopped) = loop {
        tokio::select! {
            exit = process.wait() => break (exit, None),
            changed = stop.changed() => {
                let reason = *stop.borrow();
                if changed.is_err() || reason.is_some() {
                    let exit = process.terminate(grace).await;
                    break (exit, Some(reason.unwrap_or(StopReason::Superseded)));
                }
            }
            _ = tick.tick() => {
                let now = *progress.borrow_and_update();
                lock(&handle.log).tail = process.tail_text();
                if now > reported_progress
                    && reported_progress_due(&shared, &mut last_progress_report)
                {
                    report(&shared, target, ReportKind::Progress { progress: now }, None).await;
                    reported_progress = now;
                }
                extensions.maybe_ask(&shared, &handle, target, now).await;
            }
        }
    };
    tracing::info!(?target, exit = %exit.describe(), ?stopped, "workflow ended");
    let details = Some(ExitDetails {
        exit_code: exit.exit_code(),
        signal: match exit.kind {
            ExitKind::Signal(signal) => Some(signal),
            ExitKind::Code(_) => None,
        },
        duration_ms: exit.duration_ms,
        output_tail: steward_statemachine::last_bytes(
            &exit.tail,
            steward_statemachine::OUTPUT_TAIL_BYTES_MAX,
        )
        .to_owned(),
    });
    let kind = match stopped {
        Some(StopReason::Cancel) => Some(ReportKind::Cancelled),
        Some(StopReason::Superseded) => None,
        None if exit.success() => Some(ReportKind::Completed),
        None => Some(ReportKind::Failed {
            error: exit.describe(),
            exit_code: exit.exit_code(),
        }),
    };
    // The local log first: once the report is applied the job may be terminal, and a client
    // asking for its logs then must see the whole tail, not the last tick's.
    finish_log(&handle, Some(&exit), exit.tail.clone());
    if let Some(kind) = kind {
        report(&shared, target, kind, details).await;
    }
    shared.forget(target);
}

fn reported_progress_due(shared: &Shared, last: &mut Option<Instant>) -> bool {
    let interval = Duration::from_millis(shared.config.progress_report_interval_ms);
    if last.is_some_and(|at| at.elapsed() < interval) {
        return false;
    }
    *last = Some(Instant::now());
    true
}

fn finish_log(handle: &AttemptHandle, exit: Option<&ProcessExit>, tail: String) {
    let mut log = lock(&handle.log);
    log.running = false;
    log.tail = tail;
    if let Some(exit) = exit {
        log.exit_code = exit.exit_code();
        log.signal = match exit.kind {
            ExitKind::Signal(signal) => Some(signal),
            ExitKind::Code(_) => None,
        };
        log.duration_ms = exit.duration_ms;
    }
}

/// The extension state of one attempt: ask when the deadline is near and progress grew since
/// the last grant; stop asking after a denial.
#[derive(Debug, Default)]
struct Extensions {
    asked_at_progress: u64,
    denied: bool,
}

impl Extensions {
    async fn maybe_ask(
        &mut self,
        shared: &Shared,
        handle: &AttemptHandle,
        target: WorkflowRef,
        progress: u64,
    ) {
        let Some(deadline) = *lock(&handle.deadline) else {
            return;
        };
        let lead = Duration::from_millis(shared.config.extension_lead_ms);
        let near = deadline.saturating_duration_since(Instant::now()) < lead;
        if self.denied || !near || progress <= self.asked_at_progress {
            return;
        }
        self.asked_at_progress = progress;
        let request = ExtensionRequest {
            version: PROTOCOL_VERSION,
            job: target.job.0,
            progress,
        };
        let path = format!("/v1/workers/{}/extensions", shared.config.worker_id);
        let wait = Duration::ZERO;
        match shared
            .link
            .post::<_, ExtensionResponse>(&path, &request, wait)
            .await
        {
            Answer::Ok(answer) if answer.granted => {
                tracing::info!(?target, grant_ms = answer.grant_ms, "extension granted");
                let mut slot = lock(&handle.deadline);
                *slot = Some(deadline + Duration::from_millis(answer.grant_ms));
            }
            Answer::Ok(answer) => {
                tracing::info!(?target, reason = ?answer.denied, "extension denied; not asking again");
                self.denied = true;
            }
            Answer::Refused { status, body } => {
                tracing::info!(?target, status, %body, "extension refused; not asking again");
                self.denied = true;
            }
            // Unreachable: ask again on a later tick (progress must still grow).
            Answer::Retry(why) => {
                tracing::debug!(?target, %why, "extension request failed");
                self.asked_at_progress = progress.saturating_sub(1);
            }
        }
    }
}

/// Sends one report until a manager answers it (applied or refused).
pub async fn report(
    shared: &Shared,
    target: WorkflowRef,
    kind: ReportKind,
    exit: Option<ExitDetails>,
) {
    let request = ReportRequest {
        version: PROTOCOL_VERSION,
        target,
        kind,
        exit,
    };
    let path = format!("/v1/workers/{}/reports", shared.config.worker_id);
    let retry = Duration::from_millis(shared.config.retry_interval_ms);
    loop {
        match shared
            .link
            .post::<_, ReportResponse>(&path, &request, Duration::ZERO)
            .await
        {
            Answer::Ok(answer) => {
                if let Some(why) = answer.refused {
                    tracing::debug!(?target, kind = ?request.kind, %why, "report refused (stale or repeated)");
                }
                return;
            }
            Answer::Refused { status, body } => {
                tracing::warn!(?target, status, %body, "report refused");
                return;
            }
            Answer::Retry(why) => {
                tracing::debug!(?target, %why, "report not delivered; retrying");
                if shared.stopping() {
                    return;
                }
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// Locks a mutex whose data stays valid even if a holder panicked.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
