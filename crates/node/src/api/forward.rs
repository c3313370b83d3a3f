//! Middleware: the body limit, follower → leader forwarding, route tagging and request metrics.
//!
//! Forwarding: when a handler answers "not leader" and names the leader's address, the
//! original request (method, path and query, headers, body) is sent once to the leader and
//! its answer returned unchanged. A request already forwarded (it carries
//! `X-Steward-Forwarded-By`) is never forwarded again, so a stale leader hint costs one `503`,
//! never a loop. No known leader → `503 no_leader` with `Retry-After`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::backend::Backend;
use super::error::{ApiError, ErrorCode};
use super::extract::read_body;
use super::respond::LeaderHint;
use super::types::{FORWARDED_BY_HEADER, SERVED_BY_HEADER};
use super::ApiState;

/// Response extension naming the matched route template, for metrics.
#[derive(Debug, Clone)]
struct RouteTag(String);

/// Innermost (route) layer: records which route template matched.
pub async fn tag_route(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let route = matched.map(|m| m.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteTag(route));
    }
    response
}

/// Outermost layer: counts and times every request, tags the response with the node id.
pub async fn track<B: Backend>(
    State(state): State<ApiState<B>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let mut response = next.run(request).await;
    let elapsed = started.elapsed();
    let route = response
        .extensions()
        .get::<RouteTag>()
        .map_or("unmatched", |tag| tag.0.as_str())
        .to_owned();
    let status = response.status().as_u16();
    state.metrics.record(&route, &method, status, elapsed);
    tracing::debug!(%method, %route, status, elapsed_us = elapsed.as_micros() as u64, "api request");
    // A forwarded answer keeps the leader's id: it names the node that did the work.
    response
        .headers_mut()
        .entry(HeaderName::from_static(SERVED_BY_HEADER))
        .or_insert(HeaderValue::from(state.backend.node_id()));
    response
}

/// Buffers the body (enforcing the limit), runs the handler, forwards on "not leader".
pub async fn forward_to_leader<B: Backend>(
    State(state): State<ApiState<B>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match read_body(&parts.headers, body).await {
        Ok(bytes) => bytes,
        Err(err) => return err.into_response(),
    };
    let method = parts.method.clone();
    let uri = parts.uri.clone();
    let headers = parts.headers.clone();
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    let Some(hint) = response.extensions().get::<LeaderHint>().copied() else {
        return response;
    };
    if headers.contains_key(FORWARDED_BY_HEADER) {
        return response;
    }
    let Some(leader_api_addr) = hint.leader_api_addr else {
        return ApiError::no_leader()
            .with_leader(hint.leader_id)
            .into_response();
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://{leader_api_addr}{path}");
    let mut outgoing = state
        .forwarder
        .request(method, &url)
        .timeout(state.options.forward_timeout());
    for (name, value) in headers.iter() {
        if !is_hop_by_hop(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    outgoing = outgoing
        .header(FORWARDED_BY_HEADER, state.backend.node_id())
        .body(bytes);
    match outgoing.send().await {
        Ok(answer) => relay(answer).await,
        Err(err) => {
            let (status, code) = if err.is_timeout() {
                (StatusCode::GATEWAY_TIMEOUT, ErrorCode::Timeout)
            } else {
                (StatusCode::BAD_GATEWAY, ErrorCode::ForwardFailed)
            };
            ApiError::new(
                status,
                code,
                format!("forwarding to leader at {leader_api_addr} failed: {err}"),
            )
            .with_leader(hint.leader_id)
            .into_response()
        }
    }
}

async fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let mut headers = answer.headers().clone();
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONNECTION);
    match answer.bytes().await {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response.headers_mut().extend(headers);
            response
        }
        Err(err) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::ForwardFailed,
            format!("reading the leader's answer failed: {err}"),
        )
        .into_response(),
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::HOST
        || name == header::CONTENT_LENGTH
        || name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::TE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}
