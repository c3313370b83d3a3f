//! Three gossip adapters on 127.0.0.1: they converge to all-ALIVE, and one that stops without
//! a word is declared DEAD by the other two. Fast test timings (100 ms probes); every wait is
//! bounded and generous, no timing is asserted.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use steward_membership::{MemberEvent, Role};
use steward_node::gossip::{Gossip, GossipConfig, GossipOptions, Snapshot};
use tokio::sync::mpsc;

/// Every wait gives up after this long (detection takes ~1–3 s at the test timings).
const WAIT_MS: u64 = 30_000;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start(id: u64, seeds: Vec<SocketAddr>) -> (Gossip, mpsc::Receiver<MemberEvent>) {
    Gossip::start(GossipOptions {
        id,
        role: Role::Manager,
        bind: loopback(),
        seeds,
        config: GossipConfig::fast_for_tests(),
    })
    .await
    .unwrap()
}

/// Waits until `f` holds for `gossip`'s snapshot, or panics with the last snapshot.
async fn wait_for(gossip: &Gossip, what: &str, f: impl Fn(&Snapshot) -> bool) {
    let mut view = gossip.subscribe();
    let waited = tokio::time::timeout(Duration::from_millis(WAIT_MS), async {
        loop {
            if f(&view.borrow_and_update()) {
                return;
            }
            if view.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    let last = gossip.snapshot();
    assert!(
        waited.is_ok() && f(&last),
        "node {}: {what} not reached: {last:#?}",
        last.id
    );
}

fn states(snapshot: &Snapshot) -> Vec<(u64, &'static str)> {
    snapshot.members.iter().map(|m| (m.id, m.state)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_adapters_converge_then_a_stopped_one_is_declared_dead() {
    let (a, _events_a) = start(1, vec![]).await;
    let (b, mut events_b) = start(2, vec![a.local_addr()]).await;
    let (c, _events_c) = start(3, vec![a.local_addr()]).await;
    let all = [(1, &a), (2, &b), (3, &c)];

    for (id, g) in all {
        let others: Vec<(u64, &str)> = [1, 2, 3]
            .into_iter()
            .filter(|o| *o != id)
            .map(|o| (o, "alive"))
            .collect();
        wait_for(g, "all alive", |s| states(s) == others).await;
    }
    let snap = b.snapshot();
    assert_eq!(snap.id, 2);
    assert_eq!(snap.role, "manager");
    wait_for(&b, "probing", |s| s.metrics.membership.probes_sent > 0).await;

    c.kill().await;
    for g in [&a, &b] {
        wait_for(g, "node 3 dead", |s| {
            s.member(3).is_some_and(|m| m.state == "dead")
        })
        .await;
        wait_for(g, "the other survivor alive", |s| {
            s.members.iter().any(|m| m.id != 3 && m.state == "alive")
        })
        .await;
    }

    // The event stream saw node 3 join and die.
    let mut saw_dead = false;
    while let Ok(event) = events_b.try_recv() {
        if let MemberEvent::Dead(m) = event {
            saw_dead |= m.id.0 == 3;
        }
    }
    assert!(saw_dead, "node 2 never reported node 3 dead");
    assert!(b.snapshot().metrics.managers_dead >= 1);

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_is_seen_as_left_and_garbage_is_counted() {
    let (a, _ea) = start(11, vec![]).await;
    let (b, _eb) = start(12, vec![a.local_addr()]).await;
    wait_for(&a, "12 alive", |s| states(s) == vec![(12, "alive")]).await;

    let junk = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    junk.send_to(b"not a gossip packet", a.local_addr())
        .await
        .unwrap();
    wait_for(&a, "malformed counted", |s| {
        s.metrics.membership.malformed_packets_dropped >= 1
    })
    .await;

    b.shutdown().await;
    wait_for(&a, "12 left", |s| states(s) == vec![(12, "left")]).await;
    a.shutdown().await;
}
