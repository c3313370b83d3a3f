//! `steward log replay | dump --decode` on the data directory of a real (in-process,
//! single-member) node: a WAL purged behind a snapshot is replayed from that snapshot to the
//! same state hash the node had, and membership entries decode.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

use steward_log::{read_dir_records, Record, Wal, WalOptions};
use steward_node::{Consistency, Node, NodeConfig, PeerConfig, SyncPolicyConfig};
use steward_statemachine::{state_hash, Command, JobSpec, Outcome, WorkflowSpec};

/// Every bounded wait gives up after this long.
const WAIT: Duration = Duration::from_secs(20);

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn config(dir: &Path, snapshot_after_entries: u64) -> NodeConfig {
    let peer = PeerConfig {
        id: 1,
        raft_addr: free_addr(),
        api_addr: free_addr(),
    };
    NodeConfig {
        id: 1,
        data_dir: dir.to_path_buf(),
        raft_addr: peer.raft_addr,
        api_addr: peer.api_addr,
        initial_members: vec![peer],
        sync_policy: SyncPolicyConfig::Always,
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 200,
        election_timeout_max_ms: 400,
        snapshot_after_entries,
        // The node never purges: a purge up to its last entry starts a fresh, empty log
        // (`purge_before` at the next index), and whether that happens depends on timing.
        // The tests purge a copy themselves (`purge_wal_up_to`), so `wal.full` is the whole log.
        log_entries_kept_after_snapshot: 1_000_000,
        ..NodeConfig::default()
    }
}

/// What a node left behind.
struct Finished {
    hash: u64,
    applied: u64,
    snapshot_index: Option<u64>,
    first_job: u64,
}

/// Starts a node, submits `jobs` jobs (waiting for a snapshot when `snapshot_after_entries` is
/// below that), and shuts it down.
async fn run_node(dir: &Path, snapshot_after_entries: u64, jobs: usize) -> Finished {
    let node = Node::start(config(dir, snapshot_after_entries))
        .await
        .unwrap();
    let started = Instant::now();
    for number in 0..jobs {
        submit(&node, &format!("job-{number}"), started).await;
    }
    if snapshot_after_entries < jobs as u64 {
        while node.metrics().snapshot_index.is_none() {
            assert!(started.elapsed() < WAIT, "the node never took a snapshot");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A snapshot may cover the last entry: one more leaves the log an entry after any
        // snapshot index read from here on, which `purge_wal_up_to` needs.
        submit(&node, "job-after-the-snapshot", started).await;
    }
    let (hash, applied, first_job) = node
        .read(Consistency::Stale, |s| {
            let first_job = s.jobs().next().map_or(0, |job| job.id.0);
            (state_hash(s), s.globals().last_applied.0, first_job)
        })
        .await
        .unwrap();
    let snapshot_index = node.metrics().snapshot_index;
    node.shutdown().await.unwrap();
    Finished {
        hash,
        applied,
        snapshot_index,
        first_job,
    }
}

/// Submits one job named `name`, retrying until a leader accepts it.
async fn submit(node: &Node, name: &str, started: Instant) {
    loop {
        assert!(started.elapsed() < WAIT, "no leader accepted the jobs");
        let spec = JobSpec::new(name, vec![WorkflowSpec::new("w", vec!["true".into()])]);
        let command = Command::SubmitJob {
            idempotency_key: None,
            spec,
        };
        match node.execute(command).await {
            Ok(Outcome::JobAccepted { .. }) => return,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Moves `wal/` to `wal.full/` and writes a `wal/` holding only the entries after `after`: a
/// node's log once a purge has removed everything its snapshot covers.
fn purge_wal_up_to(dir: &Path, after: u64) {
    let full = dir.join("wal.full");
    std::fs::rename(dir.join("wal"), &full).unwrap();
    let records: Vec<Record> = read_dir_records(&full, after + 1..u64::MAX)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            Record::new(r.index.0, r.term, r.kind, r.payload)
        })
        .collect();
    assert!(!records.is_empty());
    let (wal, _) = Wal::open(&dir.join("wal"), WalOptions::default()).unwrap();
    wal.append(records).unwrap();
}

fn steward(args: &[&str], dir: &Path) -> String {
    let output = Process::new(env!("CARGO_BIN_EXE_steward"))
        .arg("log")
        .args(args)
        .arg(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{args:?}: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_log_replays_from_the_snapshot_to_the_nodes_hash() {
    let dir = tempfile::tempdir().unwrap();
    let finished = run_node(dir.path(), 10, 30).await;
    let snapshot_index = finished.snapshot_index.unwrap();
    purge_wal_up_to(dir.path(), snapshot_index);
    let out = steward(&["replay", "--json"], dir.path());
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let snapshot = value["replay"]["snapshot"].as_str().unwrap_or_default();
    assert!(snapshot.contains("snapshots"), "{out}");
    // The newest snapshot file may be newer than the metrics read before shutdown.
    assert!(value["replay"]["start_index"].as_u64() >= Some(snapshot_index));
    assert_eq!(value["summary"]["state_hash"].as_u64(), Some(finished.hash));
    assert_eq!(
        value["summary"]["last_applied"].as_u64(),
        Some(finished.applied)
    );
    let text = steward(&["replay"], dir.path());
    assert!(text.contains("started from:     snapshot "), "{text}");
    // A job submitted before the snapshot: its early entries have no known fence.
    let job = finished.first_job.to_string();
    let out = steward(&["replay", "--json", "--job", &job], dir.path());
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let first_entry = &value["timeline"][0];
    assert_eq!(first_entry["what"], "submitted", "{out}");
    assert!(first_entry["fence_token"].is_null(), "{out}");
    let out = steward(&["replay", "--json"], &dir.path().join("wal.full"));
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(value["replay"]["snapshot"].is_null(), "{out}");
    assert_eq!(value["summary"]["state_hash"].as_u64(), Some(finished.hash));
    let output = Process::new(env!("CARGO_BIN_EXE_steward"))
        .args(["log", "diff"])
        .arg(dir.path())
        .arg(dir.path().join("wal.full"))
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("states identical up to index"), "{text}");
    assert!(text.contains("A starts later"), "{text}");
    assert!(text.contains("folded from the snapshot at index"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_entries_decode_and_a_full_log_replays_to_the_nodes_hash() {
    let dir = tempfile::tempdir().unwrap();
    let finished = run_node(dir.path(), 10_000, 3).await;
    let out = steward(&["dump", "--decode"], &dir.path().join("wal"));
    assert!(out.contains("  membership {voters:[{1:"), "{out}");
    assert!(out.contains("  blank"), "{out}");
    assert!(out.contains("job_submitted name=\"job-2\""), "{out}");
    let out = steward(&["replay", "--json"], dir.path());
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(value["replay"]["snapshot"].is_null(), "{out}");
    assert_eq!(value["summary"]["state_hash"].as_u64(), Some(finished.hash));
}
