//! Leader duties on an in-process cluster: the test-only clock hook moves the leader's stamps,
//! and the timeout loop then times out a job that is not overdue by the real clock; the hook is
//! refused outside test mode.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "raft_support.rs"]
mod support;

use std::time::Duration;

use steward_node::{Consistency, Error, Node};
use steward_statemachine::JobStatus;
use support::{config, job_of, peer, submit_command, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_clock_jump_fires_timeouts_through_the_duty_loop() {
    let cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let outcome = leader
        .execute(submit_command("slow", None, 60_000))
        .await
        .unwrap();
    let job = job_of(&outcome).unwrap();
    // Not overdue by the real clock: nothing happens for a few duty ticks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = leader
        .read(Consistency::Stale, move |s| s.job(job).map(|j| j.status))
        .await;
    assert_eq!(status.unwrap(), Some(JobStatus::Pending));

    leader.set_clock_offset_ms(120_000).unwrap();
    for node in cluster.nodes.values() {
        let timed_out = node
            .wait_until(Duration::from_millis(support::WAIT_MS), move |s| {
                s.job(job).is_some_and(|j| j.status == JobStatus::TimedOut)
            })
            .await
            .unwrap();
        assert!(timed_out, "node {} saw the timeout", node.id());
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_hook_is_refused_outside_test_mode() {
    let dir = tempfile::tempdir().unwrap();
    let p = peer(1);
    let mut c = config(&p, dir.path(), &[p]);
    c.test_mode = false;
    let node = Node::start(c).await.unwrap();
    assert!(matches!(
        node.set_clock_offset_ms(1),
        Err(Error::Config {
            field: "test_mode",
            ..
        })
    ));
    node.shutdown().await.unwrap();
}
