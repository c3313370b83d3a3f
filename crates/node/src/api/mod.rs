//! The HTTP/JSON API served by every manager (axum).
//!
//! Layout: `types` (wire types, shared with the client), `error` (the one error shape),
//! `extract` and `validate` (parsing bad input into named-field errors), `backend` (what the
//! routes need from a manager, implemented by `Node` in `node_backend`), `jobs`, `cluster`,
//! `test_only`, `ops` (routes), `forward` (body limit, follower → leader forwarding, metrics), `metrics`
//! (Prometheus text).
//!
//! It deliberately does not talk to Raft directly: everything goes through [`Backend`].

mod backend;
mod cluster;
pub mod convert;
mod error;
mod extract;
mod forward;
mod jobs;
mod metrics;
mod node_backend;
mod ops;
mod respond;
mod test_only;
pub mod types;
mod validate;
mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::serve::ListenerExt as _;
use axum::Router;
use serde::{Deserialize, Serialize};

pub use backend::{Backend, BackendError, BackendResult, ListFilter, SubmitContext};
pub use error::{ApiError, ApiResult, ErrorBody, ErrorCode, ErrorDetail, RETRY_AFTER_SECONDS};
pub use extract::{parse_duration, BODY_BYTES_MAX};
pub use jobs::{LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, WAIT_DEFAULT};
pub use metrics::{PromText, RequestMetrics};
pub use node_backend::{node_error, render_node_metrics, TEST_WORKER_ID};
pub use ops::not_ready_reason;
pub use validate::{CORES_MAX, NAME_BYTES_MAX, TIMEOUT_MS_MAX, WORKFLOWS_PER_JOB_MAX};

/// HTTP-layer settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiOptions {
    /// Deadline for a request forwarded to the leader, in ms. Default: 30 000. Minimum: 100.
    pub forward_timeout_ms: u64,
    /// Longest `wait` long-poll; longer `timeout=` values are clamped. Default: 300 000 ms.
    /// Minimum: 1 000.
    pub wait_max_ms: u64,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            forward_timeout_ms: 30_000,
            wait_max_ms: 300_000,
        }
    }
}

impl ApiOptions {
    fn forward_timeout(&self) -> Duration {
        Duration::from_millis(self.forward_timeout_ms.max(100))
    }

    fn wait_max(&self) -> Duration {
        Duration::from_millis(self.wait_max_ms.max(1_000))
    }
}

/// Shared state of every handler.
#[derive(Debug)]
pub struct ApiState<B> {
    backend: B,
    options: Arc<ApiOptions>,
    metrics: Arc<RequestMetrics>,
    forwarder: reqwest::Client,
}

impl<B: Clone> Clone for ApiState<B> {
    fn clone(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            options: self.options.clone(),
            metrics: self.metrics.clone(),
            forwarder: self.forwarder.clone(),
        }
    }
}

/// Builds the router for `backend` (useful to serve it on a listener of your own).
pub fn router<B: Backend>(backend: B, options: ApiOptions) -> Router {
    let state = ApiState {
        backend,
        options: Arc::new(options),
        metrics: Arc::new(RequestMetrics::default()),
        // Building a client only fails when the TLS backend cannot initialise; we build
        // without TLS, so fall back to the default (which cannot fail the same way).
        forwarder: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default(),
    };
    Router::new()
        .route("/v1/jobs", post(jobs::submit::<B>).get(jobs::list::<B>))
        .route("/v1/jobs/{id}", get(jobs::get::<B>))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel::<B>))
        .route("/v1/jobs/{id}/events", get(jobs::events::<B>))
        .route("/v1/jobs/{id}/wait", get(jobs::wait::<B>))
        .route("/v1/jobs/{id}/logs", get(workers::logs::<B>))
        .route("/v1/workers", get(workers::list::<B>))
        .route("/v1/workers/register", post(workers::register::<B>))
        .route("/v1/workers/{id}/poll", post(workers::poll::<B>))
        .route("/v1/workers/{id}/reports", post(workers::report::<B>))
        .route("/v1/workers/{id}/extensions", post(workers::extension::<B>))
        .route("/v1/cluster/status", get(cluster::status::<B>))
        .route(
            "/v1/cluster/transfer-leader",
            post(cluster::transfer_leader::<B>),
        )
        .route(
            "/v1/cluster/members",
            post(cluster::add_member::<B>).get(cluster::members::<B>),
        )
        .route("/v1/cluster/coordinates", get(cluster::coordinates::<B>))
        .route(
            "/v1/cluster/members/{id}",
            delete(cluster::remove_member::<B>),
        )
        .route(
            "/v1/test-only/jobs/{id}/workflows/{name}/complete",
            post(test_only::complete_workflow_for_test::<B>),
        )
        .route("/v1/test-only/partition", post(test_only::partition::<B>))
        .route("/v1/test-only/clock", post(test_only::clock::<B>))
        .route("/metrics", get(ops::metrics::<B>))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz::<B>))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn(forward::tag_route))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::forward_to_leader::<B>,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::track::<B>,
        ))
        .with_state(state)
}

async fn route_not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::RouteNotFound,
        "no such route",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
    .into_response()
}

/// Binds `addr` and serves the API for `backend` until `shutdown` resolves.
pub async fn serve_with<B: Backend>(
    backend: B,
    addr: SocketAddr,
    options: ApiOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_listener(backend, listener, options, shutdown).await
}

/// Serves the API on an already bound listener (tests bind port 0 first).
pub async fn serve_listener<B: Backend>(
    backend: B,
    listener: tokio::net::TcpListener,
    options: ApiOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(backend, options);
    // Small JSON answers must not wait for Nagle's algorithm (a 40 ms stall against delayed
    // ACKs on keep-alive connections).
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%err, "set_nodelay on an API connection failed");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` and serves the API for `backend` with default options until `shutdown`.
pub async fn serve<B: Backend>(
    backend: B,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(backend, addr, ApiOptions::default(), shutdown).await
}
