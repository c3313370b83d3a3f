//! The outgoing side: one pooled TCP connection per peer, pipelined requests matched to
//! responses by request id, per-request timeouts, reconnect with exponential backoff and jitter.
//!
//! It does not retry a failed request: openraft decides when to resend (it backs off on
//! `Unreachable`). A connection that fails fails every request in flight on it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::transport::frame::{self, FrameKind};
use crate::transport::link_filter::LinkFilter;
use crate::transport::message::{RaftReply, RaftRpc};
use crate::transport::{read_frame, TransportStats};

/// Longest wait for a TCP connect. Default: 1 s.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// First reconnect delay after a failure. Default: 20 ms.
pub const RECONNECT_BACKOFF_MS_MIN: u64 = 20;
/// Reconnect delay cap. Default: 100 ms: a restarted peer is reached within about 100 ms of
/// listening again, before its first election timeout (ADR 0015).
pub const RECONNECT_BACKOFF_MS_MAX: u64 = 100;
/// Frames queued for one connection's writer before senders wait. Default: 1024.
pub const WRITE_QUEUE_FRAMES_MAX: usize = 1_024;

const _: () = assert!(RECONNECT_BACKOFF_MS_MIN <= RECONNECT_BACKOFF_MS_MAX);

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No connection could be made (or we are backing off after failures).
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable {
        /// The peer's address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The connection broke after the request was sent; it may or may not have been handled.
    #[error("connection to {addr} lost: {reason}")]
    ConnectionLost {
        /// The peer's address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// No response within the deadline; the request may still be handled.
    #[error("no response from {addr} within {timeout:?}")]
    Timeout {
        /// The peer's address.
        addr: SocketAddr,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The request could not be encoded, or the peer refused it (e.g. protocol version).
    #[error("refused: {0}")]
    Refused(String),
}

type Waiter = oneshot::Sender<Result<RaftReply, CallError>>;

/// The callers waiting on one connection, and whether it can still answer them.
///
/// Once either half of the connection ends, the set is closed: the waiters are failed and no
/// new one is accepted, so the next call reconnects instead of writing into a socket whose
/// reader is gone (its reply would never be read: the call would wait out its whole timeout).
struct PendingSet {
    open: bool,
    waiters: HashMap<u64, Waiter>,
}

type Pending = Arc<Mutex<PendingSet>>;

struct Connection {
    frames: mpsc::Sender<Vec<u8>>,
    pending: Pending,
}

impl Connection {
    /// Whether both halves still run (neither loop has ended).
    fn is_open(&self) -> bool {
        !self.frames.is_closed() && self.pending.lock().is_ok_and(|set| set.open)
    }

    /// Registers the waiter of request `id`; `false` if the connection already ended.
    fn register(&self, id: u64, waiter: Waiter) -> bool {
        match self.pending.lock() {
            Ok(mut set) if set.open => {
                set.waiters.insert(id, waiter);
                true
            }
            _ => false,
        }
    }
}

enum Slot {
    Idle,
    Connected(Arc<Connection>),
    BackingOff { until: Instant, failures: u32 },
}

/// The client for one peer: at most one live connection, shared by every caller.
pub struct PeerClient {
    addr: SocketAddr,
    slot: tokio::sync::Mutex<Slot>,
    next_request_id: AtomicU64,
    stats: Arc<TransportStats>,
    /// The peer's id and the node's partition switch (test mode), when created by a pool.
    link: Option<(u64, Arc<LinkFilter>)>,
}

/// Exponential backoff with "equal jitter": half the delay fixed, half random, so peers that
/// failed together do not reconnect in lockstep.
fn backoff_delay(failures: u32) -> Duration {
    let exp = RECONNECT_BACKOFF_MS_MIN.saturating_mul(1u64 << failures.min(16));
    let capped = exp.min(RECONNECT_BACKOFF_MS_MAX);
    let half = capped / 2;
    Duration::from_millis(half + rand::thread_rng().gen_range(0..=half))
}

/// Closes `pending` (no new waiter is accepted) and fails every waiter with `err`.
fn fail_all(pending: &Pending, err: &CallError) {
    let drained: Vec<_> = match pending.lock() {
        Ok(mut set) => {
            set.open = false;
            set.waiters.drain().collect()
        }
        // A poisoned map means a task panicked while holding it; the callers time out instead.
        Err(_) => Vec::new(),
    };
    for (_, tx) in drained {
        // The caller may have timed out and dropped its receiver; nothing to tell it then.
        let _ignored = tx.send(Err(err.clone()));
    }
}

impl PeerClient {
    /// A client for `addr`; connects lazily on the first call.
    pub fn new(addr: SocketAddr, stats: Arc<TransportStats>) -> Self {
        PeerClient {
            addr,
            slot: tokio::sync::Mutex::new(Slot::Idle),
            next_request_id: AtomicU64::new(1),
            stats,
            link: None,
        }
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `rpc` and waits up to `timeout` for its reply.
    pub async fn call(&self, rpc: &RaftRpc, timeout: Duration) -> Result<RaftReply, CallError> {
        if let Some((peer, filter)) = &self.link {
            if filter.drops_outgoing(*peer) {
                return Err(CallError::Unreachable {
                    addr: self.addr,
                    reason: format!("link to node {peer} blocked by a test partition"),
                });
            }
        }
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let body = frame::encode_body(rpc).map_err(|e| CallError::Refused(e.to_string()))?;
        let bytes = frame::encode_frame(FrameKind::Request, id, &body)
            .map_err(|e| CallError::Refused(e.to_string()))?;
        let conn = self.connection().await?;
        let (tx, rx) = oneshot::channel();
        if !conn.register(id, tx) {
            self.forget(&conn).await;
            return Err(CallError::ConnectionLost {
                addr: self.addr,
                reason: "connection closed before the request was sent".into(),
            });
        }
        if conn.frames.send(bytes).await.is_err() {
            self.forget(&conn).await;
            return Err(CallError::ConnectionLost {
                addr: self.addr,
                reason: "writer stopped".into(),
            });
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CallError::ConnectionLost {
                addr: self.addr,
                reason: "reply dropped".into(),
            }),
            Err(_) => {
                if let Ok(mut set) = conn.pending.lock() {
                    set.waiters.remove(&id);
                }
                TransportStats::bump(&self.stats.request_timeouts);
                Err(CallError::Timeout {
                    addr: self.addr,
                    timeout,
                })
            }
        }
    }

    /// Drops `conn` from the slot if it is still the current one, so the next call reconnects.
    async fn forget(&self, conn: &Arc<Connection>) {
        let mut slot = self.slot.lock().await;
        if let Slot::Connected(current) = &*slot {
            if Arc::ptr_eq(current, conn) {
                *slot = Slot::Idle;
            }
        }
    }

    async fn connection(&self) -> Result<Arc<Connection>, CallError> {
        let mut slot = self.slot.lock().await;
        let failures = match &*slot {
            Slot::Connected(conn) if conn.is_open() => return Ok(conn.clone()),
            Slot::Connected(_) | Slot::Idle => 0,
            Slot::BackingOff { until, failures } => {
                if Instant::now() < *until {
                    return Err(CallError::Unreachable {
                        addr: self.addr,
                        reason: format!("backing off after {failures} failed connects"),
                    });
                }
                *failures
            }
        };
        let connect = TcpStream::connect(self.addr);
        let result = tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connect).await;
        let stream = match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(self.connect_failed(&mut slot, failures, e.to_string())),
            Err(_) => {
                return Err(self.connect_failed(&mut slot, failures, "connect timeout".into()))
            }
        };
        // Raft messages are small and latency-bound; Nagle would add up to 40 ms per round trip.
        if let Err(e) = stream.set_nodelay(true) {
            return Err(self.connect_failed(&mut slot, failures, e.to_string()));
        }
        TransportStats::bump(&self.stats.connects);
        let conn = self.spawn_connection(stream);
        *slot = Slot::Connected(conn.clone());
        Ok(conn)
    }

    fn connect_failed(&self, slot: &mut Slot, failures: u32, reason: String) -> CallError {
        TransportStats::bump(&self.stats.connect_failures);
        let failures = failures.saturating_add(1);
        *slot = Slot::BackingOff {
            until: Instant::now() + backoff_delay(failures),
            failures,
        };
        CallError::Unreachable {
            addr: self.addr,
            reason,
        }
    }

    fn spawn_connection(&self, stream: TcpStream) -> Arc<Connection> {
        let (read_half, write_half) = stream.into_split();
        let (frames_tx, frames_rx) = mpsc::channel(WRITE_QUEUE_FRAMES_MAX);
        let pending: Pending = Arc::new(Mutex::new(PendingSet {
            open: true,
            waiters: HashMap::new(),
        }));
        let conn = Arc::new(Connection {
            frames: frames_tx,
            pending: pending.clone(),
        });
        let addr = self.addr;
        let (stats_w, stats_r) = (self.stats.clone(), self.stats.clone());
        let pending_w = pending.clone();
        tokio::spawn(async move {
            if let Err(e) = write_loop(write_half, frames_rx, &stats_w).await {
                fail_all(
                    &pending_w,
                    &CallError::ConnectionLost {
                        addr,
                        reason: e.to_string(),
                    },
                );
            }
        });
        tokio::spawn(async move {
            let reason = read_loop(read_half, &pending, &stats_r).await;
            fail_all(&pending, &CallError::ConnectionLost { addr, reason });
        });
        conn
    }
}

/// Writes queued frames, flushing whenever the queue runs empty so pipelined frames share
/// syscalls.
async fn write_loop(
    half: tokio::net::tcp::OwnedWriteHalf,
    mut frames: mpsc::Receiver<Vec<u8>>,
    stats: &TransportStats,
) -> std::io::Result<()> {
    let mut writer = BufWriter::new(half);
    while let Some(bytes) = frames.recv().await {
        writer.write_all(&bytes).await?;
        TransportStats::bump(&stats.frames_sent);
        while let Ok(more) = frames.try_recv() {
            writer.write_all(&more).await?;
            TransportStats::bump(&stats.frames_sent);
        }
        writer.flush().await?;
    }
    Ok(())
}

/// Reads responses and hands each to its waiting caller. Returns why the connection ended.
async fn read_loop(
    half: tokio::net::tcp::OwnedReadHalf,
    pending: &Pending,
    stats: &TransportStats,
) -> String {
    let mut reader = BufReader::new(half);
    loop {
        let (header, body) = match read_frame(&mut reader).await {
            Ok(None) => return "closed by peer".into(),
            Err(e) => return e.to_string(),
            Ok(Some(Err(e))) => {
                stats.count_refusal(&e);
                return format!("refused frame: {e}");
            }
            Ok(Some(Ok(frame))) => frame,
        };
        TransportStats::bump(&stats.frames_received);
        let result = match header.kind {
            FrameKind::Response => frame::decode_body::<RaftReply>(&body).map_err(|e| {
                stats.count_refusal(&e);
                CallError::Refused(e.to_string())
            }),
            FrameKind::Refusal => {
                let reason = String::from_utf8_lossy(&body).into_owned();
                let err = CallError::Refused(reason.clone());
                fail_all(pending, &err);
                return format!("peer refused: {reason}");
            }
            FrameKind::Request => {
                TransportStats::bump(&stats.refused_malformed);
                return "peer sent a request on a client connection".into();
            }
        };
        let waiter = pending
            .lock()
            .ok()
            .and_then(|mut set| set.waiters.remove(&header.request_id));
        if let Some(tx) = waiter {
            // The caller may have timed out meanwhile; the late reply is then dropped.
            let _ignored = tx.send(result);
        }
    }
}

/// One [`PeerClient`] per peer id, created on first use.
#[derive(Default)]
pub struct PeerPool {
    peers: Mutex<HashMap<u64, Arc<PeerClient>>>,
    stats: Arc<TransportStats>,
    filter: Arc<LinkFilter>,
}

impl PeerPool {
    /// An empty pool counting into `stats`.
    pub fn new(stats: Arc<TransportStats>) -> Self {
        Self::with_filter(stats, Arc::default())
    }

    /// An empty pool whose calls to peers `filter` blocks fail as unreachable (test mode).
    pub fn with_filter(stats: Arc<TransportStats>, filter: Arc<LinkFilter>) -> Self {
        PeerPool {
            peers: Mutex::new(HashMap::new()),
            stats,
            filter,
        }
    }

    /// The client for peer `id` at `addr` (replaced if the address changed).
    pub fn get(&self, id: u64, addr: SocketAddr) -> Arc<PeerClient> {
        let mut peers = match self.peers.lock() {
            Ok(peers) => peers,
            // Only a panic inside this short critical section poisons it; the map is still valid.
            Err(poisoned) => poisoned.into_inner(),
        };
        match peers.get(&id) {
            Some(client) if client.addr() == addr => client.clone(),
            _ => {
                let mut client = PeerClient::new(addr, self.stats.clone());
                client.link = Some((id, self.filter.clone()));
                let client = Arc::new(client);
                peers.insert(id, client.clone());
                client
            }
        }
    }

    /// The counters shared by every client of this pool.
    pub fn stats(&self) -> &Arc<TransportStats> {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for failures in 0..40 {
            let d = backoff_delay(failures).as_millis() as u64;
            assert!(d <= RECONNECT_BACKOFF_MS_MAX, "{failures}: {d}");
        }
        let first = backoff_delay(1).as_millis() as u64;
        assert!((RECONNECT_BACKOFF_MS_MIN..=2 * RECONNECT_BACKOFF_MS_MIN).contains(&first));
        let samples: std::collections::BTreeSet<_> = (0..50).map(|_| backoff_delay(10)).collect();
        assert!(samples.len() > 1, "no jitter");
    }
}
