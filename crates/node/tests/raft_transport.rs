//! The Raft TCP transport on loopback: pipelined calls, refused frames counted without a panic,
//! reconnect after the server comes back, requests held by a listener bound before it serves.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use steward_node::transport::client::{CallError, PeerClient};
use steward_node::transport::frame::{self, FrameKind, HEADER_BYTES};
use steward_node::transport::message::{BoxFuture, RaftReply, RaftRpc, RpcHandler};
use steward_node::transport::server::{BoundListener, RaftServer};
use steward_node::transport::TransportStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers TimeoutNow with Ok after a delay that depends on `from`, so replies come back out of
/// order on one connection.
struct Echo {
    calls: AtomicU64,
}

impl RpcHandler for Echo {
    fn handle(&self, rpc: RaftRpc) -> BoxFuture<RaftReply> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            match rpc {
                RaftRpc::TimeoutNow { from } => {
                    tokio::time::sleep(Duration::from_millis(50 - from % 50)).await;
                    RaftReply::TimeoutNow(Err(format!("echo {from}")))
                }
                _ => RaftReply::Refused("unexpected".into()),
            }
        })
    }
}

async fn start() -> (RaftServer, Arc<TransportStats>, Arc<Echo>) {
    let stats = Arc::new(TransportStats::default());
    let echo = Arc::new(Echo {
        calls: AtomicU64::new(0),
    });
    let addr = "127.0.0.1:0".parse().unwrap();
    let server = RaftServer::bind(addr, echo.clone(), stats.clone())
        .await
        .unwrap();
    (server, stats, echo)
}

#[tokio::test]
async fn pipelined_calls_share_one_connection_and_match_replies() {
    let (server, server_stats, _echo) = start().await;
    let client_stats = Arc::new(TransportStats::default());
    let client = Arc::new(PeerClient::new(server.local_addr(), client_stats.clone()));
    let mut tasks = Vec::new();
    for from in 0..40u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let reply = client
                .call(&RaftRpc::TimeoutNow { from }, Duration::from_secs(5))
                .await;
            match reply.unwrap() {
                RaftReply::TimeoutNow(Err(text)) => assert_eq!(text, format!("echo {from}")),
                other => panic!("unexpected {other:?}"),
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(client_stats.snapshot().connects, 1, "one pooled connection");
    assert_eq!(server_stats.snapshot().frames_received, 40);
    server.shutdown().await;
}

async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    read.expect("server closes refused connections").unwrap();
    answer
}

#[tokio::test]
async fn malformed_and_wrong_version_frames_are_refused_and_counted() {
    let (server, stats, echo) = start().await;
    let addr = server.local_addr();

    let garbage = raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(garbage.is_empty(), "no answer to a bad magic");
    assert_eq!(stats.snapshot().refused_bad_magic, 1);

    let mut wrong_version = frame::encode_frame(FrameKind::Request, 1, b"").unwrap();
    wrong_version[4] = 9;
    let answer = raw_exchange(addr, &wrong_version).await;
    assert!(
        answer.len() > HEADER_BYTES,
        "a refusal frame explains the version"
    );
    assert_eq!(answer[6], FrameKind::Refusal as u8);
    assert!(String::from_utf8_lossy(&answer[HEADER_BYTES..]).contains("version 9"));
    assert_eq!(stats.snapshot().refused_version, 1);

    // An undecodable body is answered with Refused and the connection stays usable.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let bad_body = frame::encode_frame(FrameKind::Request, 7, &[0xff, 0xff, 0xff]).unwrap();
    let body = frame::encode_body(&RaftRpc::TimeoutNow { from: 49 }).unwrap();
    let good = frame::encode_frame(FrameKind::Request, 8, &body).unwrap();
    stream.write_all(&bad_body).await.unwrap();
    stream.write_all(&good).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut header = [0u8; HEADER_BYTES];
        stream.read_exact(&mut header).await.unwrap();
        let header = frame::decode_header(&header).unwrap();
        let mut body = vec![0u8; header.body_bytes];
        stream.read_exact(&mut body).await.unwrap();
        let reply: RaftReply = frame::decode_body(&body).unwrap();
        ids.push((header.request_id, matches!(reply, RaftReply::Refused(_))));
    }
    ids.sort();
    assert_eq!(ids, vec![(7, true), (8, false)]);
    assert_eq!(stats.snapshot().refused_body, 1);
    assert_eq!(
        echo.calls.load(Ordering::Relaxed),
        1,
        "only the good request reached the handler"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn unreachable_then_reconnects_after_backoff() {
    // Reserve a port, then free it so nothing listens there.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let stats = Arc::new(TransportStats::default());
    let client = PeerClient::new(addr, stats.clone());
    let rpc = RaftRpc::TimeoutNow { from: 1 };
    let first = client.call(&rpc, Duration::from_secs(1)).await;
    assert!(
        matches!(first, Err(CallError::Unreachable { .. })),
        "{first:?}"
    );
    let during_backoff = client.call(&rpc, Duration::from_secs(1)).await;
    assert!(matches!(during_backoff, Err(CallError::Unreachable { .. })));
    assert_eq!(
        stats.snapshot().connect_failures,
        1,
        "no connect attempt while backing off"
    );

    let echo = Arc::new(Echo {
        calls: AtomicU64::new(0),
    });
    let server = RaftServer::bind(addr, echo, Arc::new(TransportStats::default()))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match client.call(&rpc, Duration::from_secs(1)).await {
            Ok(RaftReply::TimeoutNow(_)) => break,
            other if tokio::time::Instant::now() > deadline => {
                panic!("never reconnected: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert_eq!(stats.snapshot().connects, 1);

    // The server goes away: in-flight and later calls fail instead of hanging.
    server.shutdown().await;
    let after = client.call(&rpc, Duration::from_secs(2)).await;
    assert!(after.is_err(), "{after:?}");
}

/// A peer that went away and came back on the same address (a killed node restarted): the
/// pooled connection's reader saw the close, so the next call must reconnect, not write into
/// the dead socket and wait out its whole deadline for a reply nobody reads.
#[tokio::test]
async fn a_call_after_the_peer_restarted_reconnects_instead_of_timing_out() {
    let (server, _stats, _echo) = start().await;
    let addr = server.local_addr();
    let stats = Arc::new(TransportStats::default());
    let client = PeerClient::new(addr, stats.clone());
    let rpc = RaftRpc::TimeoutNow { from: 49 };
    client.call(&rpc, Duration::from_secs(5)).await.unwrap();
    server.shutdown().await;
    // Let the client's reader see the close before the peer comes back.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let echo = Arc::new(Echo {
        calls: AtomicU64::new(0),
    });
    let restarted = RaftServer::bind(addr, echo.clone(), Arc::new(TransportStats::default()))
        .await
        .unwrap();
    let deadline = Duration::from_secs(30);
    let after = client.call(&rpc, deadline).await;
    assert!(
        !matches!(after, Err(CallError::Timeout { .. })),
        "the first call after the restart waited out its deadline: {after:?}"
    );
    assert!(after.is_ok(), "{after:?}");
    assert_eq!(stats.snapshot().connects, 2, "reconnected once");
    assert_eq!(echo.calls.load(Ordering::Relaxed), 1);
    restarted.shutdown().await;
}

#[path = "raft_support.rs"]
mod support;

#[tokio::test]
async fn a_running_node_refuses_a_wrong_version_peer_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let me = support::peer(1);
    let node = steward_node::Node::start(support::config(&me, dir.path(), &[me]))
        .await
        .unwrap();
    let mut wrong_version = frame::encode_frame(FrameKind::Request, 1, b"").unwrap();
    wrong_version[4] = 2;
    let answer = raw_exchange(node.raft_addr(), &wrong_version).await;
    assert_eq!(answer.get(6).copied(), Some(FrameKind::Refusal as u8));
    assert_eq!(node.metrics().transport.refused_version, 1);
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_listener_bound_before_it_serves_holds_the_peer_and_what_it_sent() {
    let listener = BoundListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client_stats = Arc::new(TransportStats::default());
    let client = PeerClient::new(listener.local_addr(), client_stats.clone());
    // Nothing serves yet: the connect succeeds (the kernel queues it), the call gets no answer.
    let early = client
        .call(
            &RaftRpc::TimeoutNow { from: 49 },
            Duration::from_millis(200),
        )
        .await;
    assert!(
        matches!(early, Err(CallError::Timeout { .. })),
        "a held peer times out, it is not refused: {early:?}"
    );
    let stats = Arc::new(TransportStats::default());
    let echo = Arc::new(Echo {
        calls: AtomicU64::new(0),
    });
    let server = listener.serve(echo.clone(), stats.clone(), Arc::default());
    let reply = client
        .call(&RaftRpc::TimeoutNow { from: 7 }, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(matches!(reply, RaftReply::TimeoutNow(Err(text)) if text == "echo 7"));
    assert_eq!(
        echo.calls.load(Ordering::Relaxed),
        2,
        "the request sent before serving was handled too"
    );
    assert_eq!(
        client_stats.snapshot().connects,
        1,
        "the held connection was kept"
    );
    server.shutdown().await;
}
