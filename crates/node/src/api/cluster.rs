//! The `/v1/cluster` routes: status, gossip views, leadership transfer, membership.
//!
//! Handlers deliberately do not check leadership: the backend answers "not leader" and the
//! `forward` layer sends the request to the leader.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::backend::Backend;
use super::error::{ApiError, ApiResult, ErrorCode};
use super::extract::{self, QueryParams};
use super::types::{AddMemberRequest, TransferLeaderRequest};
use super::{respond, ApiState};

/// `GET /v1/cluster/status[?state_hash=true]`: this node's view, never forwarded; with
/// `state_hash=true` also the applied state's hash and the index it was taken at.
pub async fn status<B: Backend>(
    State(state): State<ApiState<B>>,
    RawQuery(query): RawQuery,
) -> Response {
    let with_hash = QueryParams::parse(query.as_deref(), &["state_hash"]).and_then(|params| {
        match params.one("state_hash")? {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::invalid_field(
                "state_hash",
                format!("state_hash must be `true` or `false`, got `{other}`"),
            )),
        }
    });
    let with_hash = match with_hash {
        Ok(with_hash) => with_hash,
        Err(err) => return err.into_response(),
    };
    let mut view = state.backend.cluster_status();
    if with_hash {
        // One pass over the whole state under its read lock: on a blocking thread, never on a
        // runtime worker (ADR 0019). A failed task leaves the hash out.
        let backend = state.backend.clone();
        view.state_hash = tokio::task::spawn_blocking(move || backend.state_hash())
            .await
            .ok()
            .flatten();
    }
    Json(view).into_response()
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

pub(super) fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<T> {
    extract::require_json_content_type(headers)?;
    extract::parse_json(body)
}
