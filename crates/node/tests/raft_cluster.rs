//! In-process three-node clusters on loopback: election and replication, and a follower
//! restarted from disk catching up by log (even with its sled view deleted), and by snapshot
//! after the leader purged its WAL; a whole cluster restarted from disk elects a new leader in
//! a later term instead of the old leader resuming its own.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "raft_support.rs"]
mod support;

use steward_node::Consistency;
use support::{job_of, submit_anywhere, submit_command, Cluster};

/// Submits `count` jobs named `{prefix}-{i}` through whichever node leads, one at a time.
async fn submit_jobs(cluster: &Cluster, prefix: &str, count: usize) {
    for i in 0..count {
        submit_anywhere(
            &cluster.nodes,
            submit_command(&format!("{prefix}-{i}"), None, 60_000),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elects_a_leader_and_replicates_to_every_node() {
    let cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    for i in 0..20 {
        let outcome = leader
            .execute(submit_command(&format!("job-{i}"), None, 60_000))
            .await
            .unwrap();
        assert!(job_of(&outcome).is_some(), "{outcome:?}");
    }
    cluster.converged(20).await;
    for node in cluster.nodes.values() {
        let status = node.cluster_status();
        assert_eq!(status.leader_id, Some(leader.id()));
        assert_eq!(status.members.iter().filter(|m| m.voter).count(), 3);
        assert!(status.applied_index >= Some(20));
    }
    let status = leader.cluster_status();
    assert!(status.commit_index >= Some(20), "{status:?}");
    assert!(
        status.members.iter().all(|m| m.matched_index >= Some(20)),
        "{status:?}"
    );
    // A follower refuses writes with the leader's address.
    let follower = cluster
        .nodes
        .values()
        .find(|n| n.id() != leader.id())
        .unwrap();
    let err = follower
        .execute(submit_command("x", None, 60_000))
        .await
        .unwrap_err();
    match err {
        steward_node::Error::NotLeader {
            leader_id,
            leader_api_addr,
        } => {
            assert_eq!(leader_id, Some(leader.id()));
            assert_eq!(leader_api_addr, Some(leader.config().api_addr));
        }
        other => panic!("expected NotLeader, got {other}"),
    }
    let stale = follower
        .read(Consistency::Stale, |s| s.jobs().count())
        .await
        .unwrap();
    assert_eq!(stale, 20);
    assert!(follower
        .read(Consistency::Linearizable, |_| ())
        .await
        .is_err());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_follower_catches_up_by_log() {
    let mut cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let follower = cluster
        .peers
        .iter()
        .map(|p| p.id)
        .find(|id| *id != leader.id())
        .unwrap();
    submit_jobs(&cluster, "before", 5).await;
    cluster.converged(5).await;
    cluster.stop(follower).await;
    submit_jobs(&cluster, "during", 15).await;
    // sled is only a view (ADR 0007): losing it entirely must cost a re-apply from the WAL,
    // not data.
    let sled_dir = cluster.configs[&follower].data_dir.join("sled");
    std::fs::remove_dir_all(&sled_dir).unwrap();
    cluster.restart(follower).await;
    let hash = cluster.converged(20).await;
    let restarted = &cluster.nodes[&follower];
    assert_eq!(
        restarted
            .read(Consistency::Stale, steward_statemachine::state_hash)
            .await
            .unwrap(),
        hash
    );
    assert!(
        restarted.metrics().snapshot_index.is_none(),
        "caught up by log, not by snapshot"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_follower_catches_up_by_snapshot_after_purge() {
    let mut cluster = Cluster::start(3, |c| {
        c.snapshot_after_entries = 10;
        c.log_entries_kept_after_snapshot = 0;
    })
    .await;
    let leader = cluster.leader().await;
    let follower = cluster
        .peers
        .iter()
        .map(|p| p.id)
        .find(|id| *id != leader.id())
        .unwrap();
    submit_anywhere(&cluster.nodes, submit_command("first", None, 60_000)).await;
    cluster.converged(1).await;
    let follower_last = cluster.nodes[&follower]
        .cluster_status()
        .last_log_index
        .unwrap();
    cluster.stop(follower).await;
    submit_jobs(&cluster, "job", 40).await;
    let purged = support::wait_for("the leader to purge past the stopped follower", || {
        leader.metrics().purged_index.filter(|p| *p > follower_last)
    })
    .await;
    cluster.restart(follower).await;
    let hash = cluster.converged(41).await;
    let restarted = &cluster.nodes[&follower];
    // `converged` reads the state, which can show the installed snapshot before openraft's
    // metrics name it (up to 150 ms later seen), so the index is awaited, not read once.
    support::wait_for(
        "the restarted follower to report a snapshot covering the purge",
        || {
            restarted
                .metrics()
                .snapshot_index
                .filter(|index| *index >= purged)
        },
    )
    .await;
    assert_eq!(
        restarted
            .read(Consistency::Stale, steward_statemachine::state_hash)
            .await
            .unwrap(),
        hash
    );
    cluster.shutdown().await;
}

/// After a power loss of the whole group the old leader must not resume its term: its own WAL
/// may be shorter than what a quorum made durable (ADR 0014). Every restart goes through an
/// election, so the term grows and nothing acknowledged before is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_cluster_elects_a_leader_in_a_later_term() {
    let mut cluster = Cluster::start(3, |_| {}).await;
    let old_leader = cluster.leader().await;
    submit_jobs(&cluster, "before", 5).await;
    cluster.converged(5).await;
    let old_term = old_leader.cluster_status().term;
    drop(old_leader);
    let ids: Vec<u64> = cluster.peers.iter().map(|p| p.id).collect();
    for id in &ids {
        cluster.stop(*id).await;
    }
    for id in &ids {
        cluster.restart(*id).await;
    }
    let new_leader = cluster.leader().await;
    let new_term = new_leader.cluster_status().term;
    assert!(
        new_term > old_term,
        "the restarted cluster is led in term {new_term}, not later than the old term {old_term}"
    );
    cluster.converged(5).await;
    cluster.shutdown().await;
}
