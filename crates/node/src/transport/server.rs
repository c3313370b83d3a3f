//! The listening side: accepts peer connections, decodes request frames, runs each request
//! through the [`RpcHandler`] concurrently (pipelining) and writes responses as they finish.
//!
//! It never panics on input: a bad magic or malformed header closes the connection, another
//! protocol version is answered with a refusal frame and closed, an undecodable body is answered
//! with `Refused` and the connection continues. Every refusal is counted.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::transport::frame::{self, FrameError, FrameKind};
use crate::transport::link_filter::LinkFilter;
use crate::transport::message::{RaftReply, RaftRpc, RpcHandler};
use crate::transport::{read_frame, TransportStats};

/// Requests handled concurrently per connection before the reader waits. Default: 256.
pub const IN_FLIGHT_REQUESTS_MAX: usize = 256;

/// The Raft address, bound but not served yet.
///
/// A node binds it before it opens its storage, which takes seconds over a large log: peers
/// that connect meanwhile are held in the kernel's accept queue with what they send, instead
/// of being refused and backing off. The leader's first heartbeat is then read the moment the
/// node serves, rather than at the leader's next reconnect attempt (ADR 0024).
pub struct BoundListener {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl BoundListener {
    /// Binds `addr`; nothing is accepted until [`BoundListener::serve`].
    pub async fn bind(addr: SocketAddr) -> Result<BoundListener> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::transport(format!("bind the Raft listener on {addr}"), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::transport(format!("read the address bound for {addr}"), e))?;
        Ok(BoundListener {
            listener,
            local_addr,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts accepting, first the connections already waiting, and serves their requests
    /// with `handler` in the order they were sent. Requests from peers `filter` blocks are
    /// dropped without a reply (test mode).
    pub fn serve(
        self,
        handler: Arc<dyn RpcHandler>,
        stats: Arc<TransportStats>,
        filter: Arc<LinkFilter>,
    ) -> RaftServer {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(self.listener, handler, stats, filter, stopped));
        RaftServer {
            local_addr: self.local_addr,
            stop,
            task,
        }
    }
}

/// A running listener. Dropping it does not stop it; call [`RaftServer::shutdown`].
pub struct RaftServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RaftServer {
    /// Binds `addr` and serves requests with `handler`.
    pub async fn bind(
        addr: SocketAddr,
        handler: Arc<dyn RpcHandler>,
        stats: Arc<TransportStats>,
    ) -> Result<RaftServer> {
        Self::bind_with_filter(addr, handler, stats, Arc::default()).await
    }

    /// Like [`RaftServer::bind`], but requests from peers `filter` blocks are dropped without
    /// a reply (test mode): the sender times out as it would behind a partition.
    pub async fn bind_with_filter(
        addr: SocketAddr,
        handler: Arc<dyn RpcHandler>,
        stats: Arc<TransportStats>,
        filter: Arc<LinkFilter>,
    ) -> Result<RaftServer> {
        Ok(BoundListener::bind(addr)
            .await?
            .serve(handler, stats, filter))
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes every connection; returns when the accept loop has ended.
    pub async fn shutdown(self) {
        // Send fails only if every receiver is gone, i.e. the loops already ended.
        let _ignored = self.stop.send(true);
        // A join error means the accept loop panicked; there is nothing left to stop.
        let _ignored = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    handler: Arc<dyn RpcHandler>,
    stats: Arc<TransportStats>,
    filter: Arc<LinkFilter>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let conn = serve_connection(
                        stream,
                        peer,
                        handler.clone(),
                        stats.clone(),
                        filter.clone(),
                    );
                    let mut stopped = stopped.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = stopped.changed() => {}
                            _ = conn => {}
                        }
                    });
                }
                Err(e) => {
                    // Typically EMFILE; back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept on the Raft listener failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Arc<dyn RpcHandler>,
    stats: Arc<TransportStats>,
    filter: Arc<LinkFilter>,
) {
    // Replies are small and latency-bound (see the client).
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    let (read_half, write_half) = stream.into_split();
    let (frames_tx, frames_rx) = mpsc::channel::<Vec<u8>>(IN_FLIGHT_REQUESTS_MAX);
    let writer = tokio::spawn(write_loop(write_half, frames_rx, stats.clone()));
    let mut reader = BufReader::new(read_half);
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_REQUESTS_MAX));
    loop {
        let (header, body) = match read_frame(&mut reader).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => {
                refuse_connection(&e, peer, &frames_tx, &stats).await;
                break;
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "Raft connection read failed");
                break;
            }
        };
        if header.kind != FrameKind::Request {
            stats.count_refusal(&FrameError::UnknownKind(header.kind as u8));
            break;
        }
        TransportStats::bump(&stats.frames_received);
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (handler, frames_tx, stats) = (handler.clone(), frames_tx.clone(), stats.clone());
        let filter = filter.clone();
        tokio::spawn(async move {
            let reply = match frame::decode_body::<RaftRpc>(&body) {
                // A partitioned peer's request is lost: no reply, the sender times out.
                Ok(rpc) if rpc.sender().is_some_and(|id| filter.drops_incoming(id)) => return,
                Ok(rpc) => handler.handle(rpc).await,
                Err(e) => {
                    stats.count_refusal(&e);
                    tracing::warn!(%peer, error = %e, "refused an undecodable Raft request");
                    RaftReply::Refused(e.to_string())
                }
            };
            send_reply(&frames_tx, header.request_id, &reply).await;
            drop(permit);
        });
    }
    drop(frames_tx);
    // A join error means the writer panicked; the connection is gone either way.
    let _ignored = writer.await;
}

async fn send_reply(frames: &mpsc::Sender<Vec<u8>>, request_id: u64, reply: &RaftReply) {
    let encoded = frame::encode_body(reply)
        .and_then(|body| frame::encode_frame(FrameKind::Response, request_id, &body));
    match encoded {
        // A send error means the connection closed; the peer will time out and retry.
        Ok(bytes) => drop(frames.send(bytes).await),
        Err(e) => tracing::error!(error = %e, "could not encode a Raft reply"),
    }
}

/// Counts a refused header; answers a version mismatch with a refusal frame so the peer's
/// operator sees a clear error instead of a silent close.
async fn refuse_connection(
    err: &FrameError,
    peer: SocketAddr,
    frames: &mpsc::Sender<Vec<u8>>,
    stats: &TransportStats,
) {
    stats.count_refusal(err);
    tracing::warn!(%peer, error = %err, "refused a Raft frame; closing the connection");
    if let FrameError::UnsupportedVersion { .. } = err {
        if let Ok(bytes) = frame::encode_frame(FrameKind::Refusal, 0, err.to_string().as_bytes()) {
            // The peer may already be gone; the refusal is best effort.
            drop(frames.send(bytes).await);
        }
    }
}

async fn write_loop(
    half: tokio::net::tcp::OwnedWriteHalf,
    mut frames: mpsc::Receiver<Vec<u8>>,
    stats: Arc<TransportStats>,
) {
    let mut writer = BufWriter::new(half);
    while let Some(bytes) = frames.recv().await {
        let mut batch = vec![bytes];
        while let Ok(more) = frames.try_recv() {
            batch.push(more);
        }
        for bytes in batch {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
            TransportStats::bump(&stats.frames_sent);
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}
