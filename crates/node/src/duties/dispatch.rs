//! Leader duty: dispatch pending workflows to workers, and declare lost the workers whose
//! heartbeat lease ran out (ADR 0010; a backstop next to SWIM, which also reports dead workers).
//!
//! Every tick it proposes `DispatchPending`: `decide` picks the oldest pending workflows and the
//! live workers with the most free cores, never over-committing, and emits one
//! `WorkflowDispatched` (with the fence) per assignment; nothing is proposed when nothing fits.
//! Workers learn of a dispatch only from the committed state (their next poll), so the event
//! always precedes the instruction. It deliberately does not talk to workers.

use std::time::{Duration, Instant};

use steward_statemachine::{Command, WorkerId, WorkerStatus};
use tokio::task::JoinHandle;

use crate::api::TEST_WORKER_ID;
use crate::error::Error;
use crate::node::Node;
use crate::worker::hub::Hub;
use crate::Consistency;

/// Pause between dispatch rounds. Default: 50 ms.
pub const DISPATCH_INTERVAL_MS: u64 = 50;
/// Assignments per `DispatchPending` proposal. Default: 256.
pub const DISPATCH_BATCH_MAX: u32 = 256;

/// Aborts the duty when dropped (with the leadership term that started it).
pub(crate) struct DispatchDuty(JoinHandle<()>);

impl Drop for DispatchDuty {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the dispatch duty for this leadership term.
pub(crate) fn spawn(node: Node) -> DispatchDuty {
    DispatchDuty(tokio::spawn(run(node)))
}

async fn run(node: Node) {
    let hub = Hub::for_node(node.id());
    let since = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(DISPATCH_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let command = Command::DispatchPending {
            max_assignments: DISPATCH_BATCH_MAX,
        };
        if !keep_going(node.execute(command).await) {
            return;
        }
        let live = node
            .read(Consistency::Stale, |s| {
                s.workers()
                    .filter(|w| w.status != WorkerStatus::Lost)
                    .map(|w| w.id)
                    .collect::<Vec<WorkerId>>()
            })
            .await
            .unwrap_or_default();
        // The test-only worker (test mode) never polls: the test-only route reports for it, so
        // a lease would declare it lost and fail the jobs that route is driving.
        let leased = |w: &WorkerId| w.0 != TEST_WORKER_ID && hub.expired(w.0, since);
        for worker in live.into_iter().filter(leased) {
            tracing::warn!(worker = worker.0, "worker lease expired; declaring it lost");
            if !keep_going(node.execute(Command::WorkerLost { worker }).await) {
                return;
            }
            hub.forget(worker.0);
        }
    }
}

fn keep_going<T>(result: Result<T, Error>) -> bool {
    match result {
        Ok(_) => true,
        Err(Error::ShuttingDown) => false,
        Err(Error::Rejected(reason)) => {
            tracing::debug!(%reason, "dispatch duty command refused");
            true
        }
        Err(err) => {
            tracing::debug!(%err, "dispatch duty command failed; retrying next tick");
            true
        }
    }
}
