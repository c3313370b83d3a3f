//! The proposer: turns decided commands into Raft entries, batching the commands that queue up
//! while earlier entries are in flight into one proposal (one entry), so that under load many
//! commands share one log entry, one WAL sync and one sled batch.
//!
//! Batching does not change meaning: a proposal's events are applied in order and each is
//! re-checked on its own (a rejected event does not affect its neighbours), and each command gets
//! back exactly the outcomes of its own events. The stamp of a batch is the latest of its
//! commands' stamps (the leader clock is monotonic, so no command's time goes backwards). It does
//! not decide or validate; `Node::execute` does, before queueing.

use std::sync::Arc;

use bytes::Bytes;
use steward_statemachine::{encode_proposal, Event, Outcome, Proposal};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use crate::raft::cluster::write_error;
use crate::raft::{ProposalBytes, Raft};

/// Proposals in flight at once; commands arriving meanwhile wait and are batched. Default: 4.
pub const PROPOSALS_IN_FLIGHT_MAX: usize = 4;
/// Events gathered into one proposal (a single command is never split). Default: 256. Must stay
/// below the state machine's jobs-per-proposal limit, since each submit creates at most one job.
pub const EVENTS_PER_PROPOSAL_MAX: usize = 256;
/// Commands waiting for a batch before `execute` callers wait. Default: 4096.
pub const QUEUED_COMMANDS_MAX: usize = 4_096;

const _: () =
    assert!((EVENTS_PER_PROPOSAL_MAX as u64) < steward_statemachine::JOBS_PER_PROPOSAL_MAX);

struct Pending {
    events: Vec<Event>,
    stamp_ms: u64,
    reply: oneshot::Sender<Result<Vec<Outcome>>>,
}

/// Handle for queueing decided commands.
#[derive(Clone)]
pub(crate) struct Proposer {
    queue: mpsc::Sender<Pending>,
}

impl Proposer {
    /// Starts the batching task for `raft`; it ends when every handle is dropped.
    pub(crate) fn start(raft: Raft) -> Proposer {
        let (queue, pending) = mpsc::channel(QUEUED_COMMANDS_MAX);
        tokio::spawn(run(raft, pending));
        Proposer { queue }
    }

    /// Proposes `events` stamped `stamp_ms` (possibly together with other commands' events) and
    /// returns their outcomes once committed and applied.
    pub(crate) async fn propose(&self, events: Vec<Event>, stamp_ms: u64) -> Result<Vec<Outcome>> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            events,
            stamp_ms,
            reply,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }
}

async fn run(raft: Raft, mut pending: mpsc::Receiver<Pending>) {
    let permits = Arc::new(Semaphore::new(PROPOSALS_IN_FLIGHT_MAX));
    while let Some(first) = pending.recv().await {
        // Waiting for a free slot is what lets a batch grow under load.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut events = first.events.len();
        let mut batch = vec![first];
        while events < EVENTS_PER_PROPOSAL_MAX {
            match pending.try_recv() {
                Ok(next) => {
                    events += next.events.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        tokio::spawn(propose_batch(raft.clone(), batch, permit));
    }
}

async fn propose_batch(raft: Raft, batch: Vec<Pending>, _permit: OwnedSemaphorePermit) {
    let stamp_ms = batch.iter().map(|p| p.stamp_ms).max().unwrap_or(0);
    let mut counts = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    let mut replies = Vec::with_capacity(batch.len());
    for pending in batch {
        counts.push(pending.events.len());
        events.extend(pending.events);
        replies.push(pending.reply);
    }
    let total = events.len();
    let result = write(&raft, Proposal { stamp_ms, events }).await;
    match result {
        Ok(outcomes) if outcomes.len() == total => {
            let mut rest = outcomes.into_iter();
            for (reply, count) in replies.into_iter().zip(counts) {
                // A caller that gave up (cancelled) no longer needs its outcome.
                drop(reply.send(Ok(rest.by_ref().take(count).collect())));
            }
        }
        Ok(outcomes) => {
            let message = format!(
                "apply returned {} outcomes for {total} events",
                outcomes.len()
            );
            for reply in replies {
                drop(reply.send(Err(Error::raft("apply", &message))));
            }
        }
        Err(e) => {
            for reply in replies {
                drop(reply.send(Err(e.clone())));
            }
        }
    }
}

async fn write(raft: &Raft, proposal: Proposal) -> Result<Vec<Outcome>> {
    let bytes = encode_proposal(&proposal).map_err(|e| Error::raft("encode proposal", e))?;
    let written = raft.client_write(ProposalBytes(Bytes::from(bytes))).await;
    let response = written.map_err(|e| write_error(raft, "client_write", e))?;
    Ok(response.data.outcomes)
}
