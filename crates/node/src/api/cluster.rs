//! The `/v1/cluster` routes (status, leadership transfer, membership) and the test-only
//! workflow completion route.
//!
//! Handlers deliberately do not check leadership: the backend answers "not leader" and the
//! `forward` layer sends the request to the leader.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::backend::Backend;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract;
use super::jobs::job_id;
use super::types::{AddMemberRequest, TestCompleteWorkflowRequest, TransferLeaderRequest};
use super::{respond, ApiState};

/// `GET /v1/cluster/status`: this node's view, never forwarded.
pub async fn status<B: Backend>(State(state): State<ApiState<B>>) -> Response {
    Json(state.backend.cluster_status()).into_response()
}

/// `GET /v1/cluster/members`: this node's gossip view (never forwarded: RTTs are from it).
pub async fn members<B: Backend>(State(state): State<ApiState<B>>) -> Response {
    match state.backend.gossip() {
        Some(snapshot) => {
            Json(crate::gossip::MembersResponse::from(snapshot.as_ref())).into_response()
        }
        None => gossip_disabled(),
    }
}

/// `GET /v1/cluster/coordinates`: every Vivaldi coordinate this node knows.
pub async fn coordinates<B: Backend>(State(state): State<ApiState<B>>) -> Response {
    match state.backend.gossip() {
        Some(snapshot) => {
            Json(crate::gossip::CoordinatesResponse::from(snapshot.as_ref())).into_response()
        }
        None => gossip_disabled(),
    }
}

fn gossip_disabled() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "gossip is disabled on this node (gossip.enabled = false)",
    )
    .into_response()
}

/// `POST /v1/cluster/transfer-leader`.
pub async fn transfer_leader<B: Backend>(
    State(state): State<ApiState<B>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match json_body::<TransferLeaderRequest>(&headers, &body) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    respond::json(
        StatusCode::OK,
        state.backend.transfer_leader(request.to).await,
    )
}

/// `POST /v1/cluster/members`.
pub async fn add_member<B: Backend>(
    State(state): State<ApiState<B>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match json_body::<AddMemberRequest>(&headers, &body) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    respond::json(StatusCode::OK, state.backend.add_member(request).await)
}

/// `DELETE /v1/cluster/members/{id}`.
pub async fn remove_member<B: Backend>(
    State(state): State<ApiState<B>>,
    Path(id): Path<String>,
) -> Response {
    let Ok(node_id) = id.parse::<u64>() else {
        return ApiError::invalid_field("id", format!("node id must be an integer, got `{id}`"))
            .into_response();
    };
    respond::json(StatusCode::OK, state.backend.remove_member(node_id).await)
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
        return ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::TestOnlyDisabled,
            "test-only routes are disabled (start the node with test_mode = true)",
        )
        .into_response();
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

fn json_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
    extract::require_json_content_type(headers)?;
    extract::parse_json(body)
}
