//! Workers end to end in one process: a one-manager group with its HTTP API, worker agents
//! talking to it over loopback, and real child processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::killpg;
use nix::unistd::Pid;
use steward_node::api::ApiOptions;
use steward_node::worker::protocol::{LogSource, LogsResponse, WorkerListResponse};
use steward_node::worker::AgentConfig;
use steward_node::{Consistency, Node, NodeConfig, PeerConfig};
use steward_statemachine::{
    Command, Happening, JobId, JobSpec, JobStatus, JobView, Outcome, TimeoutReason, WorkflowSpec,
    WorkflowStatus,
};
use tokio::sync::oneshot;

struct Manager {
    node: Node,
    api: SocketAddr,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn start_manager() -> Manager {
    let dir = tempfile::tempdir().unwrap();
    let peer = PeerConfig {
        id: 1,
        raft_addr: free_addr(),
        api_addr: free_addr(),
    };
    let config = NodeConfig {
        id: 1,
        data_dir: dir.path().join("node-1"),
        raft_addr: peer.raft_addr,
        api_addr: peer.api_addr,
        initial_members: vec![peer],
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        timeout_check_interval_ms: 100,
        ..NodeConfig::default()
    };
    let node = Node::start(config).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(steward_node::api::serve_with(
        node.clone(),
        peer.api_addr,
        ApiOptions::default(),
        async move {
            // A dropped sender also stops the server.
            let _stopped = stopped.await;
        },
    ));
    Manager {
        node,
        api: peer.api_addr,
        _stop: stop,
        _dir: dir,
    }
}

fn start_worker(manager: &Manager, id: u64, cores: u32, work_dir: &Path) -> oneshot::Sender<()> {
    let mut config = AgentConfig::new(id, cores, vec![manager.api.to_string()]);
    config.work_dir = work_dir.to_path_buf();
    config.lease_ms = 2_000;
    config.poll_wait_ms = 300;
    config.extension_lead_ms = 700;
    config.progress_report_interval_ms = 50;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        steward_node::worker::run(config, async move {
            // A dropped sender also stops the worker.
            let _stopped = stopped.await;
        })
        .await
        .unwrap();
    });
    stop
}

fn sh(name: &str, script: &str) -> WorkflowSpec {
    WorkflowSpec::new(name, vec!["sh".into(), "-c".into(), script.into()])
}

async fn submit(node: &Node, spec: JobSpec) -> JobId {
    for _ in 0..100 {
        match node
            .execute(Command::SubmitJob {
                idempotency_key: None,
                spec: spec.clone(),
            })
            .await
        {
            Ok(Outcome::JobAccepted { job }) => return job,
            Ok(other) => panic!("unexpected {other:?}"),
            // Not leader yet right after start.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("no leader");
}

async fn wait_terminal(node: &Node, job: JobId, within: Duration) -> JobView {
    let done = node
        .wait_until(within, move |s| {
            s.job(job).is_some_and(|j| j.status.is_terminal())
        })
        .await
        .unwrap();
    let view = node
        .read(Consistency::Stale, move |s| s.job_view(job))
        .await
        .unwrap()
        .unwrap();
    assert!(done, "job {job:?} not terminal in {within:?}: {view:#?}");
    view
}

async fn logs(manager: &Manager, job: JobId) -> LogsResponse {
    reqwest::get(format!("http://{}/v1/jobs/{}/logs", manager.api, job.0))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_complete_fail_and_report_output() {
    let manager = start_manager().await;
    let work = tempfile::tempdir().unwrap();
    let _w1 = start_worker(&manager, 11, 2, work.path());
    let _w2 = start_worker(&manager, 12, 1, work.path());
    let node = &manager.node;

    let three = JobSpec::new(
        "three",
        vec![
            sh("a", "echo alpha; echo to-stderr >&2"),
            sh("b", "echo \"$STEWARD_WORKFLOW attempt $STEWARD_ATTEMPT\""),
            sh("c", "pwd"),
        ],
    );
    let job = submit(node, three).await;
    let view = wait_terminal(node, job, Duration::from_secs(20)).await;
    assert_eq!(view.status, JobStatus::Completed, "{view:#?}");
    assert!(view
        .workflows
        .iter()
        .all(|w| w.worker.is_some() && w.attempt.0 == 1));
    let output = logs(&manager, job).await;
    assert_eq!(output.logs.len(), 3, "{output:#?}");
    let by_name = |name: &str| {
        output
            .logs
            .iter()
            .find(|l| l.workflow_name == name)
            .unwrap()
    };
    // Two pipes: their relative order is up to the scheduler.
    let a = &by_name("a").tail;
    assert!(
        a.contains("alpha\n") && a.contains("to-stderr\n") && a.len() == 16,
        "{a:?}"
    );
    assert_eq!(by_name("a").exit_code, Some(0));
    assert_eq!(by_name("b").tail, "b attempt 1\n");
    let cwd = work.path().canonicalize().unwrap();
    assert_eq!(by_name("c").tail.trim(), cwd.to_str().unwrap());

    let mut failing = JobSpec::new(
        "failing",
        vec![sh("ok", "true"), sh("bad", "echo broken; exit 7")],
    );
    failing.retry_budget = 0;
    let job = submit(node, failing).await;
    let view = wait_terminal(node, job, Duration::from_secs(20)).await;
    assert_eq!(view.status, JobStatus::Failed);
    let bad = &view.workflows[1];
    assert_eq!(bad.status, WorkflowStatus::Failed);
    assert_eq!(bad.exit_code, Some(7));
    assert_eq!(
        bad.last_error.as_deref(),
        Some("exited with code 7: broken")
    );
    assert_eq!(view.failed_workflows.len(), 1);

    let mut missing = JobSpec::new(
        "missing",
        vec![WorkflowSpec::new(
            "nope",
            vec!["/nonexistent/steward-no-such-program".into()],
        )],
    );
    missing.retry_budget_per_workflow = 0;
    let job = submit(node, missing).await;
    let view = wait_terminal(node, job, Duration::from_secs(20)).await;
    assert_eq!(view.status, JobStatus::Failed);
    let error = view.workflows[0].last_error.clone().unwrap();
    assert!(
        error.contains("cannot start `/nonexistent/steward-no-such-program`")
            && error.contains("No such file"),
        "{error}"
    );

    let listed: WorkerListResponse = reqwest::get(format!("http://{}/v1/workers", manager.api))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.workers.len(), 2);
    assert!(listed.workers.iter().all(|w| w.last_seen_ms_ago.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exit_and_output_tail_outlive_the_worker() {
    let manager = start_manager().await;
    let work = tempfile::tempdir().unwrap();
    let worker = start_worker(&manager, 21, 1, work.path());
    let node = &manager.node;
    // More output than the replicated tail keeps: only its end survives the worker.
    let script = "i=0; while [ $i -lt 300 ]; do echo line-$i-padding-padding; i=$((i+1)); done; \
                  echo last-line; exit 3";
    let mut job_spec = JobSpec::new("chatty", vec![sh("talk", script)]);
    job_spec.retry_budget = 0;
    let job = submit(node, job_spec).await;
    let view = wait_terminal(node, job, Duration::from_secs(20)).await;
    assert_eq!(view.status, JobStatus::Failed, "{view:#?}");
    let live = logs(&manager, job).await;
    assert_eq!(live.logs.len(), 1, "{live:#?}");
    assert_eq!(live.logs[0].source, LogSource::Worker);
    assert!(live.logs[0].tail.len() > steward_statemachine::OUTPUT_TAIL_BYTES_MAX);

    drop(worker);
    // Once the worker's endpoint is gone, the answer comes from the replicated exit record.
    let mut gone = logs(&manager, job).await;
    for _ in 0..50 {
        if gone.logs.first().map(|l| l.source) == Some(LogSource::Replicated) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        gone = logs(&manager, job).await;
    }
    assert_eq!(gone.logs.len(), 1, "{gone:#?}");
    let replicated = &gone.logs[0];
    assert_eq!(replicated.source, LogSource::Replicated, "{gone:#?}");
    assert_eq!(replicated.workflow_name, "talk");
    assert_eq!(replicated.worker, 21);
    assert_eq!(replicated.exit_code, Some(3));
    assert_eq!(replicated.signal, None);
    assert!(!replicated.running);
    assert!(replicated
        .tail
        .ends_with("line-299-padding-padding\nlast-line\n"));
    assert!(replicated.tail.len() <= steward_statemachine::OUTPUT_TAIL_BYTES_MAX);
    assert!(live.logs[0].tail.ends_with(&replicated.tail));
    let recorded = node
        .read(Consistency::Stale, move |s| {
            s.output(job, steward_statemachine::WorkflowId(0)).cloned()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded.exit.output_tail, replicated.tail);
    assert_eq!(recorded.exit.duration_ms, replicated.duration_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_process_group() {
    let manager = start_manager().await;
    let work = tempfile::tempdir().unwrap();
    let _w = start_worker(&manager, 21, 1, work.path());
    let node = &manager.node;
    let job = submit(
        node,
        JobSpec::new("sleeper", vec![sh("s", "echo $$ > pgid; sleep 600")]),
    )
    .await;
    let pgid_file = work.path().join("pgid");
    let mut pgid = None;
    for _ in 0..200 {
        if let Some(text) = std::fs::read_to_string(&pgid_file)
            .ok()
            .filter(|t| t.ends_with('\n'))
        {
            pgid = Some(text.trim().parse::<i32>().unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pgid = pgid.expect("the workflow never started");
    assert!(killpg(Pid::from_raw(pgid), None).is_ok());
    let outcome = node
        .execute(Command::CancelJob {
            job,
            fence_token: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::CancelAccepted { .. }),
        "{outcome:?}"
    );
    let view = wait_terminal(node, job, Duration::from_secs(10)).await;
    assert_eq!(view.status, JobStatus::Cancelled);
    assert_eq!(view.workflows[0].status, WorkflowStatus::Cancelled);
    assert!(
        killpg(Pid::from_raw(pgid), None).is_err(),
        "process group {pgid} survived the cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_runs_in_its_own_working_dir() {
    let manager = start_manager().await;
    let work = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("sub")).unwrap();
    let _w = start_worker(&manager, 23, 2, work.path());
    let node = &manager.node;
    let mut relative = sh("relative", "pwd > here");
    relative.working_dir = Some("sub".into());
    let mut absolute = sh("absolute", "pwd > here");
    absolute.working_dir = Some(elsewhere.path().display().to_string());
    let job = submit(
        node,
        JobSpec::new(
            "dirs",
            vec![relative, absolute, sh("default", "pwd > here")],
        ),
    )
    .await;
    let view = wait_terminal(node, job, Duration::from_secs(20)).await;
    assert_eq!(view.status, JobStatus::Completed, "{view:#?}");
    let pwd = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("here")).unwrap();
        std::fs::canonicalize(text.trim()).unwrap()
    };
    let canonical = |dir: &Path| std::fs::canonicalize(dir).unwrap();
    assert_eq!(
        pwd(&work.path().join("sub")),
        canonical(&work.path().join("sub"))
    );
    assert_eq!(pwd(elsewhere.path()), canonical(elsewhere.path()));
    assert_eq!(pwd(work.path()), canonical(work.path()));
}

/// The pid written to `file` by a workflow, once it is complete.
async fn read_pgid(file: &Path) -> i32 {
    for _ in 0..200 {
        if let Some(text) = std::fs::read_to_string(file)
            .ok()
            .filter(|t| t.ends_with('\n'))
        {
            return text.trim().parse::<i32>().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the workflow never started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_traps_sigterm_is_killed_after_its_own_grace() {
    let manager = start_manager().await;
    let work = tempfile::tempdir().unwrap();
    let _w = start_worker(&manager, 22, 1, work.path());
    let node = &manager.node;
    // The shell survives SIGTERM (its trap only notes it); only SIGKILL ends the group.
    let script = "trap 'echo term > got_term' TERM; echo $$ > pgid; \
                  while true; do sleep 0.05; done";
    let mut spec = JobSpec::new("stubborn", vec![sh("s", script)]);
    spec.cancel_grace_ms = Some(500);
    let job = submit(node, spec).await;
    let pgid = read_pgid(&work.path().join("pgid")).await;
    let outcome = node
        .execute(Command::CancelJob {
            job,
            fence_token: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::CancelAccepted { .. }),
        "{outcome:?}"
    );
    let cancelled_at = std::time::Instant::now();
    let view = wait_terminal(node, job, Duration::from_secs(10)).await;
    assert_eq!(view.status, JobStatus::Cancelled);
    // Far below the cluster default of 30 s: the job's own 500 ms grace reached the agent.
    while killpg(Pid::from_raw(pgid), None).is_ok() {
        assert!(
            cancelled_at.elapsed() < Duration::from_secs(10),
            "process group {pgid} survived its 500 ms grace"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        work.path().join("got_term").exists(),
        "SIGTERM was not sent before SIGKILL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_see_progress_and_extensions() {
    let manager = start_manager().await;
    let work = tempfile::tempdir().unwrap();
    let _w = start_worker(&manager, 31, 3, work.path());
    let node = &manager.node;

    // Progresses every 100 ms for 4 s against a 2.5 s timeout: extensions carry it through.
    // (Margins sized for a loaded 2-core machine: the first grant is asked 0.7 s before the
    // deadline and must be applied before it.)
    let mut progressing = JobSpec::new(
        "progressing",
        vec![sh(
            "p",
            "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo STEWARD_PROGRESS $i; sleep 0.1; done",
        )],
    );
    progressing.timeout_ms = 2_500;
    progressing.stuck_threshold_ms = 1_000;
    // Progresses twice then goes quiet: stuck.
    let mut stalling = JobSpec::new(
        "stalling",
        vec![sh(
            "s",
            "echo STEWARD_PROGRESS 1; sleep 0.2; echo STEWARD_PROGRESS 2; sleep 600",
        )],
    );
    stalling.stuck_threshold_ms = 800;
    // Never reports progress, so never asks for more time: overall timeout at its deadline.
    let mut silent = JobSpec::new("silent", vec![sh("q", "sleep 600")]);
    silent.timeout_ms = 1_000;
    silent.stuck_threshold_ms = 60_000;

    let progressing = submit(node, progressing).await;
    let stalling = submit(node, stalling).await;
    let silent = submit(node, silent).await;

    let view = wait_terminal(node, progressing, Duration::from_secs(20)).await;
    assert_eq!(view.status, JobStatus::Completed, "{view:#?}");
    assert!(view.total_extensions_granted_ms > 0, "{view:#?}");

    let view = wait_terminal(node, stalling, Duration::from_secs(20)).await;
    assert_eq!(view.status, JobStatus::TimedOut, "{view:#?}");
    assert_eq!(view.timed_out.unwrap().reason, TimeoutReason::Stuck);

    let view = wait_terminal(node, silent, Duration::from_secs(20)).await;
    assert_eq!(view.status, JobStatus::TimedOut, "{view:#?}");
    assert_eq!(view.timed_out.unwrap().reason, TimeoutReason::Overall);
    assert_eq!(view.total_extensions_granted_ms, 0);
    let timeline = node
        .read(Consistency::Stale, move |s| s.timeline(silent))
        .await
        .unwrap()
        .unwrap();
    assert!(!timeline
        .iter()
        .any(|e| matches!(e.what, Happening::ExtensionGranted { .. })));
}
