//! Three `steward server` processes (configured by flags and `STEWARD_*` variables) on free
//! loopback ports; the leader is SIGKILLed during a stream of keyed submits sent through the
//! HTTP client. Every acknowledged submit must exist afterwards, with the same id, on the
//! survivors; the time from the kill to the next acknowledged submit is printed (a measurement,
//! not a threshold).

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use steward_node::api::types::{SubmitJobRequest, WorkflowSpec};
use steward_node::client::{Client, Url};

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");

struct Server {
    id: u64,
    api_addr: SocketAddr,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already dead (killed by the test) or killed now: nothing is left running.
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn start_servers(dir: &std::path::Path) -> Vec<Server> {
    let addrs: Vec<(u64, SocketAddr, SocketAddr)> =
        (1..=3).map(|id| (id, free_addr(), free_addr())).collect();
    let members: Vec<String> = addrs
        .iter()
        .map(|(id, raft, api)| format!("{id}@{raft}@{api}"))
        .collect();
    addrs
        .iter()
        .map(|(id, raft_addr, api_addr)| {
            let child = Command::new(STEWARD)
                .arg("server")
                .args(["--raft-addr", &raft_addr.to_string()])
                .args(["--api-addr", &api_addr.to_string()])
                .args([
                    "--data-dir",
                    &dir.join(format!("node-{id}")).display().to_string(),
                ])
                .env("STEWARD_ID", id.to_string())
                .env("STEWARD_INITIAL_MEMBERS", members.join(","))
                .env("STEWARD_LOG_LEVEL", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            Server {
                id: *id,
                api_addr: *api_addr,
                child,
            }
        })
        .collect()
}

fn url(addr: SocketAddr) -> Url {
    Url::parse(&format!("http://{addr}")).unwrap()
}

async fn leader_id(client: &Client) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(status) = client.cluster_status().await {
            if let Some(leader) = status.leader_id {
                return leader;
            }
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn job(sequence: u32) -> SubmitJobRequest {
    SubmitJobRequest {
        name: Some(format!("failover-{sequence}")),
        labels: BTreeMap::new(),
        workflows: vec![WorkflowSpec {
            name: "main".into(),
            command: vec!["true".into(), sequence.to_string()],
            env: BTreeMap::new(),
            cores: None,
            timeout_ms: None,
            working_dir: None,
        }],
        timeout_ms: None,
        retry_budget: None,
        cancel_grace_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_submits_survive_a_leader_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = start_servers(dir.path());
    let urls: Vec<Url> = servers.iter().map(|s| url(s.api_addr)).collect();
    let client = Client::new(urls)
        .unwrap()
        .with_retry_window(Duration::from_secs(30));
    let leader = leader_id(&client).await;

    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let mut killed_at = None;
    let mut first_after_kill = None;
    let mut sequence = 0;
    while first_after_kill.is_none() || acked.len() < 60 {
        sequence += 1;
        let key = format!("failover-{sequence}");
        // Keyed submits are safe to retry: the client resends across the failover.
        let answer = client.submit(&job(sequence), Some(&key)).await.unwrap();
        acked.insert(key, answer.job.id);
        if killed_at.is_some() && first_after_kill.is_none() {
            first_after_kill = Some(Instant::now());
        }
        if acked.len() == 30 && killed_at.is_none() {
            let server = servers.iter_mut().find(|s| s.id == leader).unwrap();
            server.child.kill().unwrap(); // SIGKILL
            killed_at = Some(Instant::now());
        }
    }
    let gap = first_after_kill.unwrap().duration_since(killed_at.unwrap());
    eprintln!("leader {leader} SIGKILLed; next acknowledged submit after {gap:?}");

    // Every acknowledged submit exists with the same id on each survivor (and a resubmit with
    // its key is recognised as the same job).
    let survivors: Vec<&Server> = servers.iter().filter(|s| s.id != leader).collect();
    for server in survivors {
        let one = Client::new(vec![url(server.api_addr)]).unwrap();
        for (key, id) in &acked {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match one.job(*id, true).await {
                    Ok(found) => {
                        assert_eq!(found.idempotency_key.as_deref(), Some(key.as_str()));
                        break;
                    }
                    Err(err) => {
                        assert!(
                            Instant::now() < deadline,
                            "node {}: job {id}: {err}",
                            server.id
                        )
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let (key, id) = acked.iter().next().unwrap();
    let sequence: u32 = key.trim_start_matches("failover-").parse().unwrap();
    let again = client.submit(&job(sequence), Some(key)).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.job.id, *id);
}
