//! The `/v1/test-only/...` routes, answered only when the node runs with `test_mode`
//! (`404 test_only_disabled` otherwise): workflow completion without a worker, and the fault
//! switches the crash-recovery harness drives (a partition in the Raft transport and gossip,
//! a leader clock offset).
//!
//! The fault switches act on the node that receives them: they never answer "not leader", so
//! they are never forwarded.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::backend::Backend;
use super::cluster::json_body;
use super::error::{ApiError, ErrorCode};
use super::extract;
use super::jobs::job_id;
use super::types::{TestClockRequest, TestCompleteWorkflowRequest, TestPartitionRequest};
use super::{respond, ApiState};

fn disabled() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::TestOnlyDisabled,
        "test-only routes are disabled (start the node with test_mode = true)",
    )
    .into_response()
}

/// `POST /v1/test-only/jobs/{id}/workflows/{name}/complete`: marks a workflow finished, so the
/// job lifecycle can be exercised before workers exist. `404 test_only_disabled` unless the
/// node runs with `test_mode`.
pub async fn complete_workflow_for_test<B: Backend>(
    State(state): State<ApiState<B>>,
    Path((id, workflow)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.backend.test_mode() {
        return disabled();
    }
    let parsed = job_id(&id).and_then(|id| {
        extract::require_json_content_type(&headers)?;
        let request = if body.iter().all(u8::is_ascii_whitespace) {
            TestCompleteWorkflowRequest { success: true }
        } else {
            extract::parse_json::<TestCompleteWorkflowRequest>(&body)?
        };
        Ok((id, request))
    });
    let (id, request) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    let result = state
        .backend
        .complete_workflow_for_test(id, workflow, request.success)
        .await;
    respond::json(StatusCode::OK, result)
}

/// `POST /v1/test-only/partition`, body `{"blocked_peers": [ids]}`: from now on this node drops
/// Raft requests and gossip datagrams to and from those members (empty heals). Set it on
/// both sides of a cut for a symmetric partition.
pub async fn partition<B: Backend>(
    State(state): State<ApiState<B>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.backend.test_mode() {
        return disabled();
    }
    let request = match json_body::<TestPartitionRequest>(&headers, &body) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    respond::json(
        StatusCode::OK,
        state.backend.set_partition(request.blocked_peers),
    )
}

/// `POST /v1/test-only/clock`, body `{"offset_ms": n}`: shifts this node's leader clock (the
/// stamps it puts on proposals while it leads) by `n` ms from the wall clock.
pub async fn clock<B: Backend>(
    State(state): State<ApiState<B>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.backend.test_mode() {
        return disabled();
    }
    let request = match json_body::<TestClockRequest>(&headers, &body) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    respond::json(
        StatusCode::OK,
        state.backend.set_clock_offset(request.offset_ms),
    )
}
