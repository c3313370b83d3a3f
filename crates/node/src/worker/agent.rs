//! The worker agent: registers with the managers, long-polls for instructions, starts and
//! stops attempts, and serves its output tails. See ADR 0010 for the protocol.
//!
//! Across a leader change nothing stops: attempts keep running, reports are retried until a
//! manager answers (any manager forwards to the leader), and the next poll goes to whichever
//! manager answers. Answers carrying a fence lower than one already seen come from a deposed
//! leader and are ignored. A worker the leader declared lost stops what it runs and registers
//! again; a restarted worker registers, which declares its previous incarnation's attempts
//! lost. It deliberately keeps no state on disk.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use steward_statemachine::{WorkerStatus, WorkflowRef};

use super::attempt::{self, lock, AttemptHandle};
use super::error::{Error, Result};
use super::link::{Answer, Link};
use crate::gossip::{Gossip, GossipConfig, GossipOptions};
use steward_membership::Role;

use super::protocol::{
    AttemptLog, GossipSeed, PollRequest, PollResponse, RegisterRequest, RegisterResponse,
    StopReason, LEASE_MS_MIN, POLL_WAIT_MS_MAX, PROTOCOL_VERSION,
};

/// Finished attempts whose output tails the agent keeps for `logs`. Default: 256.
pub const FINISHED_LOGS_MAX: usize = 256;

/// Everything a worker needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// The worker's id; the same id after a restart marks the old incarnation's work lost.
    pub worker_id: u64,
    /// Cores offered. Minimum: 1 (0 refuses to start).
    pub cores: u32,
    /// Manager API addresses (`host:port` or `http://host:port`); at least one.
    pub managers: Vec<String>,
    /// Informational labels.
    pub labels: BTreeMap<String, String>,
    /// Where the agent's own HTTP endpoint (logs) listens. Default: 127.0.0.1:0.
    pub listen: SocketAddr,
    /// Working directory of every workflow. Default: the current directory.
    pub work_dir: PathBuf,
    /// Silence after which the leader declares the worker lost. Default: 5 000 ms. Minimum:
    /// [`LEASE_MS_MIN`].
    pub lease_ms: u64,
    /// Longest long-poll. Default: a quarter of the lease, at most [`POLL_WAIT_MS_MAX`].
    pub poll_wait_ms: u64,
    /// Ask for an extension when the deadline is this close. Default: 2 000 ms.
    pub extension_lead_ms: u64,
    /// At most one progress report per attempt per interval. Default: 200 ms.
    pub progress_report_interval_ms: u64,
    /// Pause before retrying an undelivered report or a failed poll. Default: 200 ms.
    pub retry_interval_ms: u64,
    /// Join the managers' SWIM membership with role worker (when they run gossip), so a dead
    /// worker is also detected by membership. Default: true.
    pub gossip: bool,
}

impl AgentConfig {
    /// A config with the defaults above.
    pub fn new(worker_id: u64, cores: u32, managers: Vec<String>) -> AgentConfig {
        AgentConfig {
            worker_id,
            cores,
            managers,
            labels: BTreeMap::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            work_dir: PathBuf::from("."),
            lease_ms: 5_000,
            poll_wait_ms: 1_250,
            extension_lead_ms: 2_000,
            progress_report_interval_ms: 200,
            retry_interval_ms: 200,
            gossip: true,
        }
    }

    /// Refuses what cannot work (0 cores, no manager, a lease under the minimum).
    pub fn validate(&self) -> Result<()> {
        if self.cores == 0 {
            return Err(Error::Config {
                field: "cores",
                message: "a worker needs at least 1 core to run anything (got 0)".to_owned(),
            });
        }
        if self.managers.is_empty() {
            return Err(Error::Config {
                field: "join",
                message: "at least one manager address is needed".to_owned(),
            });
        }
        if self.lease_ms < LEASE_MS_MIN {
            return Err(Error::Config {
                field: "lease_ms",
                message: format!("at least {LEASE_MS_MIN} ms (got {})", self.lease_ms),
            });
        }
        Ok(())
    }
}

/// State shared by the agent loop, attempt tasks and the log endpoint.
pub struct Shared {
    /// The configuration.
    pub config: AgentConfig,
    /// Managers.
    pub link: Link,
    fence_seen: AtomicU64,
    stopping: AtomicBool,
    attempts: Mutex<BTreeMap<WorkflowRef, Arc<AttemptHandle>>>,
    finished: Mutex<VecDeque<AttemptLog>>,
    gossip: tokio::sync::Mutex<Option<Gossip>>,
}

impl Shared {
    /// The agent is shutting down.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Drops a finished attempt, keeping its log.
    pub fn forget(&self, target: WorkflowRef) {
        let handle = lock(&self.attempts).remove(&target);
        if let Some(handle) = handle {
            let log = lock(&handle.log).clone();
            let mut finished = lock(&self.finished);
            if finished.len() >= FINISHED_LOGS_MAX {
                finished.pop_front();
            }
            finished.push_back(log);
        }
    }

    /// Output tails of `job` (one workflow by name, or all), running and finished.
    pub fn logs(&self, job: u64, workflow: Option<&str>) -> Vec<AttemptLog> {
        let wanted = |log: &AttemptLog| {
            log.target.job.0 == job && workflow.is_none_or(|name| log.workflow_name == name)
        };
        let mut logs: Vec<AttemptLog> = lock(&self.finished)
            .iter()
            .filter(|log| wanted(log))
            .cloned()
            .collect();
        for handle in lock(&self.attempts).values() {
            let log = lock(&handle.log);
            if wanted(&log) {
                logs.push(log.clone());
            }
        }
        logs.sort_by_key(|log| log.target);
        logs
    }

    fn running(&self) -> Vec<WorkflowRef> {
        lock(&self.attempts).keys().copied().collect()
    }

    fn stop_all(&self, reason: StopReason) {
        for handle in lock(&self.attempts).values() {
            handle.stop.send_replace(Some(reason));
        }
    }
}

/// Runs the worker until `shutdown` resolves. Returns once running attempts were stopped.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::Endpoint {
            what: format!("bind {}", config.listen),
            message: e.to_string(),
        })?;
    let address = listener.local_addr().map_err(|e| Error::Endpoint {
        what: format!("address of {}", config.listen),
        message: e.to_string(),
    })?;
    let shared = Arc::new(Shared {
        link: Link::new(&config.managers),
        config,
        fence_seen: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        attempts: Mutex::new(BTreeMap::new()),
        finished: Mutex::new(VecDeque::new()),
        gossip: tokio::sync::Mutex::new(None),
    });
    let endpoint = tokio::spawn(super::endpoint::serve(listener, shared.clone()));
    tracing::info!(worker = shared.config.worker_id, %address, cores = shared.config.cores, "worker starting");
    tokio::select! {
        () = work(shared.clone(), format!("http://{address}")) => {}
        () = shutdown => {}
    }
    shared.stopping.store(true, Ordering::Relaxed);
    shared.stop_all(StopReason::Superseded);
    let wait_until = Instant::now() + Duration::from_secs(5);
    while !lock(&shared.attempts).is_empty() && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    endpoint.abort();
    if let Some(gossip) = shared.gossip.lock().await.take() {
        gossip.shutdown().await;
    }
    Ok(())
}

async fn work(shared: Arc<Shared>, address: String) {
    let retry = Duration::from_millis(shared.config.retry_interval_ms);
    loop {
        let seeds = register(&shared, &address).await;
        join_gossip(&shared, &address, seeds).await;
        loop {
            match poll(&shared).await {
                PollOutcome::Continue => {}
                PollOutcome::Retry => tokio::time::sleep(retry).await,
                PollOutcome::Register => break,
            }
        }
        // Declared lost (or forgotten): what we run was re-queued elsewhere.
        shared.stop_all(StopReason::Superseded);
    }
}

/// Joins SWIM with role worker once, through the managers' gossip addresses. Skipped (logged)
/// when gossip is off, the managers run none, or a manager uses this worker's id.
async fn join_gossip(shared: &Shared, address: &str, seeds: Vec<GossipSeed>) {
    let mut slot = shared.gossip.lock().await;
    let id = shared.config.worker_id;
    if slot.is_some() || !shared.config.gossip || seeds.is_empty() {
        return;
    }
    if seeds.iter().any(|seed| seed.id == id) {
        tracing::warn!(
            worker = id,
            "a manager has this worker's id; not joining gossip"
        );
        return;
    }
    let ip = address
        .trim_start_matches("http://")
        .parse::<SocketAddr>()
        .map_or(shared.config.listen.ip(), |addr| addr.ip());
    let options = GossipOptions {
        id,
        role: Role::Worker,
        bind: SocketAddr::new(ip, 0),
        seeds: seeds.iter().map(|seed| seed.addr).collect(),
        config: GossipConfig::default(),
    };
    match Gossip::start(options).await {
        Ok((gossip, mut events)) => {
            tracing::info!(worker = id, addr = %gossip.local_addr(), "joined gossip as a worker");
            // The worker does not act on membership events; drain them so none pile up.
            tokio::spawn(async move { while events.recv().await.is_some() {} });
            *slot = Some(gossip);
        }
        Err(err) => tracing::warn!(worker = id, %err, "joining gossip failed; heartbeats only"),
    }
}

async fn register(shared: &Shared, address: &str) -> Vec<GossipSeed> {
    let config = &shared.config;
    let request = RegisterRequest {
        version: PROTOCOL_VERSION,
        worker: config.worker_id,
        cores: config.cores,
        address: address.to_owned(),
        labels: config.labels.clone(),
        lease_ms: config.lease_ms,
    };
    let retry = Duration::from_millis(config.retry_interval_ms);
    loop {
        match shared
            .link
            .post::<_, RegisterResponse>("/v1/workers/register", &request, Duration::ZERO)
            .await
        {
            Answer::Ok(answer) => {
                shared.link.learn(&answer.managers);
                shared
                    .fence_seen
                    .fetch_max(answer.fence_token, Ordering::Relaxed);
                tracing::info!(
                    worker = config.worker_id,
                    fence = answer.fence_token,
                    lost_attempts = answer.lost_attempts,
                    "registered"
                );
                return answer.gossip_seeds;
            }
            Answer::Refused { status, body } => {
                tracing::warn!(status, %body, "registration refused; retrying");
            }
            Answer::Retry(why) => tracing::debug!(%why, "registration failed; retrying"),
        }
        tokio::time::sleep(retry).await;
    }
}

enum PollOutcome {
    Continue,
    Retry,
    Register,
}

async fn poll(shared: &Arc<Shared>) -> PollOutcome {
    let config = &shared.config;
    let wait_ms = config.poll_wait_ms.min(POLL_WAIT_MS_MAX);
    let request = PollRequest {
        version: PROTOCOL_VERSION,
        running: shared.running(),
        wait_ms,
        lease_ms: config.lease_ms,
    };
    let path = format!("/v1/workers/{}/poll", config.worker_id);
    let sent_at = Instant::now();
    let answer = match shared
        .link
        .post::<_, PollResponse>(&path, &request, Duration::from_millis(wait_ms))
        .await
    {
        Answer::Ok(answer) => answer,
        Answer::Refused { status, body } => {
            tracing::warn!(status, %body, "poll refused");
            return PollOutcome::Retry;
        }
        Answer::Retry(why) => {
            tracing::debug!(%why, "poll failed");
            return PollOutcome::Retry;
        }
    };
    let seen = shared
        .fence_seen
        .fetch_max(answer.fence_token, Ordering::Relaxed);
    if answer.fence_token < seen {
        tracing::info!(
            fence = answer.fence_token,
            seen,
            "ignoring instructions from a deposed leader"
        );
        return PollOutcome::Retry;
    }
    if answer.status != Some(WorkerStatus::Live) && answer.status != Some(WorkerStatus::Draining) {
        tracing::warn!(status = ?answer.status, "the leader does not count this worker as live; registering again");
        return PollOutcome::Register;
    }
    apply_answer(shared, answer, sent_at);
    PollOutcome::Continue
}

fn apply_answer(shared: &Arc<Shared>, answer: PollResponse, sent_at: Instant) {
    let mut attempts = lock(&shared.attempts);
    for stop in &answer.stops {
        if let Some(handle) = attempts.get(&stop.target) {
            tracing::info!(target = ?stop.target, reason = ?stop.reason, "stopping attempt");
            handle.stop.send_replace(Some(stop.reason));
        }
    }
    let known: BTreeSet<WorkflowRef> = attempts.keys().copied().collect();
    for assignment in answer.assignments {
        if known.contains(&assignment.target) {
            continue;
        }
        tracing::info!(target = ?assignment.target, fence = assignment.fence_token, "assignment received");
        let target = assignment.target;
        attempts.insert(target, attempt::start(shared.clone(), assignment));
    }
    for deadline in answer.deadlines {
        if let Some(handle) = attempts.get(&deadline.target) {
            // Measured from when the poll was sent: errs on the early side.
            let at = sent_at + Duration::from_millis(deadline.remaining_ms);
            *lock(&handle.deadline) = Some(at);
        }
    }
}
