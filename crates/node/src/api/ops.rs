//! Operational routes: `/healthz` (the process answers), `/readyz` (a leader is known and this
//! node has applied everything it knows committed), `/metrics` (Prometheus text).
//!
//! They deliberately never forward and never touch Raft beyond reading local status.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::backend::Backend;
use super::metrics::PromText;
use super::types::{ClusterStatusView, ReadyView};
use super::ApiState;

/// `GET /healthz`: 200 while the process serves HTTP.
pub async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: 200 when ready, 503 with the reason otherwise.
pub async fn readyz<B: Backend>(State(state): State<ApiState<B>>) -> Response {
    let status = state.backend.cluster_status();
    let reason = not_ready_reason(&status);
    let code = if reason.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let view = ReadyView {
        ready: reason.is_none(),
        reason,
        status,
    };
    (code, Json(view)).into_response()
}

/// Why a node is not ready, or `None` when it is.
pub fn not_ready_reason(status: &ClusterStatusView) -> Option<String> {
    if status.leader_id.is_none() {
        return Some("no leader is known".to_owned());
    }
    let commit = status.commit_index.unwrap_or(0);
    let applied = status.applied_index.unwrap_or(0);
    if applied < commit {
        return Some(format!(
            "applied index {applied} is behind commit index {commit}"
        ));
    }
    None
}

/// `GET /metrics`.
pub async fn metrics<B: Backend>(State(state): State<ApiState<B>>) -> Response {
    let mut out = PromText::default();
    state.backend.render_metrics(&mut out);
    state.metrics.render(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.finish(),
    )
        .into_response()
}
