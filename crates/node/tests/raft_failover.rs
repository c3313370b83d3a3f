//! Failover and concurrency on an in-process three-node cluster: the leader is shut down in the
//! middle of a stream of submits; every acknowledged submit survives on every node with the same
//! id, the new leader raises the fence, timeouts of jobs submitted before the failover still fire.
//! And the same idempotency key submitted concurrently yields one job.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "raft_support.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steward_node::{Consistency, Error, Node};
use steward_statemachine::{JobId, JobStatus, NodeId as SmNodeId};
use support::{job_of, submit_command, wait_for, Cluster};

/// Submits until `stop`, following the leader among `nodes`, recording acknowledged job ids.
async fn stream(nodes: Vec<Node>, acked: Arc<Mutex<Vec<JobId>>>, stop: Arc<AtomicBool>) {
    let mut target = 0usize;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let node = &nodes[target % nodes.len()];
        match node
            .execute(submit_command(&format!("stream-{i}"), None, 600_000))
            .await
        {
            Ok(outcome) => {
                acked
                    .lock()
                    .unwrap()
                    .push(job_of(&outcome).expect("a new job"));
                i += 1;
            }
            Err(Error::NotLeader {
                leader_id: Some(id),
                ..
            }) => match nodes.iter().position(|n| n.id() == id) {
                Some(position) if position != target % nodes.len() => target = position,
                _ => {
                    target += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Err(_) => {
                target += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_mid_stream_loses_no_acknowledged_submit() {
    let mut cluster = Cluster::start(3, |_| {}).await;
    let old = cluster.leader().await;
    let mut early = Vec::new();
    for i in 0..3 {
        let outcome = old
            .execute(submit_command(&format!("early-{i}"), None, 1_500))
            .await
            .unwrap();
        early.push(job_of(&outcome).unwrap());
    }
    let fence_before = old
        .read(Consistency::Linearizable, |s| s.globals().fence_token)
        .await
        .unwrap();

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let nodes: Vec<Node> = cluster.nodes.values().cloned().collect();
    let streamer = tokio::spawn(stream(nodes, acked.clone(), stop.clone()));
    wait_for("10 acknowledged submits", || {
        (acked.lock().unwrap().len() >= 10).then_some(())
    })
    .await;
    let killed_at = std::time::Instant::now();
    cluster.stop(old.id()).await;
    let stop_ms = killed_at.elapsed().as_millis();
    let before_kill = acked.lock().unwrap().len();
    wait_for("20 submits acknowledged by a new leader", || {
        (acked.lock().unwrap().len() >= before_kill + 20).then_some(())
    })
    .await;
    let failover_ms = killed_at.elapsed().as_millis();
    stop.store(true, Ordering::Relaxed);
    streamer.await.unwrap();
    let new = cluster.leader().await;
    assert_ne!(new.id(), old.id());
    println!("failover: shutdown took {stop_ms} ms; 20 submits acknowledged {failover_ms} ms after it began");

    let acked = acked.lock().unwrap().clone();
    let total = acked.len() + early.len();
    cluster.converged(total).await;
    for node in cluster.nodes.values() {
        let ids = acked.clone();
        let missing = node
            .read(Consistency::Stale, move |s| {
                ids.iter().filter(|id| s.job(**id).is_none()).count()
            })
            .await
            .unwrap();
        assert_eq!(missing, 0, "node {} lost acknowledged submits", node.id());
        let (fence, leader) = node
            .read(Consistency::Stale, |s| {
                (s.globals().fence_token, s.globals().leader)
            })
            .await
            .unwrap();
        assert!(
            fence > fence_before,
            "the new leader raised the fence: {fence:?} vs {fence_before:?}"
        );
        assert_eq!(leader, Some(SmNodeId(new.id())));
    }
    // Jobs submitted before the failover time out under the new leader.
    for node in cluster.nodes.values() {
        let early = early.clone();
        let timed_out = node
            .wait_until(Duration::from_millis(support::WAIT_MS), move |s| {
                early
                    .iter()
                    .all(|id| s.job(*id).is_some_and(|j| j.status == JobStatus::TimedOut))
            })
            .await
            .unwrap();
        assert!(timed_out, "early jobs timed out on node {}", node.id());
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_idempotency_key_submitted_concurrently_yields_one_job() {
    let cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    for round in 0..10 {
        let key = format!("key-{round}");
        let (a, b) = (leader.clone(), leader.clone());
        let (ka, kb) = (key.clone(), key.clone());
        let first =
            tokio::spawn(async move { a.execute(submit_command("same", Some(&ka), 60_000)).await });
        let second =
            tokio::spawn(async move { b.execute(submit_command("same", Some(&kb), 60_000)).await });
        let (first, second) = (
            first.await.unwrap().unwrap(),
            second.await.unwrap().unwrap(),
        );
        assert_eq!(job_of(&first), job_of(&second), "{first:?} / {second:?}");
        assert!(job_of(&first).is_some());
    }
    let jobs = leader
        .read(Consistency::Linearizable, |s| s.jobs().count())
        .await
        .unwrap();
    assert_eq!(jobs, 10, "one job per key");
    cluster.converged(10).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submits_are_batched_into_fewer_entries_with_distinct_ids() {
    let cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let before = leader.cluster_status().last_log_index.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let node = leader.clone();
        tasks.push(tokio::spawn(async move {
            node.execute(submit_command(&format!("burst-{i}"), None, 60_000))
                .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        let outcome = task.await.unwrap().unwrap();
        assert!(
            ids.insert(job_of(&outcome).unwrap()),
            "job ids are distinct"
        );
    }
    let entries = leader.cluster_status().last_log_index.unwrap() - before;
    assert!(entries < 200, "200 commands used {entries} entries");
    cluster.converged(200).await;
    cluster.shutdown().await;
}
