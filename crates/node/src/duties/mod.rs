//! Leader duties: what only the leader does, started when this node becomes leader and aborted
//! the moment it is not (watching openraft's metrics).
//!
//! On becoming leader: propose `BecomeLeader` (the state machine answers with `LeaderChanged` and
//! a fence token one higher than any before), then run the timeout loop (`CheckTimeouts`, which
//! scans every non-terminal job in the replicated state, so tracking resumes with the original
//! `started_at`) and the idempotency expiry loop. The duties only propose commands; `decide` and
//! `apply` decide what they mean. Worker dispatch and lease checks run in `dispatch.rs`.

pub mod clock;
mod dispatch;

use std::time::Duration;

use openraft::ServerState;
use steward_statemachine::{Command, NodeId as SmNodeId, Outcome, Rejection, Term};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::error::Error;
use crate::node::Node;

/// Pause between attempts to propose `BecomeLeader` after a transient failure. Default: 100 ms.
pub const BECOME_LEADER_RETRY_MS: u64 = 100;

/// The duties of one leadership term.
struct LeaderTerm {
    term: u64,
    task: JoinHandle<()>,
}

impl Drop for LeaderTerm {
    fn drop(&mut self) {
        // Aborting drops the task at its next await: a deposed leader stops at once.
        self.task.abort();
    }
}

/// Watches leadership and runs the duties while this node leads. Ends when `stop` flips.
pub(crate) fn spawn_supervisor(node: Node, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut metrics = node.raft().metrics();
        let mut current: Option<LeaderTerm> = None;
        loop {
            let (state, leader, term) = {
                let m = metrics.borrow_and_update();
                (m.state, m.current_leader, m.current_term)
            };
            let leading = state == ServerState::Leader && leader == Some(node.id());
            match (&current, leading) {
                (Some(duties), true) if duties.term == term => {}
                (_, true) => {
                    tracing::info!(
                        node = node.id(),
                        term,
                        "became leader; starting leader duties"
                    );
                    current = Some(LeaderTerm {
                        term,
                        task: tokio::spawn(run_term(node.clone(), term)),
                    });
                }
                (Some(_), false) => {
                    tracing::info!(node = node.id(), "no longer leader; stopping leader duties");
                    current = None;
                }
                (None, false) => {}
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { break },
                _ = stop.changed() => break,
            }
        }
        drop(current);
    })
}

/// Proposes a duty command; `false` means stop (shutting down).
async fn propose(node: &Node, command: Command) -> bool {
    let name = duty_name(&command);
    match node.execute(command).await {
        Ok(_) => true,
        Err(Error::ShuttingDown) => false,
        // Writes pause during a leadership transfer; if leadership is really lost, the
        // supervisor aborts this task.
        Err(Error::NotLeader { .. }) => true,
        Err(Error::Rejected(reason)) => {
            tracing::debug!(duty = name, %reason, "duty rejected");
            true
        }
        Err(e) => {
            tracing::warn!(duty = name, error = %e, "duty failed; retrying next tick");
            true
        }
    }
}

fn duty_name(command: &Command) -> &'static str {
    match command {
        Command::BecomeLeader { .. } => "become_leader",
        Command::CheckTimeouts => "check_timeouts",
        Command::ExpireIdempotency => "expire_idempotency",
        _ => "other",
    }
}

async fn run_term(node: Node, term: u64) {
    let become_leader = || Command::BecomeLeader {
        term: Term(term),
        node: SmNodeId(node.id()),
    };
    loop {
        match node.execute(become_leader()).await {
            Ok(outcome) => {
                if let Outcome::LeaderChanged { fence_token, .. } = outcome {
                    tracing::info!(
                        node = node.id(),
                        term,
                        fence = fence_token.0,
                        "fence raised"
                    );
                }
                break;
            }
            Err(Error::ShuttingDown) => return,
            // `decide` ran on a state that had not yet applied everything committed, so its
            // fence was one too low: wait for apply to catch up and propose again.
            Err(Error::Rejected(Rejection::StaleLeader { current_term, .. }))
                if current_term.0 < term =>
            {
                tracing::debug!(term, "BecomeLeader raced apply; proposing again");
                tokio::time::sleep(Duration::from_millis(BECOME_LEADER_RETRY_MS)).await;
            }
            // Already recorded for this term (a re-elected node, a duplicate): nothing to raise.
            Err(Error::Rejected(_)) => break,
            Err(e) => {
                tracing::warn!(error = %e, "proposing BecomeLeader failed; retrying");
                tokio::time::sleep(Duration::from_millis(BECOME_LEADER_RETRY_MS)).await;
            }
        }
    }
    let _dispatch = dispatch::spawn(node.clone());
    let config = node.config();
    let mut timeouts =
        tokio::time::interval(Duration::from_millis(config.timeout_check_interval_ms));
    let mut expiry =
        tokio::time::interval(Duration::from_millis(config.idempotency_expiry_interval_ms));
    timeouts.set_missed_tick_behavior(MissedTickBehavior::Delay);
    expiry.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let keep_going = tokio::select! {
            _ = timeouts.tick() => propose(&node, Command::CheckTimeouts).await,
            _ = expiry.tick() => propose(&node, Command::ExpireIdempotency).await,
        };
        if !keep_going {
            return;
        }
    }
}
