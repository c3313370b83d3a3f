//! The `/v1/jobs` routes: submit, get, list, cancel, events, wait.
//!
//! Handlers parse and validate, call the backend, and render; they deliberately know nothing
//! of leadership (a "not leader" answer is forwarded by the `forward` layer).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::backend::{Backend, ListFilter, SubmitContext};
use super::error::{ApiError, ApiResult};
use super::extract::{self, QueryParams};
use super::types::{
    CancelJobRequest, JobStatus, SubmitJobRequest, DEFAULT_NAMESPACE, IDEMPOTENCY_KEY_HEADER,
    NAMESPACE_HEADER,
};
use super::{convert, respond, validate, ApiState};

/// Page size of `GET /v1/jobs` when `limit` is absent. Default: 100.
pub const LIST_LIMIT_DEFAULT: usize = 100;
/// Largest accepted `limit`. Default: 1000.
pub const LIST_LIMIT_MAX: usize = 1000;
/// `wait` timeout when `timeout` is absent. Default: 30 s.
pub const WAIT_DEFAULT: Duration = Duration::from_secs(30);

/// `POST /v1/jobs`.
pub async fn submit<B: Backend>(
    State(state): State<ApiState<B>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (context, request) = match parse_submit(&headers, &body) {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    match state.backend.submit(context, request).await {
        Ok(response) if response.duplicate => (StatusCode::OK, Json(response)).into_response(),
        Ok(response) => (StatusCode::CREATED, Json(response)).into_response(),
        Err(err) => respond::error(err),
    }
}

fn parse_submit(headers: &HeaderMap, body: &[u8]) -> ApiResult<(SubmitContext, SubmitJobRequest)> {
    extract::require_json_content_type(headers)?;
    let namespace = header_text(headers, NAMESPACE_HEADER, validate::NAMESPACE_BYTES_MAX)?;
    let idempotency_key = header_text(headers, IDEMPOTENCY_KEY_HEADER, validate::KEY_BYTES_MAX)?;
    let request: SubmitJobRequest = extract::parse_json(body)?;
    validate::submit(&request)?;
    // The state machine's own checks too (same limits), so a follower refuses bad input
    // without a round trip to the leader.
    convert::job_spec(request.clone())
        .validate()
        .map_err(|reason| convert::rejection(&reason))?;
    let context = SubmitContext {
        namespace: namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        idempotency_key,
    };
    Ok((context, request))
}

fn header_text(headers: &HeaderMap, name: &str, bytes_max: usize) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::invalid_field(name, "header must be visible ASCII"))?;
    validate::header_token(name, text, bytes_max)?;
    Ok(Some(text.to_owned()))
}

/// Parses the `{id}` path segment.
pub fn job_id(text: &str) -> ApiResult<u64> {
    text.parse().map_err(|_| {
        ApiError::invalid_field(
            "id",
            format!("job id must be a positive integer, got `{text}`"),
        )
    })
}

/// The job id from the path and the `consistency` query parameter (`stale` or absent) of a
/// read of one job.
fn job_read(id: &str, query: Option<&str>) -> ApiResult<(u64, bool)> {
    let id = job_id(id)?;
    let stale = QueryParams::parse(query, &["consistency"])?.stale()?;
    Ok((id, stale))
}

/// `GET /v1/jobs/{id}`.
pub async fn get<B: Backend>(
    State(state): State<ApiState<B>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (id, stale) = match job_read(&id, query.as_deref()) {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    let result = state
        .backend
        .job(id, stale)
        .await
        .and_then(|job| job.ok_or_else(|| ApiError::job_not_found(id).into()));
    respond::json(StatusCode::OK, result)
}

/// `GET /v1/jobs`.
pub async fn list<B: Backend>(
    State(state): State<ApiState<B>>,
    RawQuery(query): RawQuery,
) -> Response {
    let filter = match list_filter(query.as_deref()) {
        Ok(filter) => filter,
        Err(err) => return err.into_response(),
    };
    respond::json(StatusCode::OK, state.backend.list(filter).await)
}

fn list_filter(query: Option<&str>) -> ApiResult<ListFilter> {
    let params = QueryParams::parse(
        query,
        &["status", "label", "limit", "cursor", "consistency"],
    )?;
    let status = match params.one("status")? {
        None => None,
        Some(name) => Some(JobStatus::parse(name).ok_or_else(|| {
            let names: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid_field(
                "status",
                format!("unknown status `{name}`; expected one of {names:?}"),
            )
        })?),
    };
    let mut labels = Vec::new();
    for label in params.all("label") {
        let (key, value) = label.split_once('=').ok_or_else(|| {
            ApiError::invalid_field(
                "label",
                format!("label filter must be `key=value`, got `{label}`"),
            )
        })?;
        labels.push((key.to_owned(), value.to_owned()));
    }
    let limit = match params.one("limit")? {
        None => LIST_LIMIT_DEFAULT,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=LIST_LIMIT_MAX).contains(&limit) => limit,
            _ => {
                return Err(ApiError::invalid_field(
                    "limit",
                    format!("limit must be between 1 and {LIST_LIMIT_MAX}, got `{text}`"),
                ))
            }
        },
    };
    let after_id = match params.one("cursor")? {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            ApiError::invalid_field("cursor", "cursor must be a value returned as `next_cursor`")
        })?),
    };
    Ok(ListFilter {
        status,
        labels,
        limit,
        after_id,
        stale: params.stale()?,
    })
}

/// `POST /v1/jobs/{id}/cancel`.
pub async fn cancel<B: Backend>(
    State(state): State<ApiState<B>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = job_id(&id).and_then(|id| {
        extract::require_json_content_type(&headers)?;
        Ok((id, extract::parse_optional_json::<CancelJobRequest>(&body)?))
    });
    let (id, request) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    respond::json(StatusCode::OK, state.backend.cancel(id, request).await)
}

/// `GET /v1/jobs/{id}/events`.
pub async fn events<B: Backend>(
    State(state): State<ApiState<B>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (id, stale) = match job_read(&id, query.as_deref()) {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    let result = state
        .backend
        .events(id, stale)
        .await
        .and_then(|events| events.ok_or_else(|| ApiError::job_not_found(id).into()));
    respond::json(StatusCode::OK, result)
}

/// `GET /v1/jobs/{id}/wait?timeout=`.
pub async fn wait<B: Backend>(
    State(state): State<ApiState<B>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let parsed = job_id(&id).and_then(|id| {
        let params = QueryParams::parse(query.as_deref(), &["timeout"])?;
        let timeout = match params.one("timeout")? {
            None => WAIT_DEFAULT,
            Some(text) => extract::parse_duration("timeout", text)?,
        };
        Ok((id, timeout.min(state.options.wait_max())))
    });
    let (id, timeout) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return err.into_response(),
    };
    let result = state
        .backend
        .wait(id, timeout)
        .await
        .and_then(|waited| waited.ok_or_else(|| ApiError::job_not_found(id).into()));
    respond::json(StatusCode::OK, result)
}
