//! The worker protocol's wire types (JSON over HTTP, ADR 0010), shared by the manager routes
//! (`api/workers.rs`) and the worker agent. Every request and response carries
//! `version` = [`PROTOCOL_VERSION`]; a manager refuses other versions with `400`.
//!
//! It deliberately holds no logic beyond building responses from the replicated state
//! (`assignments_for`, `stops_for`), so the protocol is state-derived: whatever the leader, the
//! same state yields the same instructions.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use steward_statemachine::{JobStatus, State, WorkerId, WorkerStatus, WorkflowRef, WorkflowStatus};

/// Version of the JSON worker protocol. Default: 1.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest long-poll a manager honours. Default: 10 s.
pub const POLL_WAIT_MS_MAX: u64 = 10_000;
/// Shortest lease a worker may announce. Minimum: 300 ms.
pub const LEASE_MS_MIN: u64 = 300;
/// Lease assumed for a worker that never announced one to this leader. Default: 10 s.
pub const LEASE_MS_DEFAULT: u64 = 10_000;

/// `POST /v1/workers/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The worker's id (stable across restarts of the same worker).
    pub worker: u64,
    /// Cores offered (at least 1).
    pub cores: u32,
    /// Where managers reach the worker's own HTTP endpoint (logs).
    pub address: String,
    /// Free-form labels (informational).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The worker is lost when it has not polled for this long. Minimum: [`LEASE_MS_MIN`].
    pub lease_ms: u64,
}

/// Answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The worker.
    pub worker: u64,
    /// The fence in force.
    pub fence_token: u64,
    /// Workflow attempts the previous incarnation held, now declared lost.
    pub lost_attempts: u32,
    /// Every manager's API address, so the worker can find a new leader.
    pub managers: Vec<String>,
    /// Managers' gossip (SWIM) ids and UDP addresses, for the worker to join membership with
    /// role worker (empty when the managers run without gossip).
    #[serde(default)]
    pub gossip_seeds: Vec<GossipSeed>,
}

/// One manager's gossip identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipSeed {
    /// Its gossip id (the node id).
    pub id: u64,
    /// Its UDP address.
    pub addr: std::net::SocketAddr,
}

/// `POST /v1/workers/{id}/poll`: a heartbeat and a long-poll for instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRequest {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Attempts the worker is running (or has not reported finished yet).
    pub running: Vec<WorkflowRef>,
    /// Longest wait for an instruction. Maximum: [`POLL_WAIT_MS_MAX`].
    pub wait_ms: u64,
    /// The worker's lease (see [`RegisterRequest::lease_ms`]).
    pub lease_ms: u64,
}

/// Instructions for a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollResponse {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The answering leader's fence; a worker ignores a response whose fence is lower than
    /// one it has seen.
    pub fence_token: u64,
    /// The worker's status in the replicated state (`None` if unknown: register again).
    pub status: Option<WorkerStatus>,
    /// New attempts to start.
    pub assignments: Vec<Assignment>,
    /// Attempts to stop (cancelled, timed out, reassigned or unknown).
    pub stops: Vec<StopInstruction>,
    /// Time left before each running attempt's deadline, as the leader sees it.
    pub deadlines: Vec<Deadline>,
}

/// One attempt to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The attempt.
    pub target: WorkflowRef,
    /// The fence in force when it was dispatched.
    pub fence_token: u64,
    /// Workflow name.
    pub name: String,
    /// argv.
    pub command: Vec<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Cores reserved.
    pub cores: u32,
    /// SIGTERM → SIGKILL grace on cancel: the job's `cancel_grace_ms`, else the cluster's.
    pub cancel_grace_ms: u64,
    /// The workflow's working directory, if it names one (relative: below `--work-dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

/// Stop one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopInstruction {
    /// The attempt.
    pub target: WorkflowRef,
    /// Why, for logs.
    pub reason: StopReason,
}

/// Why a worker must stop an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The job is being cancelled: stop, then report `cancelled`.
    Cancel,
    /// The attempt is no longer current (job finished or timed out, workflow reassigned, job
    /// unknown): stop without reporting.
    Superseded,
}

/// Time left for a running attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// The attempt.
    pub target: WorkflowRef,
    /// Milliseconds until the job's (or the workflow's) timeout, extensions included.
    pub remaining_ms: u64,
}

/// `POST /v1/workers/{id}/reports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRequest {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The attempt.
    pub target: WorkflowRef,
    /// What happened.
    pub kind: steward_statemachine::ReportKind,
    /// Exit details (with `completed`, `failed` and `cancelled`).
    #[serde(default)]
    pub exit: Option<ExitDetails>,
}

/// How an attempt ended, as the worker saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitDetails {
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Signal, if one killed it.
    pub signal: Option<i32>,
    /// Run time.
    pub duration_ms: u64,
    /// The last bytes of stdout and stderr (at most
    /// [`steward_statemachine::OUTPUT_TAIL_BYTES_MAX`]; the leader cuts longer ones), replicated
    /// with the exit so the output outlives the worker. Absent from older workers: empty.
    #[serde(default)]
    pub output_tail: String,
}

impl ExitDetails {
    /// The replicated record of this exit.
    pub fn into_record(self) -> steward_statemachine::ExitRecord {
        steward_statemachine::ExitRecord {
            exit_code: self.exit_code,
            signal: self.signal,
            duration_ms: self.duration_ms,
            output_tail: self.output_tail,
        }
        .bounded()
    }
}

/// Answer to a report: `applied` false means the state refused it (a duplicate or a stale
/// attempt); either way the worker forgets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportResponse {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The report changed the state.
    pub applied: bool,
    /// Why not, if refused.
    pub refused: Option<String>,
}

/// `POST /v1/workers/{id}/extensions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionRequest {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The job.
    pub job: u64,
    /// The progress counter now.
    pub progress: u64,
}

/// Answer to an extension request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionResponse {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Granted.
    pub granted: bool,
    /// Time granted.
    pub grant_ms: u64,
    /// Why denied.
    pub denied: Option<String>,
}

/// `GET /v1/workers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerListResponse {
    /// Every known worker, by id.
    pub workers: Vec<WorkerView>,
}

/// One worker as `GET /v1/workers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerView {
    /// Its id.
    pub id: u64,
    /// Its address.
    pub address: String,
    /// Cores offered.
    pub cores: u32,
    /// Cores held by its workflows.
    pub cores_used: u32,
    /// live, draining or lost.
    pub status: WorkerStatus,
    /// Milliseconds since it last polled this manager (`None` if it never did).
    pub last_seen_ms_ago: Option<u64>,
    /// Attempts it holds.
    pub running: Vec<WorkflowRef>,
}

/// `GET /v1/jobs/{id}/logs` and the worker's own `GET /v1/agent/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsResponse {
    /// One entry per attempt found.
    pub logs: Vec<AttemptLog>,
}

/// The output tail of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptLog {
    /// The attempt.
    pub target: WorkflowRef,
    /// Workflow name.
    pub workflow_name: String,
    /// The worker that ran it.
    pub worker: u64,
    /// Still running.
    pub running: bool,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Signal, if one killed it.
    pub signal: Option<i32>,
    /// Run time so far.
    pub duration_ms: u64,
    /// The last bytes of stdout and stderr: at most 64 KiB from the worker, at most
    /// [`steward_statemachine::OUTPUT_TAIL_BYTES_MAX`] from the replicated exit record.
    pub tail: String,
    /// Where the tail comes from.
    #[serde(default)]
    pub source: LogSource,
}

/// Where an [`AttemptLog`] comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// The worker that ran the attempt (its full tail, live while running).
    #[default]
    Worker,
    /// The exit record replicated with the attempt's exit report (the worker was unreachable
    /// or no longer has it).
    Replicated,
}

/// Attempts held by `worker` (dispatched, running or cancelling), scanning unfinished jobs.
pub fn held_by(state: &State, worker: WorkerId) -> Vec<(WorkflowRef, WorkflowStatus)> {
    let mut held = Vec::new();
    for job in state.jobs().filter(|job| !job.status.is_terminal()) {
        for (position, workflow) in (0u32..).zip(&job.workflows) {
            if workflow.worker == Some(worker) && workflow.status.holds_worker() {
                let target = WorkflowRef {
                    job: job.id,
                    workflow: steward_statemachine::WorkflowId(position),
                    attempt: workflow.attempt,
                };
                held.push((target, workflow.status));
            }
        }
    }
    held
}

/// New attempts for `worker`: dispatched to it and not in `running`.
pub fn assignments_for(
    state: &State,
    worker: WorkerId,
    running: &BTreeSet<WorkflowRef>,
) -> Vec<Assignment> {
    let grace = state.globals().config.cancel_grace_ms;
    held_by(state, worker)
        .into_iter()
        .filter(|(target, status)| {
            *status == WorkflowStatus::Dispatched && !running.contains(target)
        })
        .filter_map(|(target, _)| {
            let job = state.job(target.job)?;
            let spec = job.spec().workflow(target.workflow.0 as usize)?;
            let runtime = job.workflow(target.workflow)?;
            Some(Assignment {
                target,
                fence_token: runtime.fence_token.map_or(0, |fence| fence.0),
                name: spec.name,
                command: spec.command,
                env: spec.env,
                cores: spec.cores,
                cancel_grace_ms: job.spec().cancel_grace_ms_or(grace),
                working_dir: spec.working_dir,
            })
        })
        .collect()
}

/// What `worker` must stop among `running`.
pub fn stops_for(
    state: &State,
    worker: WorkerId,
    running: &BTreeSet<WorkflowRef>,
) -> Vec<StopInstruction> {
    running
        .iter()
        .filter_map(|target| {
            let current = state.job(target.job).and_then(|job| {
                let runtime = job.workflow(target.workflow)?;
                let mine = runtime.worker == Some(worker)
                    && runtime.attempt == target.attempt
                    && runtime.status.holds_worker();
                Some((mine, runtime.status, job.status))
            });
            let reason = match current {
                Some((true, WorkflowStatus::Cancelling, _)) => StopReason::Cancel,
                Some((true, _, status)) if status != JobStatus::Cancelled => return None,
                _ => StopReason::Superseded,
            };
            Some(StopInstruction {
                target: *target,
                reason,
            })
        })
        .collect()
}

/// Time left for each of `running` at `now_ms` (the leader's clock).
pub fn deadlines_for(state: &State, running: &BTreeSet<WorkflowRef>, now_ms: u64) -> Vec<Deadline> {
    running
        .iter()
        .filter_map(|target| {
            let job = state.job(target.job)?;
            let extensions = job.total_extensions_granted_ms();
            let job_end = job
                .started_at_ms
                .saturating_add(job.spec().timeout_ms())
                .saturating_add(extensions);
            let runtime = job.workflow(target.workflow)?;
            let limits = job.spec().workflow_limits(target.workflow.0 as usize)?;
            let workflow_end = match (runtime.started_at_ms, limits.timeout_ms) {
                (Some(started), Some(timeout)) => {
                    started.saturating_add(timeout).saturating_add(extensions)
                }
                _ => u64::MAX,
            };
            Some(Deadline {
                target: *target,
                remaining_ms: job_end.min(workflow_end).saturating_sub(now_ms),
            })
        })
        .collect()
}
