//! Three `steward server` processes and one `steward worker` process on loopback; the leader
//! is SIGKILLed while three workflows run. The worker keeps running them, reports to the new
//! leader, and every result is recorded exactly once (one start and one completion per
//! workflow, attempt 1, no re-dispatch).

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use steward_node::api::types::{SubmitJobRequest, WorkflowSpec};
use steward_node::client::{Client, Url};

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");

/// A child process, SIGKILLed and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // Already dead (killed by the test) or killed now: nothing is left running.
        let _killed = self.0.kill();
        let _reaped = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Spawns `steward args…`; its warnings and errors go to `log`, for the failure messages.
fn spawn(args: &[String], env: &[(&str, String)], log: &Path) -> Proc {
    let mut command = Command::new(STEWARD);
    command
        .args(args)
        .env("STEWARD_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (key, value) in env {
        command.env(key, value);
    }
    Proc(command.spawn().unwrap())
}

/// The processes' logs (warnings and errors), for a failure message.
fn logs(dir: &Path) -> String {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("--- {}\n{}\n", path.display(), tail.join("\n"))
        })
        .collect()
}

fn workflow(name: &str) -> WorkflowSpec {
    WorkflowSpec {
        name: name.into(),
        command: vec!["sh".into(), "-c".into(), format!("sleep 2; echo {name}")],
        env: BTreeMap::new(),
        cores: None,
        timeout_ms: None,
        working_dir: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_survive_a_leader_sigkill_and_are_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let nodes: Vec<(u64, SocketAddr, SocketAddr)> =
        (1..=3).map(|id| (id, free_addr(), free_addr())).collect();
    let members: Vec<String> = nodes
        .iter()
        .map(|(id, raft, api)| format!("{id}@{raft}@{api}"))
        .collect();
    let mut servers: BTreeMap<u64, Proc> = nodes
        .iter()
        .map(|(id, raft, api)| {
            let args = [
                "server".to_owned(),
                "--raft-addr".to_owned(),
                raft.to_string(),
                "--api-addr".to_owned(),
                api.to_string(),
                "--data-dir".to_owned(),
                dir.path().join(format!("node-{id}")).display().to_string(),
            ];
            let env = [
                ("STEWARD_ID", id.to_string()),
                ("STEWARD_INITIAL_MEMBERS", members.join(",")),
            ];
            let log = dir.path().join(format!("node-{id}.log"));
            (*id, spawn(&args, &env, &log))
        })
        .collect();
    let apis: Vec<String> = nodes.iter().map(|(_, _, api)| api.to_string()).collect();
    let urls: Vec<Url> = apis
        .iter()
        .map(|api| Url::parse(&format!("http://{api}")).unwrap())
        .collect();
    let client = Client::new(urls.clone())
        .unwrap()
        .with_retry_window(Duration::from_secs(30));
    let worker_args: Vec<String> = [
        "worker",
        "--join",
        &apis.join(","),
        "--cores",
        "3",
        "--id",
        "7",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(["--work-dir".to_owned(), dir.path().display().to_string()])
    .collect();
    let _worker = spawn(&worker_args, &[], &dir.path().join("worker.log"));

    let request = SubmitJobRequest {
        name: Some("failover".into()),
        labels: BTreeMap::new(),
        workflows: vec![workflow("a"), workflow("b"), workflow("c")],
        timeout_ms: None,
        retry_budget: None,
        cancel_grace_ms: None,
    };
    let job = client
        .submit(&request, Some("failover-job"))
        .await
        .unwrap()
        .job
        .id;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = client.job(job, false).await.unwrap();
        if view.workflows.iter().all(|w| w.status == "running") {
            break;
        }
        assert!(Instant::now() < deadline, "not all running: {view:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // All three must be up before one is killed: a member that never started (its port taken
    // between `free_addr` and its bind, say) would leave the survivors without a quorum.
    for (id, proc) in &mut servers {
        if let Ok(Some(status)) = proc.0.try_wait() {
            panic!(
                "server {id} exited before the kill ({status}):\n{}",
                logs(dir.path())
            );
        }
    }
    for url in &urls {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !client
            .cluster_status_at(url)
            .await
            .is_ok_and(|status| status.leader_id.is_some())
        {
            assert!(
                Instant::now() < deadline,
                "{url} knows no leader:\n{}",
                logs(dir.path())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let leader = client.cluster_status().await.unwrap().leader_id.unwrap();
    let killed = servers.remove(&leader).unwrap();
    drop(killed); // SIGKILL
    let killed_at = Instant::now();

    let view = loop {
        let answer = client.wait(job, Duration::from_secs(5)).await;
        if let Ok(answer) = answer {
            if answer.terminal {
                break answer.job;
            }
        }
        if killed_at.elapsed() > Duration::from_secs(40) {
            let mut survivors = String::new();
            for url in &urls {
                let status = client.cluster_status_at(url).await;
                survivors.push_str(&format!("{url}: {status:?}\n"));
            }
            panic!(
                "job never finished after leader {leader} was killed\n{survivors}{}",
                logs(dir.path())
            );
        }
    };
    eprintln!(
        "leader {leader} SIGKILLed; job finished {:?} later",
        killed_at.elapsed()
    );
    assert_eq!(view.status.to_string(), "completed", "{view:?}");
    assert!(
        view.workflows
            .iter()
            .all(|w| w.attempt == 1 && w.worker == Some(7)),
        "{view:?}"
    );
    let events = client.events(job, false).await.unwrap();
    let count = |kind: &str| events.events.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count("dispatched"), 3, "{events:?}");
    assert_eq!(count("started"), 3, "{events:?}");
    assert_eq!(count("workflow_completed"), 3, "{events:?}");
}
