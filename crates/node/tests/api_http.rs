//! The HTTP layer against an in-memory fake backend: every bad-input case answers the documented
//! status, code and field; followers forward writes to the leader (one hop, headers kept);
//! metrics count requests; the client fails over past a dead server.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use steward_node::api::types::*;
use steward_node::api::{
    ApiError, ApiOptions, Backend, BackendError, BackendResult, ListFilter, PromText, SubmitContext,
};
use steward_node::client::{Client, Url};

/// A backend that either serves jobs from memory (leader) or answers "not leader" (follower).
#[derive(Clone, Default)]
struct Fake {
    id: u64,
    test_mode: bool,
    leader: Option<(u64, Option<SocketAddr>)>,
    jobs: Arc<Mutex<BTreeMap<u64, JobView>>>,
    keys: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl Fake {
    fn check_leader(&self) -> BackendResult<()> {
        match self.leader {
            None => Ok(()),
            Some((leader_id, leader_api_addr)) => Err(BackendError::NotLeader {
                leader_id: Some(leader_id),
                leader_api_addr,
            }),
        }
    }
}

fn view(id: u64, request: &SubmitJobRequest) -> JobView {
    JobView {
        id,
        name: request.name.clone().unwrap_or_else(|| "job".into()),
        status: JobStatus::Pending,
        cancelling: false,
        fence_token: 1,
        idempotency_key: None,
        namespace: None,
        labels: request.labels.clone(),
        workflows: request
            .workflows
            .iter()
            .map(|w| WorkflowView {
                name: w.name.clone(),
                command: w.command.clone(),
                cores: w.cores.unwrap_or(1) as u32,
                status: "pending".into(),
                attempt: 0,
                worker: None,
                last_error: None,
                exit_code: None,
                started_at_ms: None,
                finished_at_ms: None,
            })
            .collect(),
        timeout_ms: request.timeout_ms.unwrap_or(3_600_000) as u64,
        total_extensions_granted_ms: 0,
        submitted_at_ms: 1,
        finished_at_ms: None,
        reason: None,
        retries_used: 0,
    }
}

impl Backend for Fake {
    fn node_id(&self) -> u64 {
        self.id
    }

    fn test_mode(&self) -> bool {
        self.test_mode
    }

    async fn submit(
        &self,
        context: SubmitContext,
        request: SubmitJobRequest,
    ) -> BackendResult<SubmitJobResponse> {
        self.check_leader()?;
        let mut jobs = self.jobs.lock().unwrap();
        let mut keys = self.keys.lock().unwrap();
        if let Some(key) = context.idempotency_key {
            if let Some(id) = keys.get(&(context.namespace.clone(), key.clone())) {
                return Ok(SubmitJobResponse {
                    job: jobs[id].clone(),
                    duplicate: true,
                });
            }
            keys.insert((context.namespace, key), jobs.len() as u64 + 1);
        }
        let id = jobs.len() as u64 + 1;
        jobs.insert(id, view(id, &request));
        Ok(SubmitJobResponse {
            job: jobs[&id].clone(),
            duplicate: false,
        })
    }

    async fn job(&self, job_id: u64, stale: bool) -> BackendResult<Option<JobView>> {
        if !stale {
            self.check_leader()?;
        }
        Ok(self.jobs.lock().unwrap().get(&job_id).cloned())
    }

    async fn list(&self, filter: ListFilter) -> BackendResult<JobListResponse> {
        let jobs = self.jobs.lock().unwrap();
        let page: Vec<JobView> = jobs
            .values()
            .filter(|job| filter.after_id.is_none_or(|after| job.id > after))
            .take(filter.limit)
            .cloned()
            .collect();
        let next_cursor = (page.len() == filter.limit).then(|| page[page.len() - 1].id.to_string());
        Ok(JobListResponse {
            jobs: page,
            next_cursor,
        })
    }

    async fn cancel(&self, job_id: u64, _: CancelJobRequest) -> BackendResult<CancelJobResponse> {
        self.check_leader()?;
        let mut jobs = self.jobs.lock().unwrap();
        let job = jobs
            .get_mut(&job_id)
            .ok_or_else(|| ApiError::job_not_found(job_id))?;
        job.status = JobStatus::Cancelled;
        Ok(CancelJobResponse {
            outcome: CancelOutcome::Cancelled,
            already_cancelled: false,
            job: job.clone(),
        })
    }

    async fn events(&self, _: u64, _: bool) -> BackendResult<Option<JobEventsResponse>> {
        Ok(None)
    }

    async fn wait(&self, job_id: u64, _: Duration) -> BackendResult<Option<WaitJobResponse>> {
        let job = self.jobs.lock().unwrap().get(&job_id).cloned();
        Ok(job.map(|job| WaitJobResponse {
            terminal: job.status.is_terminal(),
            job,
        }))
    }

    fn cluster_status(&self) -> ClusterStatusView {
        ClusterStatusView {
            node_id: self.id,
            leader_id: Some(self.leader.map_or(self.id, |(id, _)| id)),
            term: 1,
            commit_index: Some(3),
            applied_index: Some(3),
            members: vec![],
            state_hash: None,
        }
    }

    async fn transfer_leader(&self, _: u64) -> BackendResult<TransferLeaderResponse> {
        self.check_leader()?;
        Err(ApiError::internal("not supported by the fake").into())
    }

    async fn add_member(&self, _: AddMemberRequest) -> BackendResult<ClusterStatusView> {
        Err(ApiError::internal("not supported by the fake").into())
    }

    async fn remove_member(&self, _: u64) -> BackendResult<ClusterStatusView> {
        Err(ApiError::internal("not supported by the fake").into())
    }

    fn render_metrics(&self, out: &mut PromText) {
        out.gauge("steward_raft_term", "Current term.", 1.0);
    }

    async fn complete_workflow_for_test(
        &self,
        _: u64,
        _: String,
        _: bool,
    ) -> BackendResult<JobView> {
        Err(ApiError::internal("not supported by the fake").into())
    }
}

/// Serves `backend` on a free loopback port; returns its base URL.
async fn spawn(backend: Fake, options: ApiOptions) -> (String, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(steward_node::api::serve_listener(
        backend,
        listener,
        options,
        std::future::pending(),
    ));
    (format!("http://{addr}"), addr)
}

async fn send(
    http: &reqwest::Client,
    method: &str,
    url: String,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = http.request(method.parse().unwrap(), url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value, headers)
}

fn job_body(workflow: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "workflows": [workflow] })).unwrap()
}

#[tokio::test]
async fn bad_input_is_refused_with_status_code_and_field() {
    let (base, _) = spawn(
        Fake {
            id: 1,
            ..Default::default()
        },
        ApiOptions::default(),
    )
    .await;
    let http = reqwest::Client::new();
    let ok_workflow = json!({"name": "a", "command": ["true"]});
    let huge = vec![b' '; 1024 * 1024 + 1];
    let json_ct = [("content-type", "application/json")];
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        Option<Vec<u8>>,
        u16,
        &'a str,
        Option<&'a str>,
    );
    let body = |value: Value| Some(serde_json::to_vec(&value).unwrap());
    let one = |workflow: Value| body(json!({ "workflows": [workflow] }));
    let raw = |text: &str| Some(text.as_bytes().to_vec());
    let none: &[(&str, &str)] = &[];
    // One row per bad input: method, path, headers, body, expected status, code and field.
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("POST", "/v1/jobs", &json_ct, raw("{"), 400, "invalid_json", None),
        ("POST", "/v1/jobs", &json_ct, raw(""), 400, "invalid_json", None),
        ("POST", "/v1/jobs", &json_ct, raw("{}"), 400, "missing_field", Some("workflows")),
        ("POST", "/v1/jobs", &json_ct, body(json!({"workflows": [ok_workflow], "priority": 1})),
            400, "unknown_field", Some("priority")),
        ("POST", "/v1/jobs", &json_ct, one(json!({"name": "a", "command": ["true"], "cpu": 1})),
            400, "unknown_field", Some("workflows[0].cpu")),
        ("POST", "/v1/jobs", &json_ct, body(json!({"workflows": []})),
            400, "invalid_field", Some("workflows")),
        ("POST", "/v1/jobs", &json_ct, one(json!({"name": "a", "command": []})),
            400, "invalid_field", Some("workflows[0].command")),
        ("POST", "/v1/jobs", &json_ct, one(json!({"name": "a", "command": [""]})),
            400, "invalid_field", Some("workflows[0].command[0]")),
        ("POST", "/v1/jobs", &json_ct, one(json!({"name": "a", "command": ["x"], "cores": 0})),
            400, "invalid_field", Some("workflows[0].cores")),
        ("POST", "/v1/jobs", &json_ct, one(json!({"name": "a", "command": ["x"], "cores": -2})),
            400, "invalid_field", Some("workflows[0].cores")),
        ("POST", "/v1/jobs", &json_ct, one(json!({"name": "a", "command": ["x"], "cores": "many"})),
            400, "invalid_field", Some("workflows[0].cores")),
        ("POST", "/v1/jobs", &json_ct, one(json!({"name": "a", "command": ["x"], "timeout_ms": 0})),
            400, "invalid_field", Some("workflows[0].timeout_ms")),
        ("POST", "/v1/jobs", &json_ct, body(json!({"workflows": [ok_workflow], "timeout_ms": -5})),
            400, "invalid_field", Some("timeout_ms")),
        ("POST", "/v1/jobs", &json_ct, Some(huge), 413, "body_too_large", None),
        ("POST", "/v1/jobs", &[("content-type", "text/plain")], one(ok_workflow.clone()),
            415, "unsupported_media_type", None),
        ("POST", "/v1/jobs", &[("idempotency-key", "")], one(ok_workflow.clone()),
            400, "invalid_field", Some("idempotency-key")),
        ("GET", "/v1/jobs/abc", none, None, 400, "invalid_field", Some("id")),
        ("GET", "/v1/jobs/999", none, None, 404, "not_found", None),
        ("GET", "/v1/jobs/999/events", none, None, 404, "not_found", None),
        ("POST", "/v1/jobs/999/cancel", none, None, 404, "not_found", None),
        ("POST", "/v1/jobs/1/cancel", none, raw("{\"fence\": 1}"), 400, "unknown_field", Some("fence")),
        ("GET", "/v1/jobs?status=sleeping", none, None, 400, "invalid_field", Some("status")),
        ("GET", "/v1/jobs?limit=0", none, None, 400, "invalid_field", Some("limit")),
        ("GET", "/v1/jobs?limit=many", none, None, 400, "invalid_field", Some("limit")),
        ("GET", "/v1/jobs?cursor=x", none, None, 400, "invalid_field", Some("cursor")),
        ("GET", "/v1/jobs?label=novalue", none, None, 400, "invalid_field", Some("label")),
        ("GET", "/v1/jobs?colour=red", none, None, 400, "unknown_field", Some("colour")),
        ("GET", "/v1/jobs/1?consistency=eventual", none, None, 400, "invalid_field", Some("consistency")),
        ("GET", "/v1/jobs/1/wait?timeout=0", none, None, 400, "invalid_field", Some("timeout")),
        ("GET", "/v1/jobs/1/wait?timeout=-3s", none, None, 400, "invalid_field", Some("timeout")),
        ("GET", "/v1/jobs/1/wait?timeout=soon", none, None, 400, "invalid_field", Some("timeout")),
        ("POST", "/v1/cluster/transfer-leader", none, raw("{}"), 400, "missing_field", Some("to")),
        ("POST", "/v1/cluster/members", none,
            raw("{\"id\":4,\"raft_addr\":\"nowhere\",\"api_addr\":\"127.0.0.1:1\"}"),
            400, "invalid_field", Some("raft_addr")),
        ("DELETE", "/v1/cluster/members/x", none, None, 400, "invalid_field", Some("id")),
        ("POST", "/v1/test-only/jobs/1/workflows/a/complete", none, None, 404, "test_only_disabled", None),
        ("POST", "/v1/test-only/partition", none, raw("{\"blocked_peers\":[2]}"), 404, "test_only_disabled", None),
        ("POST", "/v1/test-only/clock", none, raw("{\"offset_ms\":5}"), 404, "test_only_disabled", None),
        ("GET", "/v1/cluster/status?state_hash=maybe", none, None, 400, "invalid_field", Some("state_hash")),
        ("GET", "/v1/nothing-here", none, None, 404, "route_not_found", None),
        ("DELETE", "/v1/jobs", none, None, 405, "method_not_allowed", None),
    ];
    for (method, path, headers, body, status, code, field) in cases {
        let (got_status, got, _) =
            send(&http, method, format!("{base}{path}"), headers, body).await;
        let case = format!("{method} {path}: {got}");
        assert_eq!(got_status, status, "{case}");
        assert_eq!(got["error"]["code"], code, "{case}");
        assert!(
            got["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{case}"
        );
        match field {
            Some(field) => assert_eq!(got["error"]["field"], field, "{case}"),
            None => assert!(got["error"].get("field").is_none(), "{case}"),
        }
    }
    // Nothing above reached the backend's state.
    let (_, page, _) = send(&http, "GET", format!("{base}/v1/jobs"), &[], None).await;
    assert_eq!(page["jobs"], json!([]));
}

#[tokio::test]
async fn follower_forwards_writes_to_the_leader_keeping_headers() {
    let leader = Fake {
        id: 1,
        ..Default::default()
    };
    let (_, leader_addr) = spawn(leader.clone(), ApiOptions::default()).await;
    let follower = Fake {
        id: 2,
        leader: Some((1, Some(leader_addr))),
        ..Default::default()
    };
    let (follower_url, _) = spawn(follower, ApiOptions::default()).await;
    let http = reqwest::Client::new();
    let body = job_body(json!({"name": "a", "command": ["true"]}));
    let headers = [("idempotency-key", "k1"), ("x-steward-namespace", "ci")];
    let (status, first, served) = send(
        &http,
        "POST",
        format!("{follower_url}/v1/jobs"),
        &headers,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        served["x-steward-node"], "1",
        "the leader produced the answer"
    );
    let (status, again, _) = send(
        &http,
        "POST",
        format!("{follower_url}/v1/jobs"),
        &headers,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["job"]["id"], first["job"]["id"]);
    // The namespace header travelled: another namespace is another key scope.
    let other = [("idempotency-key", "k1"), ("x-steward-namespace", "other")];
    let (status, _, _) = send(
        &http,
        "POST",
        format!("{follower_url}/v1/jobs"),
        &other,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(leader.jobs.lock().unwrap().len(), 2);
    // Linearizable reads are forwarded too; stale reads are answered locally (empty fake).
    let id = first["job"]["id"].as_u64().unwrap();
    let (status, _, served) = send(
        &http,
        "GET",
        format!("{follower_url}/v1/jobs/{id}"),
        &[],
        None,
    )
    .await;
    assert_eq!(
        (status, served["x-steward-node"].to_str().unwrap()),
        (200, "1")
    );
    let stale = format!("{follower_url}/v1/jobs/{id}?consistency=stale");
    let (status, _, served) = send(&http, "GET", stale, &[], None).await;
    assert_eq!(
        (status, served["x-steward-node"].to_str().unwrap()),
        (404, "2")
    );
}

#[tokio::test]
async fn no_known_leader_is_503_with_retry_after_and_never_loops() {
    let orphan = Fake {
        id: 2,
        leader: Some((9, None)),
        ..Default::default()
    };
    let (url, _) = spawn(orphan, ApiOptions::default()).await;
    let http = reqwest::Client::new();
    let body = job_body(json!({"name": "a", "command": ["true"]}));
    let (status, error, headers) = send(
        &http,
        "POST",
        format!("{url}/v1/jobs"),
        &[],
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (503, Some("no_leader"))
    );
    assert_eq!(headers["retry-after"], "1");
    // Two followers each naming the other as leader: one hop, then 503 not_leader.
    let a_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a_addr = a_listener.local_addr().unwrap();
    let b = Fake {
        id: 3,
        leader: Some((4, Some(a_addr))),
        ..Default::default()
    };
    let (b_url, b_addr) = spawn(b, ApiOptions::default()).await;
    let a = Fake {
        id: 4,
        leader: Some((3, Some(b_addr))),
        ..Default::default()
    };
    tokio::spawn(steward_node::api::serve_listener(
        a,
        a_listener,
        ApiOptions::default(),
        std::future::pending(),
    ));
    let (status, error, _) = send(&http, "POST", format!("{b_url}/v1/jobs"), &[], Some(body)).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (503, Some("not_leader"))
    );
}

#[tokio::test]
async fn client_round_trip_fails_over_and_metrics_count_requests() {
    let (base, _) = spawn(
        Fake {
            id: 1,
            ..Default::default()
        },
        ApiOptions::default(),
    )
    .await;
    // The first URL refuses connections (nothing listens there).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let urls = vec![
        Url::parse(&format!("http://{dead}")).unwrap(),
        Url::parse(&base).unwrap(),
    ];
    let client = Client::new(urls)
        .unwrap()
        .with_retry_window(Duration::from_secs(5));
    let request = SubmitJobRequest {
        name: Some("hello".into()),
        labels: BTreeMap::new(),
        workflows: vec![WorkflowSpec {
            name: "main".into(),
            command: vec!["echo".into(), "hi".into()],
            env: BTreeMap::new(),
            cores: Some(2),
            timeout_ms: None,
            working_dir: None,
        }],
        timeout_ms: Some(60_000),
        retry_budget: None,
        cancel_grace_ms: None,
    };
    let submitted = client.submit(&request, Some("key")).await.unwrap();
    assert!(!submitted.duplicate);
    let fetched = client.job(submitted.job.id, false).await.unwrap();
    assert_eq!(fetched, submitted.job);
    assert_eq!(fetched.workflows[0].cores, 2);
    let err = client.job(12345, false).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    let cancelled = client
        .cancel(fetched.id, &CancelJobRequest::default())
        .await
        .unwrap();
    assert_eq!(cancelled.job.status, JobStatus::Cancelled);
    let metrics = client.metrics().await.unwrap();
    assert!(metrics.contains("steward_raft_term 1"), "{metrics}");
    assert!(
        metrics.contains(
            r#"steward_api_requests_total{route="/v1/jobs",method="POST",status="201"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/v1/jobs/{id}",method="GET",status="404"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn test_only_route_is_reachable_only_in_test_mode() {
    let (base, _) = spawn(
        Fake {
            id: 1,
            test_mode: true,
            ..Default::default()
        },
        ApiOptions::default(),
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("{base}/v1/test-only/jobs/1/workflows/a/complete");
    let (status, body, _) = send(
        &http,
        "POST",
        url.clone(),
        &[],
        Some(b"{\"success\":false}".to_vec()),
    )
    .await;
    // The fake refuses the operation itself; what matters is that the route was reached.
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("internal"))
    );
    let (status, body, _) = send(&http, "POST", url, &[], Some(b"{\"ok\":1}".to_vec())).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("ok")));
}
