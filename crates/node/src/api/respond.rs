//! Turning backend results into HTTP responses, including the "not leader" marker that the
//! forwarding layer acts on.
//!
//! It deliberately does not forward anything itself; see `forward`.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::backend::{BackendError, BackendResult};
use super::error::{ApiError, ErrorCode};

/// Response extension set when a handler met "not leader"; the forwarding layer replaces the
/// response with the leader's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's id, if known.
    pub leader_id: Option<u64>,
    /// The leader's HTTP address, if known.
    pub leader_api_addr: Option<SocketAddr>,
}

/// The response for a failed backend call.
pub fn error(err: BackendError) -> Response {
    match err {
        BackendError::Api(err) => err.into_response(),
        BackendError::NotLeader {
            leader_id,
            leader_api_addr,
        } => {
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::NotLeader,
                "this node is not the leader; retry against the leader",
            )
            .with_leader(leader_id)
            .into_response();
            response.extensions_mut().insert(LeaderHint {
                leader_id,
                leader_api_addr,
            });
            response
        }
    }
}

/// `status` with a JSON body, or the error response.
pub fn json<T: Serialize>(status: StatusCode, result: BackendResult<T>) -> Response {
    match result {
        Ok(value) => (status, Json(value)).into_response(),
        Err(err) => error(err),
    }
}
