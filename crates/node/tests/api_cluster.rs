//! The HTTP API on a real in-process 3-node cluster (durable WAL, loopback TCP): submit, get,
//! list, cancel, events and wait round trips through followers; idempotency under concurrent
//! submits to two different nodes (through the forwarding path); the test-only lifecycle route;
//! errors from the state machine mapped to status codes and fields.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use steward_node::api::types::*;
use steward_node::api::{ApiOptions, ErrorCode};
use steward_node::client::{Client, ListQuery, Url};
use steward_node::{Node, NodeConfig, PeerConfig};
use tokio::sync::oneshot;

struct Cluster {
    nodes: Vec<Node>,
    urls: Vec<Url>,
    stops: Vec<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn start_cluster(size: u64) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let peers: Vec<PeerConfig> = (1..=size)
        .map(|id| PeerConfig {
            id,
            raft_addr: free_addr(),
            api_addr: free_addr(),
        })
        .collect();
    let mut cluster = Cluster {
        nodes: vec![],
        urls: vec![],
        stops: vec![],
        _dir: dir,
    };
    for peer in &peers {
        let config = NodeConfig {
            id: peer.id,
            data_dir: cluster._dir.path().join(format!("node-{}", peer.id)),
            raft_addr: peer.raft_addr,
            api_addr: peer.api_addr,
            initial_members: peers.clone(),
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            test_mode: true,
            ..NodeConfig::default()
        };
        let node = Node::start(config).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = steward_node::api::serve_with(
            node.clone(),
            peer.api_addr,
            ApiOptions::default(),
            async move {
                // A dropped sender also stops the server.
                let _stopped = stopped.await;
            },
        );
        tokio::spawn(server);
        cluster.nodes.push(node);
        cluster
            .urls
            .push(Url::parse(&format!("http://{}", peer.api_addr)).unwrap());
        cluster.stops.push(stop);
    }
    cluster
}

impl Cluster {
    /// Waits until every node knows the same leader; returns its index in `nodes`.
    async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let leaders: Vec<Option<u64>> = self
                .nodes
                .iter()
                .map(|n| n.cluster_status().leader_id)
                .collect();
            if let Some(Some(id)) = leaders.first() {
                if leaders.iter().all(|l| *l == Some(*id)) {
                    return self.nodes.iter().position(|n| n.id() == *id).unwrap();
                }
            }
            assert!(Instant::now() < deadline, "no leader: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn client(&self, index: usize) -> Client {
        Client::new(vec![self.urls[index].clone()]).unwrap()
    }

    async fn stop(self) {
        for stop in self.stops {
            let _sent = stop.send(());
        }
        for node in &self.nodes {
            node.shutdown().await.unwrap();
        }
    }
}

fn one_workflow(command: &[&str]) -> SubmitJobRequest {
    SubmitJobRequest {
        name: None,
        labels: BTreeMap::from([("suite".to_owned(), "api".to_owned())]),
        workflows: vec![WorkflowSpec {
            name: "main".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            cores: Some(1),
            timeout_ms: None,
            working_dir: None,
        }],
        timeout_ms: Some(600_000),
        retry_budget: None,
        cancel_grace_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_round_trip_idempotency_and_errors_on_a_three_node_cluster() {
    let cluster = start_cluster(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let other_follower = (leader + 2) % 3;
    let via_follower = cluster.client(follower);

    // Submit through a follower: forwarded to the leader, answered with the job.
    let submitted = via_follower
        .submit(&one_workflow(&["echo", "hi"]), None)
        .await
        .unwrap();
    assert!(!submitted.duplicate);
    let job = submitted.job;
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(
        job.name, "echo",
        "an unnamed job is named after its program"
    );
    assert_eq!(job.workflows[0].command, vec!["echo", "hi"]);

    // Reads: linearizable through the follower, stale on each node once applied.
    assert_eq!(via_follower.job(job.id, false).await.unwrap(), job);
    let page = via_follower
        .list(&ListQuery {
            labels: vec![("suite".into(), "api".into())],
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![job.id]
    );
    let pending = ListQuery {
        status: Some(JobStatus::Pending),
        ..ListQuery::default()
    };
    assert_eq!(via_follower.list(&pending).await.unwrap().jobs.len(), 1);
    let none = ListQuery {
        status: Some(JobStatus::Completed),
        ..ListQuery::default()
    };
    assert!(via_follower.list(&none).await.unwrap().jobs.is_empty());

    // Cancel: accepted, then idempotent; wait sees the terminal status on another follower.
    let cancelled = via_follower
        .cancel(job.id, &CancelJobRequest::default())
        .await
        .unwrap();
    assert_eq!(cancelled.outcome, CancelOutcome::Cancelled);
    assert_eq!(cancelled.job.status, JobStatus::Cancelled);
    let again = via_follower
        .cancel(job.id, &CancelJobRequest::default())
        .await
        .unwrap();
    assert!(again.already_cancelled);
    let waited = cluster
        .client(other_follower)
        .wait(job.id, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(waited.terminal);
    assert_eq!(waited.job.status, JobStatus::Cancelled);
    let events = via_follower.events(job.id, false).await.unwrap();
    let kinds: Vec<&str> = events.events.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"submitted") && kinds.contains(&"cancel_requested"),
        "{kinds:?}"
    );

    // The state machine's refusals keep their status code and field.
    let err = via_follower.job(999_999, false).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some(ErrorCode::NotFound))
    );
    let err = via_follower
        .cancel(999_999, &CancelJobRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    let live = via_follower
        .submit(&one_workflow(&["sleep", "1"]), None)
        .await
        .unwrap()
        .job;
    let stale_fence = CancelJobRequest {
        fence_token: Some(live.fence_token + 7),
    };
    let err = via_follower
        .cancel(live.id, &stale_fence)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some(ErrorCode::FenceMismatch))
    );
    let mut bad = one_workflow(&["x"]);
    bad.workflows[0].env.insert(String::new(), "v".into());
    let err = via_follower.submit(&bad, None).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");

    // Cancelling a completed job answers already_terminal and never overwrites it.
    let done = via_follower
        .complete_workflow_for_test(live.id, "main", true)
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    let late = via_follower
        .cancel(live.id, &CancelJobRequest::default())
        .await
        .unwrap();
    assert_eq!(late.outcome, CancelOutcome::AlreadyTerminal);
    assert_eq!(late.job.status, JobStatus::Completed);

    // The same key sent concurrently to two different nodes yields one job.
    for round in 0..5 {
        let key = format!("concurrent-{round}");
        let request = one_workflow(&["echo", &key]);
        let (a, b) = (cluster.client(follower), cluster.client(other_follower));
        let (first, second) = tokio::join!(
            a.submit(&request, Some(&key)),
            b.submit(&request, Some(&key))
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.job.id, second.job.id, "round {round}");
        assert!(
            first.duplicate != second.duplicate,
            "round {round}: exactly one created it"
        );
        // Same key, another body: 409 naming the original job.
        let err = cluster
            .client(leader)
            .submit(&one_workflow(&["other"]), Some(&key))
            .await;
        let err = err.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::IdempotencyConflict));
        match err {
            steward_node::client::ClientError::Api { detail, .. } => {
                assert_eq!(detail.job_id, Some(first.job.id))
            }
            other => panic!("unexpected {other}"),
        }
    }
    // Every node converges on the same jobs.
    let all = ListQuery {
        limit: Some(1000),
        ..ListQuery::default()
    };
    let on_leader = cluster.client(leader).list(&all).await.unwrap().jobs;
    assert_eq!(on_leader.len(), 2 + 5);
    for index in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stale = ListQuery {
                stale: true,
                ..all.clone()
            };
            let jobs = cluster.client(index).list(&stale).await.unwrap().jobs;
            let ids: Vec<u64> = jobs.iter().map(|j| j.id).collect();
            if ids == on_leader.iter().map(|j| j.id).collect::<Vec<_>>() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {index} did not converge: {ids:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_wait_metrics_and_readiness() {
    let cluster = start_cluster(3).await;
    let leader = cluster.leader().await;
    let client = Client::new(cluster.urls.clone()).unwrap();
    let mut request = one_workflow(&["build"]);
    request.workflows.push(WorkflowSpec {
        name: "test".into(),
        command: vec!["test".into()],
        env: BTreeMap::new(),
        cores: None,
        timeout_ms: None,
        working_dir: None,
    });
    // No retries: the failed attempt below is final.
    request.retry_budget = Some(0);
    let job = client
        .submit(&request, Some("lifecycle"))
        .await
        .unwrap()
        .job;
    // A wait that times out says so; it never errors.
    let early = client
        .wait(job.id, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(!early.terminal);
    let waiter = {
        let urls = vec![cluster.urls[(leader + 1) % 3].clone()];
        tokio::spawn(async move {
            Client::new(urls)
                .unwrap()
                .wait(job.id, Duration::from_secs(20))
                .await
        })
    };
    client
        .complete_workflow_for_test(job.id, "main", true)
        .await
        .unwrap();
    let failed = client
        .complete_workflow_for_test(job.id, "test", false)
        .await
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("test"),
        "{failed:?}"
    );
    let waited = waiter.await.unwrap().unwrap();
    assert!(waited.terminal);
    assert_eq!(waited.job.status, JobStatus::Failed);
    let history = client.events(job.id, false).await.unwrap();
    let kinds: Vec<&str> = history.events.iter().map(|e| e.kind.as_str()).collect();
    assert!(
        kinds.contains(&"workflow_failed") && kinds.contains(&"finished"),
        "{kinds:?}"
    );

    // Metrics from a real node: Raft, WAL sync histogram, jobs by status, API requests.
    let metrics = cluster.client(leader).metrics().await.unwrap();
    for needle in [
        "steward_raft_term ",
        "steward_raft_is_leader 1",
        "steward_wal_sync_duration_seconds_count ",
        "steward_jobs{status=\"failed\"} 1",
        "steward_api_requests_total{route=\"/v1/jobs\",method=\"POST\",status=\"201\"}",
    ] {
        assert!(metrics.contains(needle), "missing {needle}:\n{metrics}");
    }
    let http = reqwest::Client::new();
    for url in &cluster.urls {
        let ready = http.get(url.join("/readyz").unwrap()).send().await.unwrap();
        assert_eq!(ready.status().as_u16(), 200);
    }
    // A cluster status from every node names the same leader and all three members.
    for index in 0..3 {
        let status = cluster.client(index).cluster_status().await.unwrap();
        assert_eq!(status.leader_id, Some(cluster.nodes[leader].id()));
        assert_eq!(status.members.len(), 3);
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_and_leadership_through_the_api() {
    let mut cluster = start_cluster(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let client = Client::new(vec![cluster.urls[follower].clone()]).unwrap();

    // Transfer leadership through a follower (forwarded to the leader).
    let target = cluster.nodes[follower].id();
    let moved = client.transfer_leader(target).await.unwrap();
    assert_eq!((moved.from, moved.to), (cluster.nodes[leader].id(), target));
    let new_leader = cluster.leader().await;
    assert_eq!(cluster.nodes[new_leader].id(), target);

    // Join a fourth node, started empty (no initial members), then remove it.
    let peer = PeerConfig {
        id: 4,
        raft_addr: free_addr(),
        api_addr: free_addr(),
    };
    let config = NodeConfig {
        id: 4,
        data_dir: cluster._dir.path().join("node-4"),
        raft_addr: peer.raft_addr,
        api_addr: peer.api_addr,
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        ..NodeConfig::default()
    };
    let fourth = Node::start(config).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(steward_node::api::serve_with(
        fourth.clone(),
        peer.api_addr,
        ApiOptions::default(),
        async move {
            let _stopped = stopped.await;
        },
    ));
    cluster.nodes.push(fourth);
    cluster
        .urls
        .push(Url::parse(&format!("http://{}", peer.api_addr)).unwrap());
    cluster.stops.push(stop);
    let request = AddMemberRequest {
        id: 4,
        raft_addr: peer.raft_addr,
        api_addr: peer.api_addr,
    };
    let status = client.add_member(&request).await.unwrap();
    assert!(
        status.members.iter().any(|m| m.id == 4 && m.voter),
        "{status:?}"
    );
    // The new member serves reads of its own once it has caught up.
    let job = client
        .submit(&one_workflow(&["after-join"]), None)
        .await
        .unwrap()
        .job;
    let on_fourth = cluster.client(3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while on_fourth.job(job.id, true).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "node 4 never applied job {}",
            job.id
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = client.remove_member(4).await.unwrap();
    assert!(status.members.iter().all(|m| m.id != 4), "{status:?}");
    // Removing an unknown member is refused, not a 500.
    let err = client.remove_member(77).await.unwrap_err();
    assert!(matches!(err.status(), Some(400..=499)), "{err}");
    cluster.stop().await;
}

/// Waits until the nodes at `among` agree on a leader other than `not`; returns its id.
async fn new_leader(cluster: &Cluster, among: &[usize], not: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let leaders: Vec<Option<u64>> = among
            .iter()
            .map(|i| cluster.nodes[*i].cluster_status().leader_id)
            .collect();
        if let Some(Some(id)) = leaders.first() {
            if *id != not && leaders.iter().all(|l| *l == Some(*id)) {
                return *id;
            }
        }
        assert!(Instant::now() < deadline, "no new leader: {leaders:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_route_isolates_the_leader_until_healed_and_hashes_converge() {
    let cluster = start_cluster(3).await;
    let old = cluster.leader().await;
    let old_id = cluster.nodes[old].id();
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let other_ids: Vec<u64> = others.iter().map(|i| cluster.nodes[*i].id()).collect();
    let isolated = cluster.client(old).set_partition_for_test(&other_ids).await;
    assert_eq!(isolated.unwrap().blocked_peers, other_ids);
    for i in &others {
        cluster
            .client(*i)
            .set_partition_for_test(&[old_id])
            .await
            .unwrap();
    }
    new_leader(&cluster, &others, old_id).await;
    let submitted = cluster
        .client(others[0])
        .submit(&one_workflow(&["true"]), Some("behind-the-cut"))
        .await
        .unwrap();
    // The isolated node cannot confirm leadership: no linearizable read, no write.
    let cut_off = cluster
        .client(old)
        .with_request_timeout(Duration::from_millis(500))
        .with_retry_window(Duration::from_secs(1));
    assert!(cut_off.job(submitted.job.id, false).await.is_err());
    let healed = cluster.client(old).set_partition_for_test(&[]).await;
    let healed = healed.unwrap();
    assert!(healed.blocked_peers.is_empty());
    assert!(healed.dropped_outgoing > 0, "{healed:?}");
    for i in &others {
        cluster
            .client(*i)
            .set_partition_for_test(&[])
            .await
            .unwrap();
    }
    // Healed: every node applies the same entries and hashes to the same state.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut hashes = Vec::new();
        for url in &cluster.urls {
            let status = cluster.client(0).cluster_status_with_hash_at(url).await;
            hashes.push(status.unwrap().state_hash.unwrap());
        }
        if hashes.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(Instant::now() < deadline, "no convergence: {hashes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let view = cluster.client(old).job(submitted.job.id, true).await;
    assert_eq!(view.unwrap().name, submitted.job.name);
    let clock = cluster.client(old).set_clock_offset_for_test(-5_000).await;
    assert_eq!(clock.unwrap().offset_ms, -5_000);
    cluster.stop().await;
}
