//! Elections after a pre-vote (ADR 0018): a member cut off from the others asks, is refused,
//! and leaves the term alone, so healing the partition does not unseat a working leader.
//! Without the pre-vote, openraft would campaign from the cut-off member every election
//! timeout and its higher term would make the leader step down once it could talk again.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "raft_support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::{job_of, submit_anywhere, submit_command, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_follower_neither_raises_the_term_nor_unseats_the_leader() {
    let cluster = Cluster::start(3, |_| {}).await;
    let leader = cluster.leader().await;
    let before = leader.cluster_status();
    let follower_id = *cluster.nodes.keys().find(|id| **id != leader.id()).unwrap();
    let others: BTreeSet<u64> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|id| *id != follower_id)
        .collect();
    let follower = cluster.nodes[&follower_id].clone();
    follower.set_partition(others.clone()).unwrap();
    for id in &others {
        cluster.nodes[id]
            .set_partition(BTreeSet::from([follower_id]))
            .unwrap();
    }
    // Several of the follower's election timeouts (1200-1600 ms with this configuration while
    // it still follows the leader, 400-800 ms after that): without the pre-vote, openraft would
    // have campaigned from it at least twice.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let cut_off = follower.cluster_status();
    assert_eq!(
        cut_off.term, before.term,
        "the cut-off follower raised its term: {cut_off:?}"
    );
    assert_ne!(cut_off.state, "leader");

    for node in cluster.nodes.values() {
        node.set_partition(BTreeSet::new()).unwrap();
    }
    let outcome = submit_anywhere(&cluster.nodes, submit_command("after-heal", None, 60_000)).await;
    assert!(job_of(&outcome).is_some(), "{outcome:?}");
    cluster.converged(1).await;
    let after = cluster.leader().await.cluster_status();
    assert_eq!(
        (after.node_id, after.term),
        (before.node_id, before.term),
        "the leader changed after the partition healed"
    );
    cluster.shutdown().await;
}
