//! Membership on an in-process cluster: a fourth node joins (learner, catch-up, promotion), a
//! member is removed and its id refused afterwards, leadership is transferred to a named node;
//! `cluster_status` reflects each step.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "raft_support.rs"]
mod support;

use steward_node::{Error, Node};
use support::{config, job_of, peer, submit_command, wait_for, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_remove_and_transfer_show_in_cluster_status() {
    let mut cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    for i in 0..5 {
        leader
            .execute(submit_command(&format!("job-{i}"), None, 60_000))
            .await
            .unwrap();
    }

    // Join: a fresh node with no initial members, added by the leader.
    let fourth = peer(4);
    let fourth_config = config(&fourth, cluster.dir.path(), &[]);
    let node4 = Node::start(fourth_config.clone()).await.unwrap();
    cluster.configs.insert(4, fourth_config);
    cluster.nodes.insert(4, node4.clone());
    leader.add_member(fourth).await.unwrap();
    let status = leader.cluster_status();
    let voters: Vec<u64> = status
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.id)
        .collect();
    assert_eq!(voters, vec![1, 2, 3, 4], "{status:?}");
    cluster.converged(5).await;

    // Remove a follower; its id is never accepted again.
    let victim = (1..=3).find(|id| *id != leader.id()).unwrap();
    leader.remove_member(victim).await.unwrap();
    let status = leader.cluster_status();
    assert!(status.members.iter().all(|m| m.id != victim), "{status:?}");
    assert_eq!(status.removed_ids, vec![victim]);
    cluster.stop(victim).await;
    let again = peer(victim);
    match leader.add_member(again).await {
        Err(Error::Membership(message)) => assert!(message.contains("never reused"), "{message}"),
        other => panic!("re-adding a removed id must fail: {other:?}"),
    }

    // Transfer leadership to the node that joined.
    let report = leader.transfer_leader(4).await.unwrap();
    assert_eq!((report.from, report.to), (leader.id(), 4));
    println!(
        "transfer: leaderless {} ms, writes paused {} ms",
        report.leaderless_ms, report.writes_paused_ms
    );
    let nodes = cluster.nodes.clone();
    wait_for("every node to follow node 4", || {
        nodes
            .values()
            .all(|n| n.cluster_status().leader_id == Some(4))
            .then_some(())
    })
    .await;
    assert_eq!(node4.cluster_status().state, "leader");
    let outcome = node4
        .execute(submit_command("after-transfer", None, 60_000))
        .await
        .unwrap();
    assert!(job_of(&outcome).is_some());
    match leader
        .execute(submit_command("old-leader", None, 60_000))
        .await
    {
        Err(Error::NotLeader { leader_id, .. }) => assert_eq!(leader_id, Some(4)),
        other => panic!("the old leader must refuse writes: {other:?}"),
    }
    cluster.converged(6).await;
    cluster.shutdown().await;
}
