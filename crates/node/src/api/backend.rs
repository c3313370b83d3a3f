//! What the HTTP layer needs from a manager, as a trait: submit, read, cancel, wait, cluster
//! operations, metrics. `Node` implements it (`node_backend`); tests may implement it with a
//! fake to exercise the HTTP layer (parsing, errors, forwarding) without a Raft group.
//!
//! It deliberately does not describe Raft or storage: only the answers the API gives, in the
//! API's wire types, plus "not leader" so the HTTP layer can forward.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use super::error::ApiError;
use super::types::{
    AddMemberRequest, CancelJobRequest, CancelJobResponse, ClusterStatusView, JobEventsResponse,
    JobListResponse, JobStatus, JobView, StateHashView, SubmitJobRequest, SubmitJobResponse,
    TestClockRequest, TestPartitionResponse, TransferLeaderResponse, WaitJobResponse,
};

/// Why a backend call did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// This node is not the leader; nothing changed. The HTTP layer forwards the request to
    /// `leader_api_addr` when known (one hop), or answers `503 no_leader`.
    NotLeader {
        /// The leader's id, if known.
        leader_id: Option<u64>,
        /// The leader's HTTP address, if known.
        leader_api_addr: Option<SocketAddr>,
    },
    /// Any other failure, already in the API's error shape (status, code, field).
    Api(ApiError),
}

impl From<ApiError> for BackendError {
    fn from(err: ApiError) -> Self {
        BackendError::Api(err)
    }
}

/// Result of a backend call.
pub type BackendResult<T> = std::result::Result<T, BackendError>;

/// Who is submitting, for idempotency scoping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitContext {
    /// Client namespace (`X-Steward-Namespace`, default `default`).
    pub namespace: String,
    /// `Idempotency-Key`, if the client sent one.
    pub idempotency_key: Option<String>,
}

/// `GET /v1/jobs` filter, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs carrying every one of these labels.
    pub labels: Vec<(String, String)>,
    /// Page size.
    pub limit: usize,
    /// Only jobs with an id greater than this (the decoded cursor).
    pub after_id: Option<u64>,
    /// Read local state instead of a linearizable read.
    pub stale: bool,
}

/// The operations behind the HTTP routes. Implementations must be cheap to clone.
pub trait Backend: Clone + Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> u64;

    /// Whether the `/v1/test-only/…` routes are enabled (`NodeConfig::test_mode`).
    fn test_mode(&self) -> bool;

    /// Submits a validated job. `Ok` carries whether it was a duplicate.
    fn submit(
        &self,
        context: SubmitContext,
        request: SubmitJobRequest,
    ) -> impl Future<Output = BackendResult<SubmitJobResponse>> + Send;

    /// One job, or `None` if unknown.
    fn job(
        &self,
        job_id: u64,
        stale: bool,
    ) -> impl Future<Output = BackendResult<Option<JobView>>> + Send;

    /// A page of jobs.
    fn list(
        &self,
        filter: ListFilter,
    ) -> impl Future<Output = BackendResult<JobListResponse>> + Send;

    /// Cancels a job (idempotent); an unknown job is `404`.
    fn cancel(
        &self,
        job_id: u64,
        request: CancelJobRequest,
    ) -> impl Future<Output = BackendResult<CancelJobResponse>> + Send;

    /// A job's timeline, or `None` if unknown.
    fn events(
        &self,
        job_id: u64,
        stale: bool,
    ) -> impl Future<Output = BackendResult<Option<JobEventsResponse>>> + Send;

    /// Waits up to `timeout` for the job to become terminal; `None` if unknown.
    fn wait(
        &self,
        job_id: u64,
        timeout: Duration,
    ) -> impl Future<Output = BackendResult<Option<WaitJobResponse>>> + Send;

    /// This node's view of the group.
    fn cluster_status(&self) -> ClusterStatusView;

    /// Hands leadership to `to` (leader only).
    fn transfer_leader(
        &self,
        to: u64,
    ) -> impl Future<Output = BackendResult<TransferLeaderResponse>> + Send;

    /// Adds a member (learner, catch up, promote); leader only.
    fn add_member(
        &self,
        request: AddMemberRequest,
    ) -> impl Future<Output = BackendResult<ClusterStatusView>> + Send;

    /// Removes a member; leader only.
    fn remove_member(
        &self,
        node_id: u64,
    ) -> impl Future<Output = BackendResult<ClusterStatusView>> + Send;

    /// This node's gossip view for `GET /v1/cluster/members` and `/v1/cluster/coordinates`;
    /// `None` when gossip is off (both routes answer `404`). Default: `None`.
    fn gossip(&self) -> Option<std::sync::Arc<crate::gossip::Snapshot>> {
        None
    }

    /// Appends this node's metrics (Raft, WAL, jobs) in Prometheus text format.
    fn render_metrics(&self, out: &mut super::metrics::PromText);

    /// The applied state's hash with the index it was taken at, for
    /// `GET /v1/cluster/status?state_hash=true`. Default: `None` (no state to hash).
    fn state_hash(&self) -> Option<StateHashView> {
        None
    }

    /// Test-only: partitions this node from `blocked` members (empty heals); local, never
    /// forwarded. Default: refused as a backend without a transport.
    fn set_partition(&self, _blocked: Vec<u64>) -> BackendResult<TestPartitionResponse> {
        Err(no_fault_injection())
    }

    /// Test-only: shifts this node's leader clock by `offset_ms`; local, never forwarded.
    /// Default: refused as a backend without a clock.
    fn set_clock_offset(&self, _offset_ms: i64) -> BackendResult<TestClockRequest> {
        Err(no_fault_injection())
    }

    /// Test-only: marks one workflow of a job finished (`success` or failed); leader only.
    fn complete_workflow_for_test(
        &self,
        job_id: u64,
        workflow: String,
        success: bool,
    ) -> impl Future<Output = BackendResult<JobView>> + Send;
}

fn no_fault_injection() -> BackendError {
    BackendError::Api(ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        super::error::ErrorCode::TestOnlyDisabled,
        "this backend has no fault injection",
    ))
}
