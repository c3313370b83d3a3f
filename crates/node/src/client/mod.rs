//! An HTTP client for the steward API (reqwest), used by the CLI, tests and benchmarks.
//!
//! It is given every manager's base URL, sticks to the last one that answered, moves on when
//! one is unreachable, and retries `503` (no leader yet) with backoff within a bounded window
//! (and `502`/`504` from a follower whose leader just died, when resending is safe).
//! Following the leader is the servers' job (followers forward writes), so the client never
//! needs to know who leads. It deliberately retries a submit after a transport failure only
//! when the submit carries an idempotency key (otherwise a retry could create a second job).

mod error;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// URL type of the client's base URLs (re-exported from reqwest).
pub use reqwest::Url;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::types::{
    AddMemberRequest, CancelJobRequest, CancelJobResponse, ClusterStatusView, JobEventsResponse,
    JobListResponse, JobStatus, JobView, SubmitJobRequest, SubmitJobResponse, TestClockRequest,
    TestCompleteWorkflowRequest, TestPartitionRequest, TestPartitionResponse,
    TransferLeaderRequest, TransferLeaderResponse, WaitJobResponse, IDEMPOTENCY_KEY_HEADER,
    NAMESPACE_HEADER,
};
use crate::api::ErrorBody;
use crate::worker::protocol::WorkerListResponse;
pub use error::{ClientError, ClientResult};

/// Default per-request deadline. Default: 30 s.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// How long the client keeps retrying unreachable servers and `503`s. Default: 15 s.
pub const RETRY_WINDOW_DEFAULT: Duration = Duration::from_secs(15);
/// First backoff between retries; doubles up to [`RETRY_BACKOFF_MAX`]. Default: 50 ms.
pub const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest backoff between retries. Default: 200 ms: short against an election (0.5–1 s by
/// default), so a doubling backoff cannot overshoot the new leader by much.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(200);

/// Filter for [`Client::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs carrying all these `(key, value)` labels.
    pub labels: Vec<(String, String)>,
    /// Page size (server default when `None`).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Local read on whichever node answers.
    pub stale: bool,
}

/// The steward HTTP client. Cheap to clone? No: share it by reference or `Arc`.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base_urls: Vec<Url>,
    preferred: AtomicUsize,
    namespace: Option<String>,
    request_timeout: Duration,
    retry_window: Duration,
}

struct Call<'a> {
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    idempotency_key: Option<&'a str>,
    /// Safe to resend after a transport error that may have reached the server.
    resend_safe: bool,
    timeout: Duration,
}

impl Client {
    /// A client for the given managers' base URLs (`http://127.0.0.1:7701`).
    pub fn new(base_urls: Vec<Url>) -> ClientResult<Self> {
        if base_urls.is_empty() {
            return Err(ClientError::InvalidUrl("no server URL given".to_owned()));
        }
        if let Some(bad) = base_urls.iter().find(|url| url.scheme() != "http") {
            return Err(ClientError::InvalidUrl(format!(
                "`{bad}`: only http:// is supported"
            )));
        }
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|err| ClientError::InvalidUrl(format!("building the HTTP client: {err}")))?;
        Ok(Self {
            http,
            base_urls,
            preferred: AtomicUsize::new(0),
            namespace: None,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            retry_window: RETRY_WINDOW_DEFAULT,
        })
    }

    /// Parses comma-separated base URLs (`http://a:1,http://b:2`); a bare `host:port` gets
    /// `http://`.
    pub fn parse_urls(text: &str) -> ClientResult<Vec<Url>> {
        text.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                let full = if part.contains("://") {
                    part.to_owned()
                } else {
                    format!("http://{part}")
                };
                Url::parse(&full).map_err(|err| ClientError::InvalidUrl(format!("`{part}`: {err}")))
            })
            .collect()
    }

    /// Scopes idempotency keys to `namespace` (sent as `X-Steward-Namespace`).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Sets the per-request deadline.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets how long unreachable servers and `503`s are retried.
    pub fn with_retry_window(mut self, window: Duration) -> Self {
        self.retry_window = window;
        self
    }

    /// The base URLs this client uses.
    pub fn base_urls(&self) -> &[Url] {
        &self.base_urls
    }

    /// `POST /v1/jobs`.
    pub async fn submit(
        &self,
        request: &SubmitJobRequest,
        idempotency_key: Option<&str>,
    ) -> ClientResult<SubmitJobResponse> {
        let mut call = self.call(
            Method::POST,
            "/v1/jobs".to_owned(),
            Some(json_bytes(request)),
        );
        call.idempotency_key = idempotency_key;
        call.resend_safe = idempotency_key.is_some();
        self.run(call).await
    }

    /// `GET /v1/jobs/{id}`.
    pub async fn job(&self, job_id: u64, stale: bool) -> ClientResult<JobView> {
        let path = format!("/v1/jobs/{job_id}{}", consistency(stale, '?'));
        self.run(self.call(Method::GET, path, None)).await
    }

    /// `GET /v1/jobs`.
    pub async fn list(&self, query: &ListQuery) -> ClientResult<JobListResponse> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(status) = query.status {
            pairs.push(("status".into(), status.as_str().into()));
        }
        for (key, value) in &query.labels {
            pairs.push(("label".into(), format!("{key}={value}")));
        }
        if let Some(limit) = query.limit {
            pairs.push(("limit".into(), limit.to_string()));
        }
        if let Some(cursor) = &query.cursor {
            pairs.push(("cursor".into(), cursor.clone()));
        }
        if query.stale {
            pairs.push(("consistency".into(), "stale".into()));
        }
        let mut url = Url::parse("http://x/v1/jobs")
            .map_err(|err| ClientError::InvalidUrl(err.to_string()))?;
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        let path = match url.query() {
            Some(query) => format!("/v1/jobs?{query}"),
            None => "/v1/jobs".to_owned(),
        };
        self.run(self.call(Method::GET, path, None)).await
    }

    /// `POST /v1/jobs/{id}/cancel` (idempotent on the server, so always safe to resend).
    pub async fn cancel(
        &self,
        job_id: u64,
        request: &CancelJobRequest,
    ) -> ClientResult<CancelJobResponse> {
        let path = format!("/v1/jobs/{job_id}/cancel");
        let mut call = self.call(Method::POST, path, Some(json_bytes(request)));
        call.resend_safe = true;
        self.run(call).await
    }

    /// `GET /v1/jobs/{id}/events`.
    pub async fn events(&self, job_id: u64, stale: bool) -> ClientResult<JobEventsResponse> {
        let path = format!("/v1/jobs/{job_id}/events{}", consistency(stale, '?'));
        self.run(self.call(Method::GET, path, None)).await
    }

    /// `GET /v1/jobs/{id}/wait?timeout=` (one long-poll; see `terminal` in the answer).
    pub async fn wait(&self, job_id: u64, timeout: Duration) -> ClientResult<WaitJobResponse> {
        let path = format!(
            "/v1/jobs/{job_id}/wait?timeout={}ms",
            timeout.as_millis().max(1)
        );
        let mut call = self.call(Method::GET, path, None);
        call.timeout = timeout + self.request_timeout;
        self.run(call).await
    }

    /// `GET /v1/cluster/status` from whichever node answers.
    pub async fn cluster_status(&self) -> ClientResult<ClusterStatusView> {
        self.run(self.call(Method::GET, "/v1/cluster/status".to_owned(), None))
            .await
    }

    /// `GET /v1/cluster/status` from one specific node, without retries.
    pub async fn cluster_status_at(&self, base: &Url) -> ClientResult<ClusterStatusView> {
        self.status_at(base, "/v1/cluster/status").await
    }

    /// `GET /v1/cluster/status?state_hash=true` from one specific node, without retries: the
    /// status plus the applied state's hash (`state_hash` is set).
    pub async fn cluster_status_with_hash_at(&self, base: &Url) -> ClientResult<ClusterStatusView> {
        self.status_at(base, "/v1/cluster/status?state_hash=true")
            .await
    }

    async fn status_at(&self, base: &Url, path: &str) -> ClientResult<ClusterStatusView> {
        let url = join(base, path)?;
        let response = self
            .http
            .get(url.clone())
            .timeout(self.request_timeout.min(Duration::from_secs(5)))
            .send()
            .await
            .map_err(|err| ClientError::Unreachable {
                tried: base.to_string(),
                last: err.to_string(),
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|err| ClientError::Unreachable {
                tried: base.to_string(),
                last: err.to_string(),
            })?;
        decode(url.as_str(), status, &body)
    }

    /// `GET /v1/cluster/members` (gossip view, RTTs from the answering node).
    pub async fn cluster_members(&self) -> ClientResult<crate::gossip::MembersResponse> {
        self.run(self.call(Method::GET, "/v1/cluster/members".to_owned(), None))
            .await
    }

    /// `GET /v1/cluster/coordinates` (every Vivaldi coordinate the answering node knows).
    pub async fn cluster_coordinates(&self) -> ClientResult<crate::gossip::CoordinatesResponse> {
        self.run(self.call(Method::GET, "/v1/cluster/coordinates".to_owned(), None))
            .await
    }

    /// `POST /v1/cluster/transfer-leader`.
    pub async fn transfer_leader(&self, to: u64) -> ClientResult<TransferLeaderResponse> {
        let body = json_bytes(&TransferLeaderRequest { to });
        let path = "/v1/cluster/transfer-leader".to_owned();
        self.run(self.call(Method::POST, path, Some(body))).await
    }

    /// `POST /v1/cluster/members`.
    pub async fn add_member(&self, request: &AddMemberRequest) -> ClientResult<ClusterStatusView> {
        let body = json_bytes(request);
        let path = "/v1/cluster/members".to_owned();
        self.run(self.call(Method::POST, path, Some(body))).await
    }

    /// `DELETE /v1/cluster/members/{id}`.
    pub async fn remove_member(&self, node_id: u64) -> ClientResult<ClusterStatusView> {
        let path = format!("/v1/cluster/members/{node_id}");
        self.run(self.call(Method::DELETE, path, None)).await
    }

    /// `GET /v1/workers[?stale=true]`: the workers the cluster knows.
    pub async fn workers(&self, stale: bool) -> ClientResult<WorkerListResponse> {
        let path = format!("/v1/workers{}", if stale { "?stale=true" } else { "" });
        self.run(self.call(Method::GET, path, None)).await
    }

    /// `GET /metrics` (Prometheus text) from whichever node answers.
    pub async fn metrics(&self) -> ClientResult<String> {
        let call = self.call(Method::GET, "/metrics".to_owned(), None);
        let (_, body) = self.send(call).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Test-only route: marks a workflow finished (the node must run with `test_mode`).
    pub async fn complete_workflow_for_test(
        &self,
        job_id: u64,
        workflow: &str,
        success: bool,
    ) -> ClientResult<JobView> {
        let path = format!("/v1/test-only/jobs/{job_id}/workflows/{workflow}/complete");
        let body = json_bytes(&TestCompleteWorkflowRequest { success });
        self.run(self.call(Method::POST, path, Some(body))).await
    }

    /// Test-only route: partitions the answering node from `blocked` members (empty heals).
    /// Not forwarded: use a client for one node.
    pub async fn set_partition_for_test(
        &self,
        blocked: &[u64],
    ) -> ClientResult<TestPartitionResponse> {
        let body = json_bytes(&TestPartitionRequest {
            blocked_peers: blocked.to_vec(),
        });
        let path = "/v1/test-only/partition".to_owned();
        self.run(self.call(Method::POST, path, Some(body))).await
    }

    /// Test-only route: shifts the answering node's leader clock by `offset_ms`. Not
    /// forwarded: use a client for one node.
    pub async fn set_clock_offset_for_test(
        &self,
        offset_ms: i64,
    ) -> ClientResult<TestClockRequest> {
        let body = json_bytes(&TestClockRequest { offset_ms });
        let path = "/v1/test-only/clock".to_owned();
        self.run(self.call(Method::POST, path, Some(body))).await
    }

    fn call(&self, method: Method, path: String, body: Option<Vec<u8>>) -> Call<'static> {
        let resend_safe = method == Method::GET || method == Method::DELETE;
        Call {
            method,
            path,
            body,
            idempotency_key: None,
            resend_safe,
            timeout: self.request_timeout,
        }
    }

    async fn run<T: DeserializeOwned>(&self, call: Call<'_>) -> ClientResult<T> {
        let (url, status, body) = self.send_inner(call).await?;
        decode(&url, status, &body)
    }

    async fn send(&self, call: Call<'_>) -> ClientResult<(StatusCode, bytes::Bytes)> {
        let (url, status, body) = self.send_inner(call).await?;
        if status.is_success() {
            Ok((status, body))
        } else {
            Err(api_error(&url, status, &body))
        }
    }

    /// Sends `call`, rotating through base URLs on transport errors and retrying `503`s with
    /// exponential backoff until the retry window closes.
    async fn send_inner(&self, call: Call<'_>) -> ClientResult<(String, StatusCode, bytes::Bytes)> {
        let started = Instant::now();
        let mut backoff = RETRY_BACKOFF_MIN;
        let mut index = self.preferred.load(Ordering::Relaxed) % self.base_urls.len();
        let mut failures_in_row = 0usize;
        loop {
            let base = &self.base_urls[index];
            let url = join(base, &call.path)?;
            let mut request = self
                .http
                .request(call.method.clone(), url.clone())
                .timeout(call.timeout);
            if let Some(body) = &call.body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            if let Some(key) = call.idempotency_key {
                request = request.header(IDEMPOTENCY_KEY_HEADER, key);
            }
            if let Some(namespace) = &self.namespace {
                request = request.header(NAMESPACE_HEADER, namespace);
            }
            let retry_reason = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.bytes().await.unwrap_or_default();
                    // 503 means nothing changed (no leader yet): always safe to resend. 502 and
                    // 504 (forwarding to a leader that just died) may have been applied, so
                    // they are resent only when resending is safe (idempotency key, GET).
                    let retryable = status == StatusCode::SERVICE_UNAVAILABLE
                        || (call.resend_safe
                            && (status == StatusCode::BAD_GATEWAY
                                || status == StatusCode::GATEWAY_TIMEOUT));
                    if !retryable || started.elapsed() >= self.retry_window {
                        if !retryable {
                            self.preferred.store(index, Ordering::Relaxed);
                        }
                        return Ok((url.to_string(), status, body));
                    }
                    if status != StatusCode::SERVICE_UNAVAILABLE {
                        // The node answering is fine; the leader behind it is not. Try another.
                        index = (index + 1) % self.base_urls.len();
                    }
                    failures_in_row = 0;
                    format!("HTTP {status} from {url}")
                }
                Err(err) => {
                    let maybe_delivered = !err.is_connect();
                    if maybe_delivered && !call.resend_safe {
                        return Err(ClientError::Unreachable {
                            tried: base.to_string(),
                            last: format!("{err} (not retried: the request may have been applied)"),
                        });
                    }
                    failures_in_row += 1;
                    index = (index + 1) % self.base_urls.len();
                    let reason = format!("{url}: {err}");
                    if started.elapsed() >= self.retry_window {
                        return Err(ClientError::Unreachable {
                            tried: self.tried(),
                            last: reason,
                        });
                    }
                    if failures_in_row < self.base_urls.len() {
                        // Try the next server at once; back off only after a full round.
                        continue;
                    }
                    failures_in_row = 0;
                    reason
                }
            };
            tracing::debug!(%retry_reason, backoff_ms = backoff.as_millis() as u64, "retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }

    fn tried(&self) -> String {
        let urls: Vec<String> = self.base_urls.iter().map(Url::to_string).collect();
        urls.join(", ")
    }
}

fn consistency(stale: bool, separator: char) -> String {
    if stale {
        format!("{separator}consistency=stale")
    } else {
        String::new()
    }
}

fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own wire types (strings, numbers, maps with string keys) cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn join(base: &Url, path: &str) -> ClientResult<Url> {
    base.join(path)
        .map_err(|err| ClientError::InvalidUrl(format!("`{base}` + `{path}`: {err}")))
}

fn decode<T: DeserializeOwned>(url: &str, status: StatusCode, body: &[u8]) -> ClientResult<T> {
    if !status.is_success() {
        return Err(api_error(url, status, body));
    }
    serde_json::from_slice(body).map_err(|err| ClientError::Decode {
        url: url.to_owned(),
        status: status.as_u16(),
        message: err.to_string(),
    })
}

fn api_error(url: &str, status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => ClientError::Api {
            url: url.to_owned(),
            status: status.as_u16(),
            detail: parsed.error,
        },
        Err(_) => ClientError::Decode {
            url: url.to_owned(),
            status: status.as_u16(),
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        },
    }
}
