//! The worker routes (ADR 0010): registration, the instruction long-poll, reports, extension
//! requests, `GET /v1/workers` and `GET /v1/jobs/{id}/logs` (proxied to the workers).
//!
//! They need the replicated state itself (instructions are derived from it), so they work only
//! when the backend is a [`Node`]; a fake backend answers `501`. Leadership is not handled
//! here: a follower's "not leader" is forwarded by the `forward` layer.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use steward_statemachine::{
    Command, JobId, Outcome, Rejection, ReportKind, WorkerId, WorkerReport, WorkerStatus,
    WorkflowRef,
};

use super::backend::{Backend, BackendError};
use super::error::{ApiError, ErrorCode};
use super::extract::{self, QueryParams};
use super::node_backend::node_error;
use super::{respond, ApiState};
use crate::worker::hub::Hub;
use crate::worker::protocol::{
    self, AttemptLog, ExitDetails, ExtensionRequest, ExtensionResponse, GossipSeed, LogSource,
    LogsResponse, PollRequest, PollResponse, RegisterRequest, RegisterResponse, ReportRequest,
    ReportResponse, WorkerListResponse, WorkerView, LEASE_MS_MIN, POLL_WAIT_MS_MAX,
    PROTOCOL_VERSION,
};
use crate::{Consistency, Node};

/// Deadline for fetching one worker's logs. Default: 3 s.
pub const WORKER_LOGS_TIMEOUT_MS: u64 = 3_000;

// The error is the finished response, returned as is; boxing it buys nothing on this path.
#[allow(clippy::result_large_err)]
fn node_of<B: Backend>(backend: &B) -> Result<&Node, Response> {
    (backend as &dyn Any).downcast_ref::<Node>().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            ErrorCode::RouteNotFound,
            "worker routes need a manager node",
        )
        .into_response()
    })
}

// The error is the finished response, returned as is; boxing it buys nothing on this path.
#[allow(clippy::result_large_err)]
fn parse<T: serde::de::DeserializeOwned>(
    body: &[u8],
    version: impl Fn(&T) -> u32,
) -> Result<T, Response> {
    let value: T = extract::parse_json(body).map_err(IntoResponse::into_response)?;
    if version(&value) != PROTOCOL_VERSION {
        return Err(ApiError::invalid_field(
            "version",
            format!("worker protocol version {PROTOCOL_VERSION} expected"),
        )
        .into_response());
    }
    Ok(value)
}

// The error is the finished response, returned as is; boxing it buys nothing on this path.
#[allow(clippy::result_large_err)]
fn worker_id(text: &str) -> Result<WorkerId, Response> {
    text.parse().map(WorkerId).map_err(|_| {
        ApiError::invalid_field("id", "worker id must be an unsigned 64-bit integer")
            .into_response()
    })
}

macro_rules! try_response {
    ($expr:expr) => {
        match $expr {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

/// `POST /v1/workers/register`.
pub async fn register<B: Backend>(State(state): State<ApiState<B>>, body: Bytes) -> Response {
    let node = try_response!(node_of(&state.backend));
    let request: RegisterRequest = try_response!(parse(&body, |r: &RegisterRequest| r.version));
    if request.lease_ms < LEASE_MS_MIN {
        return ApiError::invalid_field("lease_ms", format!("at least {LEASE_MS_MIN} ms"))
            .into_response();
    }
    let worker = WorkerId(request.worker);
    // A registration comes from a freshly started worker process: whatever the state still
    // says it runs belongs to a previous incarnation and is lost.
    let held = match node
        .read(Consistency::Linearizable, move |s| {
            let live = s
                .worker(worker)
                .is_some_and(|w| w.status != WorkerStatus::Lost);
            if live {
                protocol::held_by(s, worker).len()
            } else {
                0
            }
        })
        .await
    {
        Ok(held) => held,
        Err(err) => return respond::error(node_error(err)),
    };
    if held > 0 {
        if let Err(err) = node.execute(Command::WorkerLost { worker }).await {
            return respond::error(node_error(err));
        }
    }
    let command = Command::RegisterWorker {
        worker,
        cores: request.cores,
        address: request.address.clone(),
    };
    if let Err(err) = node.execute(command).await {
        return respond::error(node_error(err));
    }
    Hub::for_node(node.id()).heartbeat(request.worker, request.lease_ms);
    let fence = node
        .read(Consistency::Stale, |s| s.globals().fence_token.0)
        .await
        .unwrap_or(0);
    let managers = node
        .cluster_status()
        .members
        .iter()
        .map(|member| member.api_addr.to_string())
        .collect();
    let gossip_seeds = node
        .gossip()
        .map(|snapshot| {
            let managers = snapshot.members.iter().filter(|m| m.role == "manager");
            std::iter::once(GossipSeed {
                id: snapshot.id,
                addr: snapshot.addr,
            })
            .chain(managers.map(|m| GossipSeed {
                id: m.id,
                addr: m.addr,
            }))
            .collect()
        })
        .unwrap_or_default();
    tracing::info!(
        worker = request.worker,
        cores = request.cores,
        lost = held,
        "worker registered"
    );
    Json(RegisterResponse {
        version: PROTOCOL_VERSION,
        worker: request.worker,
        fence_token: fence,
        lost_attempts: u32::try_from(held).unwrap_or(u32::MAX),
        managers,
        gossip_seeds,
    })
    .into_response()
}

/// `POST /v1/workers/{id}/poll`.
pub async fn poll<B: Backend>(
    State(state): State<ApiState<B>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let node = try_response!(node_of(&state.backend));
    let worker = try_response!(worker_id(&id));
    let request: PollRequest = try_response!(parse(&body, |r: &PollRequest| r.version));
    let running: BTreeSet<WorkflowRef> = request.running.iter().copied().collect();
    // Confirms leadership (a follower forwards) before counting the heartbeat.
    let status = match node
        .read(Consistency::Linearizable, move |s| {
            s.worker(worker).map(|w| w.status)
        })
        .await
    {
        Ok(status) => status,
        Err(err) => return respond::error(node_error(err)),
    };
    if status.is_some_and(|status| status != WorkerStatus::Lost) {
        Hub::for_node(node.id()).heartbeat(worker.0, request.lease_ms);
        let wait = Duration::from_millis(request.wait_ms.min(POLL_WAIT_MS_MAX));
        let watched = running.clone();
        let ready = node.wait_until(wait, move |s| has_instructions(s, worker, &watched));
        if let Err(err) = ready.await {
            return respond::error(node_error(err));
        }
    }
    let now_ms = now_ms();
    let answer = node
        .read(Consistency::Stale, move |s| PollResponse {
            version: PROTOCOL_VERSION,
            fence_token: s.globals().fence_token.0,
            status: s.worker(worker).map(|w| w.status),
            assignments: protocol::assignments_for(s, worker, &running),
            stops: protocol::stops_for(s, worker, &running),
            deadlines: protocol::deadlines_for(s, &running, now_ms),
        })
        .await;
    match answer {
        Ok(answer) => Json(answer).into_response(),
        Err(err) => respond::error(node_error(err)),
    }
}

fn has_instructions(
    s: &steward_statemachine::State,
    worker: WorkerId,
    running: &BTreeSet<WorkflowRef>,
) -> bool {
    s.worker(worker)
        .is_none_or(|w| w.status == WorkerStatus::Lost)
        || !protocol::assignments_for(s, worker, running).is_empty()
        || !protocol::stops_for(s, worker, running).is_empty()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `POST /v1/workers/{id}/reports`.
pub async fn report<B: Backend>(
    State(state): State<ApiState<B>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let node = try_response!(node_of(&state.backend));
    let worker = try_response!(worker_id(&id));
    let request: ReportRequest = try_response!(parse(&body, |r: &ReportRequest| r.version));
    let kind = match request.kind {
        ReportKind::Failed { error, exit_code } => ReportKind::Failed {
            error: cut(error, steward_statemachine::ERROR_BYTES_MAX),
            exit_code,
        },
        other => other,
    };
    let command = Command::Report(WorkerReport {
        worker,
        target: request.target,
        kind,
        exit: request.exit.map(ExitDetails::into_record),
    });
    let answer = match node.execute(command).await {
        Ok(Outcome::Rejected { reason }) | Err(crate::Error::Rejected(reason)) => refused(&reason),
        Ok(_) => ReportResponse {
            version: PROTOCOL_VERSION,
            applied: true,
            refused: None,
        },
        Err(err) => return respond::error(node_error(err)),
    };
    Json(answer).into_response()
}

fn refused(reason: &Rejection) -> ReportResponse {
    ReportResponse {
        version: PROTOCOL_VERSION,
        applied: false,
        refused: Some(reason.to_string()),
    }
}

fn cut(mut text: String, bytes_max: usize) -> String {
    if text.len() > bytes_max {
        let mut end = bytes_max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// `POST /v1/workers/{id}/extensions`.
pub async fn extension<B: Backend>(
    State(state): State<ApiState<B>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let node = try_response!(node_of(&state.backend));
    let worker = try_response!(worker_id(&id));
    let request: ExtensionRequest = try_response!(parse(&body, |r: &ExtensionRequest| r.version));
    let command = Command::RequestExtension {
        job: JobId(request.job),
        worker,
        progress: request.progress,
    };
    let denied = |why: String| ExtensionResponse {
        version: PROTOCOL_VERSION,
        granted: false,
        grant_ms: 0,
        denied: Some(why),
    };
    let answer = match node.execute(command).await {
        Ok(Outcome::ExtensionGranted { grant_ms, .. }) => ExtensionResponse {
            version: PROTOCOL_VERSION,
            granted: true,
            grant_ms,
            denied: None,
        },
        Ok(Outcome::ExtensionDenied { reason, .. }) => denied(reason.to_string()),
        Ok(Outcome::Rejected { reason }) | Err(crate::Error::Rejected(reason)) => {
            denied(reason.to_string())
        }
        Ok(other) => denied(format!("unexpected outcome {other:?}")),
        Err(err) => return respond::error(node_error(err)),
    };
    Json(answer).into_response()
}

/// `GET /v1/workers` (`?stale=true` reads this node's state).
pub async fn list<B: Backend>(
    State(state): State<ApiState<B>>,
    RawQuery(query): RawQuery,
) -> Response {
    let node = try_response!(node_of(&state.backend));
    let params = try_response!(
        QueryParams::parse(query.as_deref(), &["stale"]).map_err(IntoResponse::into_response)
    );
    let stale = try_response!(params.stale().map_err(IntoResponse::into_response));
    let consistency = if stale {
        Consistency::Stale
    } else {
        Consistency::Linearizable
    };
    let hub = Hub::for_node(node.id());
    let views = node
        .read(consistency, move |s| {
            s.workers()
                .map(|w| WorkerView {
                    id: w.id.0,
                    address: w.address.clone(),
                    cores: w.cores,
                    cores_used: s.cores_used(w.id),
                    status: w.status,
                    last_seen_ms_ago: hub
                        .last_seen(w.id.0)
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    running: protocol::held_by(s, w.id)
                        .into_iter()
                        .map(|(t, _)| t)
                        .collect(),
                })
                .collect::<Vec<_>>()
        })
        .await;
    respond::json(
        StatusCode::OK,
        views
            .map(|workers| WorkerListResponse { workers })
            .map_err(node_error),
    )
}

/// `GET /v1/jobs/{id}/logs[?workflow=NAME]`: asks the workers named in the job's workflows,
/// and falls back to the replicated exit record of any attempt no worker answered for.
pub async fn logs<B: Backend>(
    State(state): State<ApiState<B>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let node = try_response!(node_of(&state.backend));
    let job = try_response!(super::jobs::job_id(&id).map_err(IntoResponse::into_response));
    let params =
        try_response!(QueryParams::parse(query.as_deref(), &["workflow"])
            .map_err(IntoResponse::into_response));
    let workflow = try_response!(params.one("workflow").map_err(IntoResponse::into_response))
        .map(str::to_owned);
    let wanted = workflow.clone();
    let found = node
        .read(Consistency::Stale, move |s| {
            let record = s.job(JobId(job))?;
            let mut addresses = BTreeSet::new();
            for (name, runtime) in record
                .spec()
                .workflow_names()
                .into_iter()
                .zip(&record.workflows)
            {
                if wanted.as_deref().is_some_and(|wanted| wanted != name) {
                    continue;
                }
                if let Some(address) = runtime
                    .worker
                    .and_then(|w| s.worker(w))
                    .map(|w| w.address.clone())
                {
                    addresses.insert(address);
                }
            }
            Some((addresses, replicated_logs(s, record, wanted.as_deref())))
        })
        .await;
    let (addresses, replicated) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return respond::error(BackendError::Api(ApiError::job_not_found(job))),
        Err(err) => return respond::error(node_error(err)),
    };
    let mut logs: BTreeMap<WorkflowRef, AttemptLog> = BTreeMap::new();
    for address in addresses {
        for log in fetch_logs(&state.forwarder, &address, job, workflow.as_deref()).await {
            logs.insert(log.target, log);
        }
    }
    for log in replicated {
        logs.entry(log.target).or_insert(log);
    }
    Json(LogsResponse {
        logs: logs.into_values().collect(),
    })
    .into_response()
}

/// The replicated exit records of the job's workflows (all, or the one named `wanted`).
fn replicated_logs(
    s: &steward_statemachine::State,
    record: &steward_statemachine::Job,
    wanted: Option<&str>,
) -> Vec<AttemptLog> {
    let names = record.spec().workflow_names();
    s.outputs_of(record.id)
        .filter_map(|output| {
            let name = *names.get(output.workflow.0 as usize)?;
            if wanted.is_some_and(|wanted| wanted != name) {
                return None;
            }
            Some(AttemptLog {
                target: WorkflowRef {
                    job: output.job,
                    workflow: output.workflow,
                    attempt: output.attempt,
                },
                workflow_name: name.to_owned(),
                worker: output.worker.0,
                running: false,
                exit_code: output.exit.exit_code,
                signal: output.exit.signal,
                duration_ms: output.exit.duration_ms,
                tail: output.exit.output_tail.clone(),
                source: LogSource::Replicated,
            })
        })
        .collect()
}

async fn fetch_logs(
    http: &reqwest::Client,
    address: &str,
    job: u64,
    workflow: Option<&str>,
) -> Vec<AttemptLog> {
    let mut request = http
        .get(format!(
            "{}/v1/agent/logs",
            crate::worker::base_url(address)
        ))
        .query(&[("job", job.to_string())])
        .timeout(Duration::from_millis(WORKER_LOGS_TIMEOUT_MS));
    if let Some(name) = workflow {
        request = request.query(&[("workflow", name)]);
    }
    match request.send().await {
        Ok(response) => match response.json::<LogsResponse>().await {
            Ok(answer) => answer.logs,
            Err(err) => {
                tracing::debug!(%address, %err, "worker logs undecodable");
                Vec::new()
            }
        },
        Err(err) => {
            tracing::debug!(%address, %err, "worker logs unreachable");
            Vec::new()
        }
    }
}
