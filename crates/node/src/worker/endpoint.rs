//! The worker's own HTTP endpoint: `GET /v1/agent/logs?job=ID[&workflow=NAME]` answers the
//! output tails of the attempts this worker ran or runs (a [`LogsResponse`]). Managers proxy
//! `GET /v1/jobs/{id}/logs` to it.
//!
//! It deliberately serves nothing else: instructions come only from the managers' answers.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::agent::Shared;
use super::protocol::LogsResponse;

/// Query of `GET /v1/agent/logs`.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    /// The job.
    pub job: u64,
    /// One workflow, by name.
    pub workflow: Option<String>,
}

/// Serves the endpoint on `listener` until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let app = Router::new()
        .route("/v1/agent/logs", get(logs))
        .with_state(shared);
    if let Err(err) = axum::serve(listener, app).await {
        tracing::warn!(%err, "worker endpoint stopped");
    }
}

async fn logs(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return (StatusCode::BAD_REQUEST, "expected ?job=ID[&workflow=NAME]").into_response();
    };
    let logs = shared.logs(query.job, query.workflow.as_deref());
    Json(LogsResponse { logs }).into_response()
}
