//! The UDP adapter around `steward-membership` (SWIM + Lifeguard + Vivaldi, ADR 0005): one
//! socket, one task owning the state machine, a published [`Snapshot`] for readers and a
//! channel of [`MemberEvent`]s.
//!
//! [`Gossip::start`] binds the socket and spawns the task (`task.rs`); the handle reads the
//! latest snapshot without locking the task and stops it (gracefully with a LEFT announcement,
//! or as a crash in tests). It deliberately does not act on events: the node maps a dead
//! worker to `WorkerLost` and only reports managers, since Raft owns manager leadership.

mod config;
mod snapshot;
mod task;
mod views;
pub(crate) mod wiring;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use steward_membership::{MemberEvent, Membership, NodeId, Role};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;

pub use config::GossipConfig;
pub use snapshot::{role_name, state_name, GossipMetrics, MemberView, NodeCoordinate, Snapshot};
pub use task::SNAPSHOT_REFRESH_MS;
pub use views::{Coordinate, CoordinateEntry, CoordinatesResponse, MemberEntry, MembersResponse};

use crate::error::{Error, Result};
use crate::transport::link_filter::LinkFilter;
use task::{StopMode, Task};

/// Member events buffered for the reader before new ones are dropped (and counted).
pub const EVENT_CHANNEL_CAPACITY: usize = 4096;
/// How long [`Gossip::shutdown`] waits for the task to send its LEFT announcement.
pub const SHUTDOWN_WAIT_MS: u64 = 2_000;

/// What [`Gossip::start`] needs.
#[derive(Debug, Clone)]
pub struct GossipOptions {
    /// This node's gossip id (the node id; a worker uses its `WorkerId`).
    pub id: u64,
    /// This node's role.
    pub role: Role,
    /// UDP address to bind (port 0 picks one; the bound address is advertised, so bind a
    /// routable IP, not `0.0.0.0`).
    pub bind: SocketAddr,
    /// Gossip addresses to contact on start; empty starts a new cluster.
    pub seeds: Vec<SocketAddr>,
    /// Timings.
    pub config: GossipConfig,
}

/// Handle on a running gossip task. Cheap to clone.
#[derive(Clone)]
pub struct Gossip {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    view: watch::Receiver<Arc<Snapshot>>,
    stop: watch::Sender<StopMode>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Gossip {
    /// Binds the UDP socket, joins through `options.seeds` and spawns the task. Returns the
    /// handle and the member-event stream.
    pub async fn start(options: GossipOptions) -> Result<(Gossip, mpsc::Receiver<MemberEvent>)> {
        Self::start_with_filter(options, Arc::default()).await
    }

    /// Like [`Gossip::start`], but datagrams to and from addresses `filter` blocks are dropped
    /// (a manager in test mode, partitioned by the harness).
    pub async fn start_with_filter(
        options: GossipOptions,
        filter: Arc<LinkFilter>,
    ) -> Result<(Gossip, mpsc::Receiver<MemberEvent>)> {
        let socket = UdpSocket::bind(options.bind)
            .await
            .map_err(|e| Error::transport(format!("bind gossip UDP {}", options.bind), e))?;
        let addr = socket
            .local_addr()
            .map_err(|e| Error::transport(format!("local address of {}", options.bind), e))?;
        let membership = Membership::new(
            options.config.membership_config(),
            NodeId(options.id),
            addr,
            options.role,
            rand::random(),
        )
        .map_err(|e| Error::Config {
            field: "gossip",
            message: e.to_string(),
        })?;
        let base = tokio::time::Instant::now();
        let first = Snapshot::take(
            &membership,
            addr,
            options.role,
            &GossipMetrics::default(),
            0,
        );
        let (view_tx, view) = watch::channel(Arc::new(first));
        let (events_tx, events) = mpsc::channel(EVENT_CHANNEL_CAPACITY);
        let (stop, stop_rx) = watch::channel(StopMode::Run);
        let task = Task {
            membership,
            socket,
            addr,
            role: options.role,
            seeds: options.seeds,
            base,
            view: view_tx,
            events: events_tx,
            stop: stop_rx,
            filter,
        };
        let handle = tokio::spawn(task.run());
        tracing::info!(id = options.id, %addr, role = role_name(options.role), "gossip started");
        let inner = Inner {
            addr,
            view,
            stop,
            task: Mutex::new(Some(handle)),
        };
        Ok((
            Gossip {
                inner: Arc::new(inner),
            },
            events,
        ))
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The latest published view.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.view.borrow().clone()
    }

    /// A receiver notified on every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.inner.view.clone()
    }

    /// Leaves gracefully (LEFT is announced to the live members) and waits, at most
    /// [`SHUTDOWN_WAIT_MS`], for the task to finish. Idempotent.
    pub async fn shutdown(&self) {
        self.stop(StopMode::Leave).await;
    }

    /// Stops without a word, as a crash would: the others will suspect, then declare this node
    /// dead. For tests.
    pub async fn kill(&self) {
        self.stop(StopMode::Crash).await;
    }

    async fn stop(&self, mode: StopMode) {
        self.inner.stop.send_if_modified(|current| {
            let first = *current == StopMode::Run;
            if first {
                *current = mode;
            }
            first
        });
        let Some(mut handle) = self.inner.task.lock().await.take() else {
            return;
        };
        let wait = Duration::from_millis(SHUTDOWN_WAIT_MS);
        if tokio::time::timeout(wait, &mut handle).await.is_err() {
            tracing::warn!(addr = %self.inner.addr, "gossip task did not stop in time; aborted");
            handle.abort();
        }
    }
}
