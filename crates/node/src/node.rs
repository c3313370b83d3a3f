//! [`Node`]: one manager. Opens the storage, starts openraft, the Raft TCP listener and the
//! leader duties, and offers the operations the HTTP API needs.
//!
//! It does not bind the HTTP API (the api layer's `serve` does) and does not retry on behalf of
//! callers: a follower answers `NotLeader` with the leader's address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::ServerState;
use steward_log::{SyncPolicy, Wal, WalOptions};
use steward_statemachine::{decide, Command, Outcome, State};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::config::{NodeConfig, PeerConfig, SyncPolicyConfig};
use crate::duties::clock::LeaderClock;
use crate::error::{Error, Result};
use crate::gossip::{self, Gossip};
use crate::raft::cluster::{self, fatal_error, leader_api_addr};
use crate::raft::election::{Campaigner, ElectionTiming};
use crate::raft::handler::RaftHandler;
use crate::raft::log_store::LogStore;
use crate::raft::network::NetworkFactory;
use crate::raft::proposer::Proposer;
use crate::raft::read_floor::ReadFloor;
use crate::raft::resume::WalReplay;
use crate::raft::state_machine::{Shared, StateMachineStore};
use crate::raft::status::{self, ClusterStatus, NodeMetrics, TransferReport};
use crate::raft::transfer::{self, TransferGate};
use crate::raft::{PeerNode, Raft};
use crate::transport::client::PeerPool;
use crate::transport::link_filter::{DroppedCounts, LinkFilter};
use crate::transport::server::{BoundListener, RaftServer};
use crate::transport::TransportStats;

/// How long the syncing appender waits for company under `sync_policy = batch`. Default: 200 µs.
pub const BATCH_SYNC_DELAY_US: u64 = 200;

/// How a read sees the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// openraft read-index on the leader: sees every write acknowledged before the read began.
    Linearizable,
    /// This node's applied state, on any node; may be behind.
    Stale,
}

/// One manager. Cheap to clone; call [`Node::shutdown`] to stop it.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    config: NodeConfig,
    raft: Raft,
    log: LogStore,
    sm: Arc<Shared>,
    pool: Arc<PeerPool>,
    stats: Arc<TransportStats>,
    links: Arc<LinkFilter>,
    clock: LeaderClock,
    gate: TransferGate,
    proposer: Proposer,
    read_floor: ReadFloor,
    raft_addr: SocketAddr,
    gossip: Option<Gossip>,
    server: Mutex<Option<RaftServer>>,
    duties: Mutex<Option<JoinHandle<()>>>,
    stop: watch::Sender<bool>,
    closed: AtomicBool,
}

fn wal_options(policy: SyncPolicyConfig) -> WalOptions {
    let sync_policy = match policy {
        SyncPolicyConfig::Always => SyncPolicy::Always,
        SyncPolicyConfig::Batch => SyncPolicy::Batch {
            max_delay: Duration::from_micros(BATCH_SYNC_DELAY_US),
        },
        SyncPolicyConfig::Never => SyncPolicy::Never,
    };
    WalOptions {
        sync_policy,
        ..WalOptions::default()
    }
}

/// The opened storage, and the Raft listener when it was bound while the state was rebuilt.
struct Opened {
    log: LogStore,
    sm: StateMachineStore,
    early_listener: Option<BoundListener>,
}

/// Opens the WAL and sled side by side, then rebuilds the state. Between the two, the Raft
/// address is bound (not served) so that the leader's connection waits in the accept queue
/// instead of being refused (ADR 0024), unless the stored vote is this node's own: then it
/// may have been the leader, and followers probing its port must keep finding it closed until
/// it serves (`raft/election.rs`, `leader_alive`).
async fn open_storage(config: &NodeConfig) -> Result<Opened> {
    let (sled_dir, snapshot_dir) = (
        config.data_dir.join("sled"),
        config.data_dir.join("snapshots"),
    );
    // sled recovers while the WAL opens (ADR 0023).
    let opening_view = StateMachineStore::open_view_in_background(&sled_dir)?;
    let wal_dir = config.data_dir.join("wal");
    let options = wal_options(config.sync_policy);
    let dir = wal_dir.clone();
    let started = std::time::Instant::now();
    let opened = tokio::task::spawn_blocking(move || Wal::open(&dir, options))
        .await
        .map_err(|e| Error::storage("open the WAL", e))?;
    let (wal, report) =
        opened.map_err(|e| Error::storage(format!("open the WAL in {}", wal_dir.display()), e))?;
    tracing::info!(
        dir = %wal_dir.display(),
        ?report,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "WAL opened"
    );
    let wal = Arc::new(wal);
    let log = LogStore::new(wal.clone(), &wal_dir).await?;
    let purged_index = log.last_purged().await.map_or(0, |id| id.index);
    let early_listener = match log.voted_for().await {
        Some(candidate) if candidate == config.id => None,
        _ => Some(BoundListener::bind(config.raft_addr).await?),
    };
    let folded = Arc::clone(&wal);
    let sm = tokio::task::spawn_blocking(move || {
        let replay = WalReplay {
            wal: &folded,
            purged_index,
        };
        StateMachineStore::open_with(opening_view, &snapshot_dir, Some(replay))
    })
    .await
    .map_err(|e| Error::storage("open the state machine", e))??;
    // The fold is done: the next segment is prepared beside the writes, not beside the fold.
    wal.prepare_spare();
    Ok(Opened {
        log,
        sm,
        early_listener,
    })
}

impl Node {
    /// Opens storage (WAL, sled, snapshot), starts openraft, the Raft TCP listener and leader
    /// duties; bootstraps the cluster when `initial_members` is non-empty and the log is empty.
    /// Does not bind the HTTP API.
    pub async fn start(config: NodeConfig) -> Result<Node> {
        config.validate()?;
        let raft_config = Arc::new(config.openraft_config()?);
        let Opened {
            mut log,
            sm,
            early_listener,
        } = open_storage(&config).await?;
        let listener = match early_listener {
            Some(listener) => listener,
            None => BoundListener::bind(config.raft_addr).await?,
        };
        let fresh = is_fresh(&mut log).await?;
        let stats = Arc::new(TransportStats::default());
        let links = Arc::new(LinkFilter::default());
        let pool = Arc::new(PeerPool::with_filter(stats.clone(), links.clone()));
        let network = NetworkFactory::new(config.id, pool.clone());
        let shared = sm.shared();
        let raft = Raft::new(config.id, raft_config, network, log.clone(), sm)
            .await
            .map_err(|e| fatal_error("start openraft", e))?;
        let listened = listen_and_bootstrap(
            listener,
            &raft,
            log.clone(),
            &config,
            stats.clone(),
            links.clone(),
            fresh,
        );
        let server = match listened.await {
            Ok(server) => server,
            Err(e) => {
                // Stop the core we just started; the start error is what the caller needs.
                let _ignored = raft.shutdown().await;
                return Err(e);
            }
        };
        let raft_addr = server.local_addr();
        let (gossip, gossip_events) =
            match gossip::wiring::start_for_manager(&config, raft_addr, links.clone()).await {
                Ok(started) => started.unzip(),
                Err(e) => {
                    // Only openraft and the listener run yet; the start error is what matters.
                    let _ignored = raft.shutdown().await;
                    server.shutdown().await;
                    return Err(e);
                }
            };
        let proposer = Proposer::start(raft.clone());
        let (stop, stopped) = watch::channel(false);
        let node = Node {
            inner: Arc::new(Inner {
                config,
                raft,
                log,
                sm: shared,
                pool,
                stats,
                links,
                clock: LeaderClock::default(),
                gate: TransferGate::default(),
                proposer,
                read_floor: ReadFloor::default(),
                raft_addr,
                gossip,
                server: Mutex::new(Some(server)),
                duties: Mutex::new(None),
                stop,
                closed: AtomicBool::new(false),
            }),
        };
        let campaigner = Campaigner {
            me: node.id(),
            raft: node.inner.raft.clone(),
            log: node.inner.log.clone(),
            pool: node.inner.pool.clone(),
            timing: ElectionTiming::from_config(&node.inner.config),
        };
        // Detached: it ends with the stop signal or when openraft stops.
        let _campaigner = campaigner.spawn(node.inner.stop.subscribe());
        // Detached: it ends with the stop signal or when openraft stops.
        let _snapshots = crate::raft::snapshot_schedule::spawn(
            node.inner.raft.clone(),
            node.id(),
            node.inner.config.snapshot_after_entries,
            node.inner.stop.subscribe(),
        );
        let duties = crate::duties::spawn_supervisor(node.clone(), stopped);
        *node.inner.duties.lock().await = Some(duties);
        if let Some(events) = gossip_events {
            // Detached: it ends with the stop signal or with the gossip task.
            let _handler = gossip::wiring::spawn_event_handler(
                node.clone(),
                events,
                node.inner.stop.subscribe(),
            );
        }
        tracing::info!(id = node.id(), %raft_addr, fresh, "node started");
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.inner.config.id
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// The Raft transport address actually bound (differs from the config with port 0).
    pub fn raft_addr(&self) -> SocketAddr {
        self.inner.raft_addr
    }

    /// This node's gossip view (members with state, incarnation, RTT estimate and quality;
    /// coordinates; metrics); `None` when gossip is disabled.
    pub fn gossip(&self) -> Option<Arc<gossip::Snapshot>> {
        self.inner.gossip.as_ref().map(Gossip::snapshot)
    }

    /// The gossip members other than this node (empty when gossip is disabled).
    pub fn members(&self) -> Vec<gossip::MemberView> {
        self.gossip().map(|s| s.members.clone()).unwrap_or_default()
    }

    /// Every known Vivaldi coordinate, this node's included (empty when gossip is disabled).
    pub fn coordinates(&self) -> Vec<gossip::NodeCoordinate> {
        self.gossip().map(|s| s.coordinates()).unwrap_or_default()
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        Ok(())
    }

    fn not_leader(&self, leader_id: Option<u64>) -> Error {
        Error::NotLeader {
            leader_id,
            leader_api_addr: leader_api_addr(&self.inner.raft, leader_id),
        }
    }

    /// Leader only: waits until the state has applied the term's read floor, stamps `now`
    /// (monotonic), runs `decide`, proposes, waits for commit and apply, and returns the
    /// command's outcome. A follower answers `NotLeader`; a command
    /// `decide` refuses is `Rejected` and nothing is proposed.
    pub async fn execute(&self, command: Command) -> Result<Outcome> {
        self.check_open()?;
        if let Some(target) = self.inner.gate.target() {
            return Err(self.not_leader(Some(target)));
        }
        let (state, leader) = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow();
            (m.state, m.current_leader)
        };
        if state != ServerState::Leader || leader != Some(self.id()) {
            return Err(self.not_leader(leader));
        }
        // `decide` must see every entry committed before this term: a leader just elected (or
        // restarted) may not have applied them yet, and would refuse a cancel of a job it has
        // not applied with a false "not found" (found by the harness, seed 23 of the soak at
        // 30ef856). `apply` re-checks what it folds, but a refusal is never proposed.
        self.reach_read_floor().await?;
        let inner = Arc::clone(&self.inner);
        let decided = self
            .inner
            .sm
            .read_async(move |state| {
                let stamp_ms = inner.clock.stamp(state.globals().last_stamp_ms);
                decide(state, command, stamp_ms).map(|events| (events, stamp_ms))
            })
            .await?;
        let (events, stamp_ms) = decided.map_err(Error::Rejected)?;
        if events.is_empty() {
            return Ok(Outcome::Applied);
        }
        let outcomes = self.inner.proposer.propose(events, stamp_ms).await?;
        Ok(Outcome::for_command(&outcomes))
    }

    /// Runs `f` on the applied state. `Linearizable` uses openraft's read-index on the leader
    /// (a follower answers `NotLeader`); `Stale` reads this node's state.
    pub async fn read<R: Send + 'static>(
        &self,
        consistency: Consistency,
        f: impl FnOnce(&State) -> R + Send + 'static,
    ) -> Result<R> {
        self.check_open()?;
        if consistency == Consistency::Linearizable {
            self.inner
                .raft
                .ensure_linearizable()
                .await
                .map_err(|e| match e {
                    RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)) => {
                        self.not_leader(forward.leader_id)
                    }
                    // This node thinks it leads but a quorum did not confirm it (just elected, or
                    // partitioned): for the caller that is "no known leader right now".
                    RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)) => {
                        Error::NotLeader {
                            leader_id: None,
                            leader_api_addr: None,
                        }
                    }
                    RaftError::Fatal(fatal) => fatal_error("ensure_linearizable", fatal),
                })?;
            self.reach_read_floor().await?;
        }
        self.inner.sm.read_async(f).await
    }

    /// Waits until the state has applied this leader's read floor for its term (see
    /// `raft::read_floor`); a leader that cannot get there within an election timeout answers
    /// "no known leader" and the client retries.
    async fn reach_read_floor(&self) -> Result<()> {
        let (term, last_log_index) = {
            let metrics = self.inner.raft.metrics();
            let m = metrics.borrow();
            (m.current_term, m.last_log_index.unwrap_or(0))
        };
        let floor = self.inner.read_floor.for_term(term, last_log_index);
        let mut applied = self.inner.sm.subscribe();
        let patience = Duration::from_millis(self.inner.config.election_timeout_max_ms);
        let reached = tokio::time::timeout(patience, async {
            applied.wait_for(|index| *index >= floor).await.map(|_| ())
        })
        .await;
        match reached {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::NotLeader {
                leader_id: None,
                leader_api_addr: None,
            }),
        }
    }

    /// Waits until `f(&State)` is true (re-checked after every applied batch) or `deadline`
    /// passes; returns whether it became true. Reads this node's state (no leader needed).
    pub async fn wait_until(
        &self,
        deadline: Duration,
        f: impl Fn(&State) -> bool + Send + Sync + 'static,
    ) -> Result<bool> {
        self.check_open()?;
        let f = Arc::new(f);
        let mut applied = self.inner.sm.subscribe();
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let check = Arc::clone(&f);
            if self.inner.sm.read_async(move |state| check(state)).await? {
                return Ok(true);
            }
            match tokio::time::timeout_at(until, applied.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::ShuttingDown),
                Err(_) => return Ok(false),
            }
        }
    }

    /// This node's view of the group: members, leader, term, commit and applied index (and each
    /// member's matched index on the leader).
    pub fn cluster_status(&self) -> ClusterStatus {
        let metrics = self.inner.raft.metrics().borrow().clone();
        status::cluster_status(
            &metrics,
            &self.inner.sm.raft_meta(),
            self.inner.log.committed_index(),
        )
    }

    /// The hash of the applied state (`steward_statemachine::state_hash`) and the last index
    /// applied to it, read together. Costs one pass over the whole state.
    pub fn state_hash(&self) -> (u64, u64) {
        self.inner.sm.read(|state| {
            let applied = state.globals().last_applied.0;
            (applied, steward_statemachine::state_hash(state))
        })
    }

    /// Leader only: adds `peer` as a learner, waits until it caught up, promotes it to voter.
    /// Refuses an id that was removed before.
    pub async fn add_member(&self, peer: PeerConfig) -> Result<()> {
        self.check_open()?;
        cluster::add_member(&self.inner.raft, &self.inner.sm.raft_meta(), peer).await
    }

    /// Leader only: removes member `id`; the id is never reused.
    pub async fn remove_member(&self, id: u64) -> Result<()> {
        self.check_open()?;
        cluster::remove_member(&self.inner.raft, &self.inner.sm.raft_meta(), id).await
    }

    /// Leader only: hands leadership to voter `to` once it has caught up (ADR 0009), and
    /// reports how long the group had no leader.
    pub async fn transfer_leader(&self, to: u64) -> Result<TransferReport> {
        self.check_open()?;
        let lease_ms = self.inner.config.election_timeout_max_ms;
        let inner = &self.inner;
        transfer::transfer_leader(
            &inner.raft,
            &inner.pool,
            &inner.gate,
            self.id(),
            to,
            lease_ms,
        )
        .await
    }

    /// Term, indexes, WAL and transport counters, jobs by status.
    pub fn metrics(&self) -> NodeMetrics {
        let m = self.inner.raft.metrics().borrow().clone();
        let published = self.inner.sm.published();
        let jobs_by_status = published
            .jobs_by_status
            .iter()
            .map(|(status, count)| (status.name().to_string(), *count))
            .collect();
        let idempotency_keys = published.idempotency_keys;
        NodeMetrics {
            node_id: self.id(),
            state: status::state_name(m.state),
            term: m.current_term,
            leader_id: m.current_leader,
            commit_index: self.inner.log.committed_index(),
            applied_index: m.last_applied.map(|l| l.index),
            last_log_index: m.last_log_index,
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            wal: self.inner.log.wal_metrics(),
            transport: self.inner.stats.snapshot(),
            jobs_by_status,
            idempotency_keys,
        }
    }

    /// Test only (`test_mode`): shifts this node's leader clock by `offset_ms`.
    pub fn set_clock_offset_ms(&self, offset_ms: i64) -> Result<()> {
        if !self.inner.config.test_mode {
            return Err(Error::Config {
                field: "test_mode",
                message: "clock offset is test-only".into(),
            });
        }
        self.inner.clock.set_offset_ms(offset_ms);
        Ok(())
    }

    /// Test only (`test_mode`): partitions this node from the members in `blocked` (empty
    /// heals). Raft requests to and from them are dropped in the transport, and gossip
    /// datagrams to and from their Raft addresses (the default gossip address). The HTTP API
    /// is not affected. Returns what the filter dropped so far.
    pub fn set_partition(&self, blocked: BTreeSet<u64>) -> Result<DroppedCounts> {
        if !self.inner.config.test_mode {
            return Err(Error::Config {
                field: "test_mode",
                message: "partitions are test-only".into(),
            });
        }
        let gossip_addrs = self
            .cluster_status()
            .members
            .iter()
            .filter(|member| blocked.contains(&member.id))
            .map(|member| member.raft_addr)
            .collect();
        tracing::warn!(
            ?blocked,
            "test partition: links to these peers are now blocked"
        );
        self.inner.links.set_blocked(blocked, gossip_addrs);
        Ok(self.inner.links.dropped())
    }

    /// Stops the duties, openraft and the listener. Idempotent. The data directory can be
    /// reopened by a new `Node` once every clone of this one is dropped.
    pub async fn shutdown(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.stop.send_replace(true);
        if let Some(gossip) = &self.inner.gossip {
            gossip.shutdown().await;
        }
        if let Some(duties) = self.inner.duties.lock().await.take() {
            duties.abort();
            // A cancelled or panicked supervisor has nothing left to stop.
            let _ignored = duties.await;
        }
        let raft = self.inner.raft.shutdown().await;
        if let Some(server) = self.inner.server.lock().await.take() {
            server.shutdown().await;
        }
        self.inner.sm.flush();
        raft.map_err(|e| Error::raft("shutdown", e))
    }
}

/// True when this node never voted and its log is empty: only then may it bootstrap.
async fn is_fresh(log: &mut LogStore) -> Result<bool> {
    let vote = log
        .read_vote()
        .await
        .map_err(|e| Error::storage("read the vote", e))?;
    let state = log
        .get_log_state()
        .await
        .map_err(|e| Error::storage("read the log state", e))?;
    Ok(vote.is_none() && state.last_log_id.is_none())
}

/// Serves the Raft listener and, on a fresh node with initial members, bootstraps the group.
async fn listen_and_bootstrap(
    listener: BoundListener,
    raft: &Raft,
    log: LogStore,
    config: &NodeConfig,
    stats: Arc<TransportStats>,
    links: Arc<LinkFilter>,
    fresh: bool,
) -> Result<RaftServer> {
    let lease = Duration::from_millis(config.election_timeout_max_ms);
    let handler = Arc::new(RaftHandler::new(raft.clone(), log, lease));
    let server = listener.serve(handler, stats, links);
    if fresh && !config.initial_members.is_empty() {
        if let Err(e) = bootstrap(raft, &config.initial_members).await {
            server.shutdown().await;
            return Err(e);
        }
    }
    Ok(server)
}

async fn bootstrap(raft: &Raft, members: &[PeerConfig]) -> Result<()> {
    let nodes: BTreeMap<u64, PeerNode> = members
        .iter()
        .map(|p| {
            (
                p.id,
                PeerNode {
                    raft_addr: p.raft_addr,
                    api_addr: p.api_addr,
                },
            )
        })
        .collect();
    let ids: BTreeSet<u64> = nodes.keys().copied().collect();
    match raft.initialize(nodes).await {
        Ok(()) => {
            tracing::info!(?ids, "bootstrapped the group");
            Ok(())
        }
        // Another member initialized first and already replicated to us.
        Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(Error::raft("initialize", e)),
    }
}
