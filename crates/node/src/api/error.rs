//! The API's one error shape, `{ "error": { "code", "message", "field"? } }`, and the mapping
//! from every failure the API can meet (bad input, backend errors) onto an HTTP status.
//!
//! It deliberately does not decide *whether* something is an error: validation lives in
//! `validate`, domain decisions in the state machine; this module only names and renders them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Seconds a client should wait before retrying a `503` (sent as `Retry-After`).
/// Default: 1. An election usually settles within a few heartbeats, well under a second.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// Machine-readable error codes. Stable: clients branch on these, never on `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not syntactically valid JSON (or not valid UTF-8).
    InvalidJson,
    /// The body has a field the endpoint does not know; `field` names it.
    UnknownField,
    /// A required field is absent; `field` names it.
    MissingField,
    /// A field or query parameter has a wrong type or an out-of-range value; `field` names it.
    InvalidField,
    /// The body exceeds the API's body limit (1 MiB).
    BodyTooLarge,
    /// The `Content-Type` is present and is not `application/json`.
    UnsupportedMediaType,
    /// The job (or member) does not exist.
    NotFound,
    /// The route does not exist.
    RouteNotFound,
    /// The method is not allowed on this route.
    MethodNotAllowed,
    /// The `Idempotency-Key` was used before with a different body; `job_id` names the job.
    IdempotencyConflict,
    /// A cancel carried a fence token that does not match the job's.
    FenceMismatch,
    /// The state machine refused the command for a domain reason (e.g. an invalid transition).
    Rejected,
    /// This node is not the leader and could not forward (already forwarded once).
    NotLeader,
    /// No leader is known right now; retry after `Retry-After` seconds.
    NoLeader,
    /// Forwarding to the leader failed (unreachable, timed out).
    ForwardFailed,
    /// The operation did not finish in time; it may or may not have been applied.
    Timeout,
    /// The node is shutting down.
    ShuttingDown,
    /// A bounded resource is full (e.g. live idempotency keys); retry later.
    CapacityExceeded,
    /// A test-only route was called on a node without `test_mode`.
    TestOnlyDisabled,
    /// An unexpected server-side failure (storage, Raft); the message says where.
    Internal,
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// The `error` object: code, human-readable message, and where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation; not stable.
    pub message: String,
    /// The offending field or query parameter as a path (`workflows[0].cores`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The job the error is about (the original job on an idempotency conflict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    /// The leader's node id, when known (on `not_leader`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<u64>,
}

/// An error on its way to becoming an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status to answer with.
    pub status: StatusCode,
    /// The body's `error` object.
    pub detail: ErrorDetail,
}

impl ApiError {
    /// An error with a status, a code and a message, about no particular field.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        let detail = ErrorDetail {
            code,
            message: message.into(),
            field: None,
            job_id: None,
            leader_id: None,
        };
        Self { status, detail }
    }

    /// `400 invalid_field` about `field`.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidField, message).with_field(field)
    }

    /// `404 not_found` for a job id.
    pub fn job_not_found(job_id: u64) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("job {job_id} does not exist"),
        )
        .with_job(job_id)
    }

    /// `503 no_leader`: nobody to forward to yet.
    pub fn no_leader() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NoLeader,
            "no leader is known right now (election in progress?); retry shortly",
        )
    }

    /// `500 internal` carrying the failure's description.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            message,
        )
    }

    /// Names the offending field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.detail.field = Some(field.into());
        self
    }

    /// Names the job the error is about.
    pub fn with_job(mut self, job_id: u64) -> Self {
        self.detail.job_id = Some(job_id);
        self
    }

    /// Names the leader.
    pub fn with_leader(mut self, leader_id: Option<u64>) -> Self {
        self.detail.leader_id = leader_id;
        self
    }

    /// The machine-readable code.
    pub fn code(&self) -> ErrorCode {
        self.detail.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.detail.message, self.detail.code)?;
        if let Some(field) = &self.detail.field {
            write!(f, " at `{field}`")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let body = ErrorBody { error: self.detail };
        let mut response = (self.status, axum::Json(body)).into_response();
        if retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_omits_absent_optionals() {
        let err = ApiError::invalid_field("workflows[0].cores", "cores must be at least 1");
        let json = serde_json::to_value(ErrorBody { error: err.detail }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "invalid_field",
                "message": "cores must be at least 1", "field": "workflows[0].cores"}})
        );
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let response = ApiError::no_leader().into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
