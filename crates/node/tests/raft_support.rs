//! Shared helpers for the in-process cluster tests (included with `#[path]`): loopback ports,
//! test timings, bounded waits, submits that follow the leader.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use steward_node::{Consistency, Error, Node, NodeConfig, PeerConfig, SyncPolicyConfig};
use steward_statemachine::{
    state_hash, Command, IdempotencyKey, JobId, JobSpec, Outcome, WorkflowSpec,
};

/// Every bounded wait in these tests gives up after this long.
pub const WAIT_MS: u64 = 20_000;

/// A free loopback address (bound then released; the port stays free long enough in practice).
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

pub fn peer(id: u64) -> PeerConfig {
    PeerConfig {
        id,
        raft_addr: free_addr(),
        api_addr: free_addr(),
    }
}

/// Timings for a loaded 2-core machine: quick, but not so quick that elections flap.
pub fn config(peer: &PeerConfig, dir: &Path, members: &[PeerConfig]) -> NodeConfig {
    NodeConfig {
        id: peer.id,
        data_dir: dir.join(format!("node-{}", peer.id)),
        raft_addr: peer.raft_addr,
        api_addr: peer.api_addr,
        initial_members: members.to_vec(),
        sync_policy: SyncPolicyConfig::Always,
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 400,
        election_timeout_max_ms: 800,
        timeout_check_interval_ms: 100,
        idempotency_expiry_interval_ms: 1_000,
        snapshot_after_entries: 10_000,
        log_entries_kept_after_snapshot: 1_000,
        test_mode: true,
        gossip: Default::default(),
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub peers: Vec<PeerConfig>,
    pub configs: BTreeMap<u64, NodeConfig>,
    pub nodes: BTreeMap<u64, Node>,
}

impl Cluster {
    pub async fn start(size: u64, tweak: impl Fn(&mut NodeConfig)) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let peers: Vec<PeerConfig> = (1..=size).map(peer).collect();
        let mut configs = BTreeMap::new();
        let mut nodes = BTreeMap::new();
        for p in &peers {
            let mut c = config(p, dir.path(), &peers);
            tweak(&mut c);
            nodes.insert(p.id, Node::start(c.clone()).await.unwrap());
            configs.insert(p.id, c);
        }
        Cluster {
            dir,
            peers,
            configs,
            nodes,
        }
    }

    /// Waits until every running node names the same leader, and returns it.
    pub async fn leader(&self) -> Node {
        let nodes = self.nodes.clone();
        wait_for("a leader every node agrees on", || {
            let leaders: Vec<Option<u64>> = nodes
                .values()
                .map(|n| n.cluster_status().leader_id)
                .collect();
            match leaders.first() {
                Some(Some(id)) if leaders.iter().all(|l| *l == Some(*id)) => nodes
                    .get(id)
                    .filter(|n| n.cluster_status().state == "leader")
                    .cloned(),
                _ => None,
            }
        })
        .await
    }

    pub async fn stop(&mut self, id: u64) {
        let node = self.nodes.remove(&id).unwrap();
        node.shutdown().await.unwrap();
        drop(node);
    }

    pub async fn restart(&mut self, id: u64) {
        let node = Node::start(self.configs[&id].clone()).await.unwrap();
        self.nodes.insert(id, node);
    }

    /// Waits until every running node has applied the same state (same state hash) holding
    /// at least `jobs` jobs.
    pub async fn converged(&self, jobs: usize) -> u64 {
        let nodes: Vec<Node> = self.nodes.values().cloned().collect();
        for _ in 0..(WAIT_MS / 50) {
            let mut hashes = Vec::new();
            for n in &nodes {
                hashes.push(
                    n.read(Consistency::Stale, |s| (state_hash(s), s.jobs().count()))
                        .await
                        .unwrap(),
                );
            }
            if hashes.iter().all(|h| *h == hashes[0]) && hashes[0].1 >= jobs {
                return hashes[0].0;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nodes did not converge on {jobs} jobs within {WAIT_MS} ms");
    }

    pub async fn shutdown(self) {
        for node in self.nodes.values() {
            node.shutdown().await.unwrap();
        }
    }
}

/// Polls `f` every 20 ms until it returns `Some`, panicking after [`WAIT_MS`].
pub async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..(WAIT_MS / 20) {
        if let Some(value) = f() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {WAIT_MS} ms waiting for {what}");
}

pub fn spec(name: &str, timeout_ms: u64) -> JobSpec {
    let mut spec = JobSpec::new(name, vec![WorkflowSpec::new("w", vec!["true".to_string()])]);
    spec.timeout_ms = timeout_ms;
    spec
}

pub fn submit_command(name: &str, key: Option<&str>, timeout_ms: u64) -> Command {
    Command::SubmitJob {
        idempotency_key: key.map(|k| IdempotencyKey::new("test", k)),
        spec: spec(name, timeout_ms),
    }
}

/// The job id an accepted or duplicate submit answered.
pub fn job_of(outcome: &Outcome) -> Option<JobId> {
    match outcome {
        Outcome::JobAccepted { job } | Outcome::Duplicate { job, .. } => Some(*job),
        _ => None,
    }
}

/// Submits on `node`, following `NotLeader` hints among `nodes` until accepted.
pub async fn submit_anywhere(nodes: &BTreeMap<u64, Node>, command: Command) -> Outcome {
    let mut target = nodes.values().next().cloned().unwrap();
    for _ in 0..(WAIT_MS / 20) {
        match target.execute(command.clone()).await {
            Ok(outcome) => return outcome,
            Err(Error::NotLeader {
                leader_id: Some(id),
                ..
            }) if nodes.contains_key(&id) => {
                target = nodes[&id].clone();
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("no leader accepted the submit within {WAIT_MS} ms");
}
