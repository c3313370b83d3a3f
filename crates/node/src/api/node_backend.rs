//! [`Backend`] for [`Node`]: the routes' operations as replicated commands and reads, and the
//! node's metrics in Prometheus text.
//!
//! It deliberately adds no policy: leadership, validation and deduplication are the node's and
//! the state machine's; this module only translates between them and the API's wire types.

use std::time::Duration;

use axum::http::StatusCode;
use steward_statemachine::{self as sm, Command, Outcome, ReportKind, WorkerReport, WorkflowRef};

use super::backend::{Backend, BackendError, BackendResult, ListFilter, SubmitContext};
use super::convert;
use super::error::{ApiError, ErrorCode};
use super::metrics::PromText;
use super::types::{
    AddMemberRequest, CancelJobRequest, CancelJobResponse, CancelOutcome, ClusterStatusView,
    JobEventsResponse, JobListResponse, JobStatus, JobView, MemberView, StateHashView,
    SubmitJobRequest, SubmitJobResponse, TestClockRequest, TestPartitionResponse,
    TransferLeaderResponse, WaitJobResponse,
};
use crate::{Consistency, Error, Node, PeerConfig};

/// Worker id the test-only completion route reports as when a workflow has no worker yet.
pub const TEST_WORKER_ID: u64 = u64::MAX;

/// The API error (or "not leader") for a node error.
pub fn node_error(err: Error) -> BackendError {
    let api = match err {
        Error::NotLeader {
            leader_id,
            leader_api_addr,
        } => {
            return BackendError::NotLeader {
                leader_id,
                leader_api_addr,
            }
        }
        Error::Rejected(reason) => convert::rejection(&reason),
        Error::Timeout(what) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Timeout,
            format!("timed out: {what}; the operation may still take effect"),
        ),
        Error::ShuttingDown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
            "the node is shutting down",
        ),
        Error::Membership(message) => {
            ApiError::new(StatusCode::CONFLICT, ErrorCode::Rejected, message)
        }
        Error::Config { field, message } => ApiError::invalid_field(field, message),
        // A read-index round that could not reach a quorum (just elected, peers still
        // reconnecting): leadership is unconfirmed right now, nothing changed, retry shortly.
        Error::Raft {
            what: "ensure_linearizable",
            message,
        } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NoLeader,
            format!("leadership could not be confirmed for a linearizable read: {message}"),
        ),
        other => ApiError::internal(other.to_string()),
    };
    BackendError::Api(api)
}

fn consistency(stale: bool) -> Consistency {
    if stale {
        Consistency::Stale
    } else {
        Consistency::Linearizable
    }
}

impl Node {
    async fn execute_api(&self, command: Command) -> BackendResult<Outcome> {
        match self.execute(command).await.map_err(node_error)? {
            Outcome::Rejected { reason } => Err(convert::rejection(&reason).into()),
            outcome => Ok(outcome),
        }
    }

    /// The job as this node has applied it (after `execute`, the leader has applied it).
    async fn local_view(&self, job_id: u64) -> BackendResult<JobView> {
        let view = self
            .read(Consistency::Stale, move |state| {
                convert::job_view(state, job_id)
            })
            .await
            .map_err(node_error)?;
        view.ok_or_else(|| ApiError::job_not_found(job_id).into())
    }
}

fn unexpected(outcome: &Outcome) -> BackendError {
    ApiError::internal(format!(
        "unexpected outcome from the state machine: {outcome:?}"
    ))
    .into()
}

impl Backend for Node {
    fn node_id(&self) -> u64 {
        self.id()
    }

    fn test_mode(&self) -> bool {
        self.config().test_mode
    }

    async fn submit(
        &self,
        context: SubmitContext,
        request: SubmitJobRequest,
    ) -> BackendResult<SubmitJobResponse> {
        let idempotency_key = context
            .idempotency_key
            .map(|key| sm::IdempotencyKey::new(context.namespace, key));
        let command = Command::SubmitJob {
            idempotency_key,
            spec: convert::job_spec(request),
        };
        let (job, duplicate) = match self.execute_api(command).await? {
            Outcome::JobAccepted { job } => (job, false),
            Outcome::Duplicate { job, .. } => (job, true),
            other => return Err(unexpected(&other)),
        };
        let job = self.local_view(job.0).await?;
        Ok(SubmitJobResponse { job, duplicate })
    }

    async fn job(&self, job_id: u64, stale: bool) -> BackendResult<Option<JobView>> {
        self.read(consistency(stale), move |state| {
            convert::job_view(state, job_id)
        })
        .await
        .map_err(node_error)
    }

    async fn list(&self, filter: ListFilter) -> BackendResult<JobListResponse> {
        let read = move |state: &sm::State| {
            let status = filter.status.map(convert::status_to_domain);
            let page = state.jobs_by_status(status, filter.after_id.map(sm::JobId), filter.limit);
            let jobs = page
                .jobs
                .iter()
                .filter_map(|id| convert::job_view(state, id.0))
                .filter(|job| {
                    filter
                        .labels
                        .iter()
                        .all(|(key, value)| job.labels.get(key) == Some(value))
                })
                .collect();
            JobListResponse {
                jobs,
                next_cursor: page.next.map(|id| id.0.to_string()),
            }
        };
        self.read(consistency(filter.stale), read)
            .await
            .map_err(node_error)
    }

    async fn cancel(
        &self,
        job_id: u64,
        request: CancelJobRequest,
    ) -> BackendResult<CancelJobResponse> {
        let command = Command::CancelJob {
            job: sm::JobId(job_id),
            fence_token: request.fence_token.map(sm::FenceToken),
        };
        let outcome = match self.execute_api(command).await? {
            Outcome::CancelAccepted {
                already_cancelled: true,
                ..
            } => CancelOutcome::AlreadyCancelled,
            Outcome::CancelAccepted { .. } => CancelOutcome::Cancelled,
            Outcome::AlreadyTerminal { .. } => CancelOutcome::AlreadyTerminal,
            other => return Err(unexpected(&other)),
        };
        let job = self.local_view(job_id).await?;
        Ok(CancelJobResponse {
            outcome,
            already_cancelled: outcome == CancelOutcome::AlreadyCancelled,
            job,
        })
    }

    async fn events(&self, job_id: u64, stale: bool) -> BackendResult<Option<JobEventsResponse>> {
        self.read(consistency(stale), move |state| {
            convert::timeline(state, job_id)
        })
        .await
        .map_err(node_error)
    }

    async fn wait(&self, job_id: u64, timeout: Duration) -> BackendResult<Option<WaitJobResponse>> {
        let exists = move |state: &sm::State| state.job(sm::JobId(job_id)).is_some();
        let known = self
            .read(Consistency::Stale, exists)
            .await
            .map_err(node_error)?;
        // A follower that has not applied the job yet asks the leader (a follower answers
        // "not leader", and the whole wait is forwarded there): never a false 404.
        if !known
            && !self
                .read(Consistency::Linearizable, exists)
                .await
                .map_err(node_error)?
        {
            return Ok(None);
        }
        let terminal = move |state: &sm::State| {
            state
                .job(sm::JobId(job_id))
                .is_none_or(|job| job.status.is_terminal())
        };
        self.wait_until(timeout, terminal)
            .await
            .map_err(node_error)?;
        let job = self.local_view(job_id).await?;
        Ok(Some(WaitJobResponse {
            terminal: job.status.is_terminal(),
            job,
        }))
    }

    fn cluster_status(&self) -> ClusterStatusView {
        let status = Node::cluster_status(self);
        ClusterStatusView {
            node_id: status.node_id,
            leader_id: status.leader_id,
            term: status.term,
            commit_index: status.commit_index,
            applied_index: status.applied_index,
            members: status
                .members
                .iter()
                .map(|member| MemberView {
                    id: member.id,
                    raft_addr: member.raft_addr,
                    api_addr: member.api_addr,
                    voter: member.voter,
                    matched_index: member.matched_index,
                })
                .collect(),
            state_hash: None,
        }
    }

    fn state_hash(&self) -> Option<StateHashView> {
        let (applied_index, hash) = Node::state_hash(self);
        Some(StateHashView {
            applied_index,
            hash,
        })
    }

    fn set_partition(&self, blocked: Vec<u64>) -> BackendResult<TestPartitionResponse> {
        let blocked: std::collections::BTreeSet<u64> = blocked.into_iter().collect();
        let dropped = Node::set_partition(self, blocked.clone()).map_err(node_error)?;
        Ok(TestPartitionResponse {
            blocked_peers: blocked.into_iter().collect(),
            dropped_outgoing: dropped.outgoing,
            dropped_incoming: dropped.incoming,
            dropped_gossip: dropped.gossip,
        })
    }

    fn set_clock_offset(&self, offset_ms: i64) -> BackendResult<TestClockRequest> {
        Node::set_clock_offset_ms(self, offset_ms).map_err(node_error)?;
        Ok(TestClockRequest { offset_ms })
    }

    async fn transfer_leader(&self, to: u64) -> BackendResult<TransferLeaderResponse> {
        let report = Node::transfer_leader(self, to).await.map_err(node_error)?;
        Ok(TransferLeaderResponse {
            from: report.from,
            to: report.to,
            leaderless_ms: report.leaderless_ms,
        })
    }

    async fn add_member(&self, request: AddMemberRequest) -> BackendResult<ClusterStatusView> {
        let peer = PeerConfig {
            id: request.id,
            raft_addr: request.raft_addr,
            api_addr: request.api_addr,
        };
        Node::add_member(self, peer).await.map_err(node_error)?;
        Ok(Backend::cluster_status(self))
    }

    async fn remove_member(&self, node_id: u64) -> BackendResult<ClusterStatusView> {
        Node::remove_member(self, node_id)
            .await
            .map_err(node_error)?;
        Ok(Backend::cluster_status(self))
    }

    fn gossip(&self) -> Option<std::sync::Arc<crate::gossip::Snapshot>> {
        Node::gossip(self)
    }

    fn render_metrics(&self, out: &mut PromText) {
        render_node_metrics(&self.metrics(), out);
        if let Some(gossip) = Node::gossip(self) {
            render_gossip_metrics(&gossip.metrics, out);
        }
    }

    async fn complete_workflow_for_test(
        &self,
        job_id: u64,
        workflow: String,
        success: bool,
    ) -> BackendResult<JobView> {
        complete_for_test(self, job_id, &workflow, success).await?;
        self.local_view(job_id).await
    }
}

/// Gossip (membership) metrics: members by state, probes, suspicions, refutations, local
/// health, coordinate error, malformed datagrams, managers/workers declared dead.
fn render_gossip_metrics(m: &crate::gossip::GossipMetrics, out: &mut PromText) {
    let p = &m.membership;
    out.family(
        "steward_gossip_members",
        "gauge",
        "Gossip members by state (excluding this node).",
    );
    for (state, count) in [
        ("unconfirmed", p.members_unconfirmed),
        ("alive", p.members_alive),
        ("suspect", p.members_suspect),
        ("dead", p.members_dead),
        ("left", p.members_left),
    ] {
        out.sample("steward_gossip_members", &[("state", state)], count as f64);
    }
    let counters = [
        (
            "steward_gossip_probes_total",
            "Direct probes sent.",
            p.probes_sent,
        ),
        (
            "steward_gossip_probes_failed_total",
            "Probes without any ack.",
            p.probes_failed,
        ),
        (
            "steward_gossip_suspicions_total",
            "Suspicions started.",
            p.suspicions,
        ),
        (
            "steward_gossip_refutations_total",
            "Suspicions about this node refuted.",
            p.refutations,
        ),
        (
            "steward_gossip_malformed_dropped_total",
            "Datagrams dropped as malformed.",
            p.malformed_packets_dropped,
        ),
        (
            "steward_gossip_managers_suspected_total",
            "Managers declared suspect (reported only).",
            m.managers_suspected,
        ),
        (
            "steward_gossip_managers_dead_total",
            "Managers declared dead (reported only).",
            m.managers_dead,
        ),
        (
            "steward_gossip_workers_dead_total",
            "Workers declared dead.",
            m.workers_dead,
        ),
    ];
    for (name, help, value) in counters {
        out.family(name, "counter", help);
        out.sample(name, &[], value as f64);
    }
    out.gauge(
        "steward_gossip_local_health",
        "Lifeguard local health score (0..=8).",
        f64::from(p.lhm_score),
    );
    out.gauge(
        "steward_gossip_coordinate_error",
        "Local Vivaldi coordinate error estimate.",
        p.coordinate_error,
    );
}

/// Attempts the test-only route makes to move one workflow to its exit (three transitions,
/// plus retries of steps that raced the dispatch duty).
const TEST_ROUTE_STEPS_MAX: u32 = 8;

/// Drives one workflow to `Completed` (or `Failed`) through the ordinary replicated commands:
/// register the test worker if needed, dispatch, report start, report exit.
async fn complete_for_test(
    node: &Node,
    job_id: u64,
    name: &str,
    success: bool,
) -> BackendResult<()> {
    let job = sm::JobId(job_id);
    let test_worker = sm::WorkerId(TEST_WORKER_ID);
    let registered = node
        .read(Consistency::Linearizable, move |state| {
            state.worker(test_worker).is_some()
        })
        .await
        .map_err(node_error)?;
    if !registered {
        let register = Command::RegisterWorker {
            worker: test_worker,
            cores: sm::CORES_MAX,
            address: "test-only".to_owned(),
        };
        node.execute_api(register).await?;
    }
    // Each step re-reads the workflow and moves it one transition on: dispatch, start, exit.
    // The leader's dispatch duty may move the workflow between our read and our command (it
    // dispatches pending work on its own); such a refused step is re-read and retried, a
    // bounded number of times.
    for step in 0..TEST_ROUTE_STEPS_MAX {
        let owned = name.to_owned();
        let current = node
            .read(Consistency::Stale, move |state| {
                let record = state.job(job)?;
                let names = record.spec().workflow_names();
                let position = names.iter().position(|name| *name == owned)?;
                let runtime = record.workflows.get(position)?;
                Some((sm::WorkflowId(position as u32), runtime.clone()))
            })
            .await
            .map_err(node_error)?;
        let Some((workflow, runtime)) = current else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                format!("job {job_id} has no workflow named `{name}`"),
            )
            .with_job(job_id)
            .with_field("name")
            .into());
        };
        let worker = runtime.worker.unwrap_or(test_worker);
        let target = WorkflowRef {
            job,
            workflow,
            attempt: runtime.attempt,
        };
        let report = |kind| {
            Command::Report(WorkerReport {
                worker,
                target,
                kind,
                exit: None,
            })
        };
        let (command, exit_reported) = match runtime.status {
            sm::WorkflowStatus::Pending => {
                let dispatch = Command::DispatchWorkflow {
                    job,
                    workflow,
                    worker: Some(test_worker),
                };
                (dispatch, false)
            }
            sm::WorkflowStatus::Dispatched => (report(ReportKind::Started), false),
            sm::WorkflowStatus::Running if success => (report(ReportKind::Completed), true),
            sm::WorkflowStatus::Running => {
                let failed = ReportKind::Failed {
                    error: "marked failed by the test-only route".to_owned(),
                    exit_code: Some(1),
                };
                (report(failed), true)
            }
            _ => return Ok(()),
        };
        match node.execute_api(command).await {
            Ok(_) => {}
            Err(_) if !exit_reported && step + 1 < TEST_ROUTE_STEPS_MAX => continue,
            Err(error) => return Err(error),
        }
        if exit_reported {
            // One attempt ends here; a failed one may be retried within the job's budgets.
            return Ok(());
        }
    }
    Ok(())
}

/// Appends the node's Raft, WAL, transport and job metrics.
pub fn render_node_metrics(metrics: &crate::NodeMetrics, out: &mut PromText) {
    let gauge = |out: &mut PromText, name: &str, help: &str, value: Option<u64>| {
        if let Some(value) = value {
            out.gauge(name, help, value as f64);
        }
    };
    gauge(
        out,
        "steward_raft_term",
        "Current Raft term.",
        Some(metrics.term),
    );
    gauge(
        out,
        "steward_raft_commit_index",
        "Highest log index known committed.",
        metrics.commit_index,
    );
    gauge(
        out,
        "steward_raft_applied_index",
        "Highest log index applied.",
        metrics.applied_index,
    );
    gauge(
        out,
        "steward_raft_last_log_index",
        "Highest log index stored.",
        metrics.last_log_index,
    );
    gauge(
        out,
        "steward_raft_snapshot_index",
        "Last index in the current snapshot.",
        metrics.snapshot_index,
    );
    gauge(
        out,
        "steward_raft_leader_id",
        "Leader known to this node.",
        metrics.leader_id,
    );
    let is_leader = u64::from(metrics.state == "leader");
    gauge(
        out,
        "steward_raft_is_leader",
        "1 when this node is the leader.",
        Some(is_leader),
    );

    let wal = &metrics.wal;
    counter(
        out,
        "steward_wal_appends_total",
        "WAL append calls.",
        wal.appends,
    );
    counter(
        out,
        "steward_wal_records_total",
        "WAL records appended.",
        wal.records,
    );
    counter(
        out,
        "steward_wal_bytes_total",
        "WAL bytes written.",
        wal.bytes,
    );
    counter(
        out,
        "steward_wal_syncs_total",
        "WAL fdatasync calls.",
        wal.syncs,
    );
    let histogram = &wal.sync_latency;
    let mut bounds = Vec::new();
    let mut cumulative = Vec::new();
    let mut total = 0;
    for (bound_us, count) in histogram
        .bucket_upper_bounds_us
        .iter()
        .zip(&histogram.counts)
    {
        total += count;
        if *bound_us != u64::MAX {
            bounds.push(*bound_us as f64 / 1e6);
            cumulative.push(total);
        }
    }
    let name = "steward_wal_sync_duration_seconds";
    out.family(name, "histogram", "WAL fdatasync latency.");
    out.histogram(
        name,
        &[],
        &bounds,
        &cumulative,
        total,
        histogram.sum_us as f64 / 1e6,
    );

    let transport = &metrics.transport;
    let counters = [
        (
            "steward_transport_frames_sent_total",
            "Raft frames sent.",
            transport.frames_sent,
        ),
        (
            "steward_transport_frames_received_total",
            "Raft frames received.",
            transport.frames_received,
        ),
        (
            "steward_transport_refused_bad_magic_total",
            "Frames refused: bad magic.",
            transport.refused_bad_magic,
        ),
        (
            "steward_transport_refused_version_total",
            "Frames refused: version.",
            transport.refused_version,
        ),
        (
            "steward_transport_refused_malformed_total",
            "Frames refused: malformed.",
            transport.refused_malformed,
        ),
        (
            "steward_transport_connects_total",
            "Raft connections made.",
            transport.connects,
        ),
        (
            "steward_transport_connect_failures_total",
            "Raft connection failures.",
            transport.connect_failures,
        ),
        (
            "steward_transport_request_timeouts_total",
            "Raft requests timed out.",
            transport.request_timeouts,
        ),
    ];
    for (name, help, value) in counters {
        counter(out, name, help, value);
    }

    out.family(
        "steward_jobs",
        "gauge",
        "Jobs by status, on this node's applied state.",
    );
    for status in JobStatus::ALL {
        let count = metrics
            .jobs_by_status
            .get(status.as_str())
            .copied()
            .unwrap_or(0);
        out.sample("steward_jobs", &[("status", status.as_str())], count as f64);
    }
    out.gauge(
        "steward_idempotency_live_keys",
        "Live idempotency keys.",
        metrics.idempotency_keys as f64,
    );
}

fn counter(out: &mut PromText, name: &str, help: &str, value: u64) {
    out.family(name, "counter", help);
    out.sample(name, &[], value as f64);
}
