//! The JSON wire types of the HTTP API, shared by the server (`api`) and the client (`client`).
//!
//! These are the stable public contract, kept apart from the state machine's domain types so
//! that a refactoring of the domain never silently changes what clients see. Requests reject
//! unknown fields; validation beyond types lives in `validate`, not here.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Header carrying the client's idempotency key for `POST /v1/jobs`.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Header naming the client namespace that scopes idempotency keys.
pub const NAMESPACE_HEADER: &str = "x-steward-namespace";
/// Header a forwarding follower adds, naming itself; a request carrying it is never forwarded
/// again (one hop).
pub const FORWARDED_BY_HEADER: &str = "x-steward-forwarded-by";
/// Header on every API response naming the node that produced it.
pub const SERVED_BY_HEADER: &str = "x-steward-node";
/// Namespace used when a request carries no namespace header.
pub const DEFAULT_NAMESPACE: &str = "default";

/// `POST /v1/jobs` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitJobRequest {
    /// Human-readable name. Default: the first workflow's program (the last path component of
    /// its `command[0]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form labels, filterable with `GET /v1/jobs?label=k=v`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The job's workflows; at least one.
    pub workflows: Vec<WorkflowSpec>,
    /// Whole-job timeout in milliseconds. Must be positive. Default: the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
    /// Retries allowed across the whole job. Default: the state machine's default (3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<u32>,
    /// SIGTERM → SIGKILL grace when the job is cancelled, in milliseconds: 1 to
    /// `CANCEL_GRACE_MS_MAX` (1 h). Default: the cluster's (30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_grace_ms: Option<i64>,
}

/// One workflow inside a submitted job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Unique within the job.
    pub name: String,
    /// argv: program then arguments; must be non-empty with a non-empty program.
    pub command: Vec<String>,
    /// Extra environment variables for the child process.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Cores required. Must be at least 1. Default: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<i64>,
    /// Per-workflow timeout in milliseconds. Must be positive when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
    /// Working directory on the worker instead of its `--work-dir` (a relative path is taken
    /// from the `--work-dir`). Non-empty, at most 4096 bytes, no NUL. Default: the `--work-dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

/// Job status as the API reports it. Terminal: completed, failed, cancelled, timed_out. A job
/// being cancelled stays `running` with `cancelling: true` until its workflows have stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, no workflow dispatched yet.
    Pending,
    /// At least one workflow dispatched.
    Running,
    /// Every workflow completed.
    Completed,
    /// Every workflow is terminal and at least one did not complete.
    Failed,
    /// Cancelled by a client.
    Cancelled,
    /// The leader declared a timeout.
    TimedOut,
}

impl JobStatus {
    /// Every status, in lifecycle order (for metrics and `--status` help).
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::TimedOut,
    ];

    /// Whether the status is absorbing.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Pending | JobStatus::Running)
    }

    /// The snake_case name used on the wire and in query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::TimedOut => "timed_out",
        }
    }

    /// Parses the wire name; `None` for anything else.
    pub fn parse(name: &str) -> Option<JobStatus> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as returned by every job route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// Cluster-wide id, derived at apply from the log index (`index * 1000 + ordinal`).
    pub id: u64,
    /// Human-readable name.
    pub name: String,
    /// Current status.
    pub status: JobStatus,
    /// A cancel was accepted and workflows are still stopping.
    #[serde(default)]
    pub cancelling: bool,
    /// The fence token in force (a cancel may present it).
    pub fence_token: u64,
    /// The idempotency key it was submitted with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The namespace scoping that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels as submitted.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Workflows and their statuses.
    pub workflows: Vec<WorkflowView>,
    /// Whole-job timeout in milliseconds (before extensions).
    pub timeout_ms: u64,
    /// Extensions granted in total, in milliseconds.
    #[serde(default)]
    pub total_extensions_granted_ms: u64,
    /// Leader stamp (ms since the Unix epoch) of the submit.
    pub submitted_at_ms: u64,
    /// Leader stamp of the transition to a terminal status.
    #[serde(default)]
    pub finished_at_ms: Option<u64>,
    /// Why the job ended as it did (failed workflows, timeout reason), when it says more than
    /// the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Retries spent from the job's budget.
    #[serde(default)]
    pub retries_used: u32,
}

/// A workflow inside a [`JobView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowView {
    /// Name, unique within the job.
    pub name: String,
    /// argv.
    pub command: Vec<String>,
    /// Cores required.
    pub cores: u32,
    /// Status in snake_case (`pending`, `dispatched`, `running`, `completed`, `failed`,
    /// `cancelling`, `cancelled`).
    pub status: String,
    /// Dispatch attempt: 0 before the first dispatch.
    #[serde(default)]
    pub attempt: u32,
    /// Worker of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u64>,
    /// Last failure message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Last exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// When the current attempt started running, ms since the Unix epoch (leader stamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// When the workflow reached a terminal status, ms since the Unix epoch (leader stamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
}

/// `POST /v1/jobs` response (201 created, 200 duplicate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitJobResponse {
    /// The job (the original one on a duplicate).
    pub job: JobView,
    /// True when the idempotency key matched an earlier submit with the same body.
    pub duplicate: bool,
}

/// `GET /v1/jobs` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobListResponse {
    /// Jobs in ascending id order.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor=` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `POST /v1/jobs/{id}/cancel` body (optional; an empty body means no fence, no reason).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelJobRequest {
    /// When given, must equal the job's fence token or the cancel is refused (409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fence_token: Option<u64>,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The job is now cancelled (or cancelling, while workflows stop).
    Cancelled,
    /// It was already cancelled (or cancelling); nothing changed.
    AlreadyCancelled,
    /// It had already completed, failed or timed out; nothing changed. See `job.status`.
    AlreadyTerminal,
}

/// `POST /v1/jobs/{id}/cancel` response (always 200 when the job exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelJobResponse {
    /// What happened.
    pub outcome: CancelOutcome,
    /// Shorthand for `outcome == already_cancelled`.
    pub already_cancelled: bool,
    /// The job after the cancel.
    pub job: JobView,
}

/// One entry of a job's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// Raft log index of the entry that carried the event.
    pub index: u64,
    /// Leader stamp, ms since the Unix epoch.
    pub at_ms: u64,
    /// Event kind in snake_case (`job_submitted`, `job_cancelled`, …).
    pub kind: String,
    /// The event's fields, as the state machine records them.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// `GET /v1/jobs/{id}/events` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEventsResponse {
    /// The job.
    pub job_id: u64,
    /// Its timeline, oldest first.
    pub events: Vec<EventView>,
}

/// `GET /v1/jobs/{id}/wait` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitJobResponse {
    /// The job when the wait ended.
    pub job: JobView,
    /// False when the wait timed out before the job reached a terminal status.
    pub terminal: bool,
}

/// A member in [`ClusterStatusView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Node id (never reused).
    pub id: u64,
    /// Raft transport address.
    pub raft_addr: SocketAddr,
    /// HTTP API address.
    pub api_addr: SocketAddr,
    /// Voter or learner.
    pub voter: bool,
    /// Highest log index known replicated to it (only reported by the leader).
    #[serde(default)]
    pub matched_index: Option<u64>,
}

/// `GET /v1/cluster/status` response: this node's view of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatusView {
    /// The answering node.
    pub node_id: u64,
    /// The leader this node knows of.
    #[serde(default)]
    pub leader_id: Option<u64>,
    /// Current Raft term.
    pub term: u64,
    /// Highest committed log index this node knows.
    #[serde(default)]
    pub commit_index: Option<u64>,
    /// Highest log index applied to this node's state machine.
    #[serde(default)]
    pub applied_index: Option<u64>,
    /// Members of the group, voters and learners.
    pub members: Vec<MemberView>,
    /// The applied state's hash, only with `?state_hash=true` (it costs a pass over the
    /// whole state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_hash: Option<StateHashView>,
}

/// The hash of this node's applied state and the index it was taken at, read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateHashView {
    /// The last log index applied to the hashed state (may be ahead of `applied_index` in
    /// the same answer, which is read from Raft's metrics a moment earlier).
    pub applied_index: u64,
    /// `steward_statemachine::state_hash` of the state; `steward log replay --json` prints
    /// the same number (`summary.state_hash`) for the same prefix of the log.
    pub hash: u64,
}

/// `POST /v1/cluster/transfer-leader` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferLeaderRequest {
    /// The node to hand leadership to.
    pub to: u64,
}

/// `POST /v1/cluster/transfer-leader` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLeaderResponse {
    /// The previous leader.
    pub from: u64,
    /// The new leader.
    pub to: u64,
    /// How long the group had no leader, in milliseconds.
    pub leaderless_ms: u64,
}

/// `POST /v1/cluster/members` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    /// New node id; must never have been used in this group.
    pub id: u64,
    /// Its Raft transport address.
    pub raft_addr: SocketAddr,
    /// Its HTTP API address.
    pub api_addr: SocketAddr,
}

/// Body of the test-only workflow completion route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCompleteWorkflowRequest {
    /// Whether the workflow succeeded. Default: true.
    #[serde(default = "default_true")]
    pub success: bool,
}

fn default_true() -> bool {
    true
}

/// Body of `POST /v1/test-only/partition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestPartitionRequest {
    /// Members this node can no longer exchange Raft or gossip traffic with; empty heals.
    pub blocked_peers: Vec<u64>,
}

/// Answer of `POST /v1/test-only/partition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestPartitionResponse {
    /// The blocked members now in force.
    pub blocked_peers: Vec<u64>,
    /// Raft requests not sent to blocked members so far.
    pub dropped_outgoing: u64,
    /// Raft requests from blocked members left unanswered so far.
    pub dropped_incoming: u64,
    /// Gossip datagrams dropped so far.
    pub dropped_gossip: u64,
}

/// Body (and answer) of `POST /v1/test-only/clock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestClockRequest {
    /// Offset added to this node's leader clock, in ms (negative moves it back). Stamps stay
    /// monotonic: a jump back only slows them until the wall clock catches up.
    pub offset_ms: i64,
}

/// `GET /readyz` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyView {
    /// True when a leader is known and this node's applied index has caught up.
    pub ready: bool,
    /// Why not, when not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// This node's status.
    pub status: ClusterStatusView,
}
