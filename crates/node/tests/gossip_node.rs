//! Gossip wired into `Node`: three managers see each other ALIVE with coordinates; a worker
//! (a bare gossip adapter with role Worker, registered in the state machine under the same id)
//! that stops is declared dead and the leader records `WorkerLost`; a stopped manager is only
//! reported. Fast gossip timings, bounded waits, no timing assertions.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used)]

#[path = "raft_support.rs"]
mod support;

use std::net::SocketAddr;

use steward_membership::Role;
use steward_node::gossip::{Gossip, GossipConfig, GossipOptions};
use steward_statemachine::{Command, WorkerId};
use support::{wait_for, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_gossip_and_a_dead_worker_becomes_worker_lost() {
    let mut cluster = Cluster::start(3, |c| c.gossip = GossipConfig::fast_for_tests()).await;
    let nodes: Vec<_> = cluster.nodes.values().cloned().collect();
    wait_for(
        "every manager sees two alive managers with coordinates",
        || {
            nodes
                .iter()
                .all(|n| {
                    let members = n.members();
                    members.len() == 2
                        && members
                            .iter()
                            .all(|m| m.state == "alive" && m.role == "manager")
                        && n.coordinates().len() == 3
                })
                .then_some(())
        },
    )
    .await;

    let leader = cluster.leader().await;
    http_routes_answer(&leader).await;
    let worker_id = 77;
    leader
        .execute(Command::RegisterWorker {
            worker: WorkerId(worker_id),
            cores: 2,
            address: "127.0.0.1:1".to_string(),
        })
        .await
        .unwrap();
    let seed: SocketAddr = leader.raft_addr();
    let (worker, _events) = Gossip::start(GossipOptions {
        id: worker_id,
        role: Role::Worker,
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        seeds: vec![seed],
        config: GossipConfig::fast_for_tests(),
    })
    .await
    .unwrap();
    wait_for("the leader sees the worker alive", || {
        leader
            .members()
            .iter()
            .any(|m| m.id == worker_id && m.state == "alive" && m.role == "worker")
            .then_some(())
    })
    .await;

    worker.kill().await;
    // Gossip itself declares the worker dead (the leader's lease check in the dispatch duty is
    // a second, slower path to the same `WorkerLost`; this proves the gossip one fired).
    wait_for("the leader's gossip declares the worker dead", || {
        leader
            .gossip()
            .filter(|g| {
                g.metrics.workers_dead >= 1
                    && g.member(worker_id).is_some_and(|m| m.state == "dead")
            })
            .map(|_| ())
    })
    .await;
    let lost = || {
        let leader = leader.clone();
        async move {
            leader
                .read(steward_node::Consistency::Stale, move |s| {
                    s.worker(WorkerId(worker_id))
                        .map(|w| w.lost_at_ms.is_some())
                })
                .await
                .unwrap()
        }
    };
    let mut recorded = false;
    for _ in 0..(support::WAIT_MS / 100) {
        if lost().await == Some(true) {
            recorded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recorded, "WorkerLost not recorded: {:#?}", leader.members());

    // A manager that stops is declared dead by the others, and only reported.
    let victim = cluster
        .nodes
        .keys()
        .copied()
        .find(|id| *id != leader.id())
        .unwrap();
    cluster.stop(victim).await;
    wait_for("the leader sees the stopped manager left or dead", || {
        leader
            .members()
            .iter()
            .any(|m| m.id == victim && (m.state == "left" || m.state == "dead"))
            .then_some(())
    })
    .await;
    assert_eq!(leader.cluster_status().leader_id, Some(leader.id()));
    cluster.shutdown().await;
}

/// `GET /v1/cluster/members` and `/v1/cluster/coordinates` through the HTTP API and the client.
async fn http_routes_answer(node: &steward_node::Node) {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(steward_node::api::serve_with(
        node.clone(),
        addr,
        steward_node::api::ApiOptions::default(),
        async move {
            // A dropped sender also stops the server.
            let _stopped = stopped.await;
        },
    ));
    let url = steward_node::client::Url::parse(&format!("http://{addr}")).unwrap();
    let client = steward_node::client::Client::new(vec![url]).unwrap();
    let members = client.cluster_members().await.unwrap();
    assert_eq!(members.node_id, node.id());
    assert_eq!(members.members.len(), 3, "{members:#?}");
    assert_eq!(members.members[0].id, node.id());
    assert!(members
        .members
        .iter()
        .all(|m| m.state == "alive" && m.role == "manager" && m.rtt_ms.is_some()));
    let coordinates = client.cluster_coordinates().await.unwrap();
    assert_eq!(coordinates.coordinates.len(), 3, "{coordinates:#?}");
    let metrics = client.metrics().await.unwrap();
    assert!(
        metrics.contains("steward_gossip_members{state=\"alive\"} 2"),
        "{metrics}"
    );
    let _stopped = stop.send(());
}
