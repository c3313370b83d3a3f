//! The invariants checked after a run, each named after what it protects, over the history
//! and the final state read from every node.
//!
//! It deliberately reads the final state through the public API (stale reads on each node once
//! every node has applied the same index), so it checks what a client could see.

use std::collections::{BTreeMap, BTreeSet};

use steward_node::api::types::JobView;

use crate::history::{op_job, History, Op, OpKind, Outcome};
use crate::linearizability::{is_linearizable, Action, LinOp, OPS_PER_JOB_MAX};
use crate::workload::status_name;

/// A violated invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The invariant's name.
    pub check: &'static str,
    /// The job concerned, if one.
    pub job: Option<u64>,
    /// Time of the operation that shows it (ms since the run began).
    pub at_ms: u64,
    /// What is wrong.
    pub message: String,
}

/// Every node's final jobs, by slot.
pub type FinalState = Vec<BTreeMap<u64, JobView>>;

/// Names of the checks, in order (liveness is checked by the run itself).
pub const CHECKS: [&str; 6] = [
    "liveness",
    "durability",
    "exactly_once",
    "legal_histories",
    "linearizability",
    "convergence",
];

/// Runs every check; returns the violations (empty means all passed).
pub fn check_all(history: &History, state: &FinalState) -> Vec<Violation> {
    let ops = history.ops();
    let mut violations = Vec::new();
    durability(&ops, state, &mut violations);
    exactly_once(&ops, state, &mut violations);
    legal_histories(&ops, &mut violations);
    linearizability(&ops, &mut violations);
    convergence(state, &mut violations);
    violations
}

fn violation(check: &'static str, op: &Op, message: String) -> Violation {
    Violation {
        check,
        job: op_job(op),
        at_ms: op.complete_ms,
        message,
    }
}

/// Every acknowledged submit's job is on every node with the acknowledged name; every
/// acknowledged terminal status is the final status everywhere.
fn durability(ops: &[Op], state: &FinalState, out: &mut Vec<Violation>) {
    for op in ops {
        let Outcome::Ok { job, status, .. } = &op.outcome else {
            continue;
        };
        for (slot, jobs) in state.iter().enumerate() {
            let Some(view) = jobs.get(job) else {
                out.push(violation(
                    "durability",
                    op,
                    format!(
                        "job {job} acknowledged to the client is missing on slot {}",
                        slot + 1
                    ),
                ));
                continue;
            };
            if let OpKind::Submit { key: None, name } = &op.kind {
                if &view.name != name {
                    out.push(violation(
                        "durability",
                        op,
                        format!(
                            "job {job} is named {:?} on slot {}, acknowledged as {name:?}",
                            view.name,
                            slot + 1
                        ),
                    ));
                }
            }
            let final_status = status_name(view.status);
            let terminal = !matches!(*status, "pending" | "running");
            if terminal && final_status != *status {
                out.push(violation(
                    "durability",
                    op,
                    format!(
                        "job {job} was acknowledged {status} but is {final_status} on slot {}",
                        slot + 1
                    ),
                ));
            }
        }
    }
}

/// One job per idempotency key; every keyed acknowledgement names that job; at most one
/// non-duplicate acknowledgement per key; a 409 only when the key's job has another body.
fn exactly_once(ops: &[Op], state: &FinalState, out: &mut Vec<Violation>) {
    let Some(jobs) = state.first() else { return };
    let mut by_key: BTreeMap<&str, Vec<&JobView>> = BTreeMap::new();
    for view in jobs.values() {
        if let Some(key) = &view.idempotency_key {
            by_key.entry(key).or_default().push(view);
        }
    }
    for (key, views) in &by_key {
        if views.len() > 1 {
            let ids: Vec<u64> = views.iter().map(|v| v.id).collect();
            out.push(Violation {
                check: "exactly_once",
                job: Some(ids[0]),
                at_ms: 0,
                message: format!("idempotency key {key:?} has {} jobs: {ids:?}", views.len()),
            });
        }
    }
    let mut originals: BTreeSet<&str> = BTreeSet::new();
    for op in ops {
        let OpKind::Submit {
            key: Some(key),
            name,
        } = &op.kind
        else {
            continue;
        };
        let owner = by_key.get(key.as_str()).and_then(|v| v.first());
        match (&op.outcome, owner) {
            (Outcome::Ok { job, no_change, .. }, owner) => {
                if owner.map(|v| v.id) != Some(*job) {
                    out.push(violation(
                        "exactly_once",
                        op,
                        format!(
                            "key {key:?} acknowledged job {job}, but the key's job is {:?}",
                            owner.map(|v| v.id)
                        ),
                    ));
                }
                if owner.is_some_and(|v| &v.name != name) {
                    out.push(violation(
                        "exactly_once",
                        op,
                        format!(
                        "key {key:?} with body {name:?} acknowledged job {job} whose body differs"),
                    ));
                }
                if !no_change && !originals.insert(key) {
                    out.push(violation(
                        "exactly_once",
                        op,
                        format!("key {key:?} acknowledged as new (duplicate=false) twice"),
                    ));
                }
            }
            (Outcome::Conflict, Some(view)) if &view.name == name => {
                out.push(violation(
                    "exactly_once",
                    op,
                    format!(
                        "409 for key {key:?} although job {} has the same body",
                        view.id
                    ),
                ));
            }
            (Outcome::Conflict, None) => {
                out.push(violation(
                    "exactly_once",
                    op,
                    format!("409 for key {key:?} which has no job"),
                ));
            }
            _ => {}
        }
    }
}

fn rank(status: &str) -> u8 {
    match status {
        "pending" => 0,
        "running" => 1,
        _ => 2,
    }
}

/// Per job, in real-time order (one answer completed before the other began): the status
/// never goes back (pending → running → terminal), a terminal status never changes, and the
/// fence token never decreases.
fn legal_histories(ops: &[Op], out: &mut Vec<Violation>) {
    let mut per_job: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        if let Outcome::Ok { job, .. } = op.outcome {
            per_job.entry(job).or_default().push(op);
        }
    }
    for list in per_job.values() {
        for a in list {
            for b in list {
                if a.complete_ms >= b.invoke_ms {
                    continue;
                }
                let (
                    Outcome::Ok {
                        status: sa,
                        fence: fa,
                        ..
                    },
                    Outcome::Ok {
                        status: sb,
                        fence: fb,
                        ..
                    },
                ) = (&a.outcome, &b.outcome)
                else {
                    continue;
                };
                if rank(sb) < rank(sa) || (rank(sa) == 2 && sa != sb) {
                    out.push(violation(
                        "legal_histories",
                        b,
                        format!(
                            "status went from {sa} (op {} at {} ms) to {sb}",
                            a.seq, a.complete_ms
                        ),
                    ));
                }
                if fb < fa {
                    out.push(violation(
                        "legal_histories",
                        b,
                        format!("fence token went from {fa} (op {}) down to {fb}", a.seq),
                    ));
                }
            }
        }
    }
}

fn action(op: &Op) -> Option<Action> {
    match (&op.kind, &op.outcome) {
        (
            OpKind::Submit { .. },
            Outcome::Ok {
                status,
                no_change: false,
                ..
            },
        ) => {
            let _unused = status;
            Some(Action::Create)
        }
        (OpKind::Submit { .. } | OpKind::Read { .. }, Outcome::Ok { status, .. }) => {
            Some(Action::Read { status })
        }
        (
            OpKind::Cancel { .. },
            Outcome::Ok {
                status,
                no_change: false,
                ..
            },
        ) => Some(Action::Cancel { status }),
        (OpKind::Cancel { .. }, Outcome::Ok { status, .. }) => {
            Some(Action::CancelNoChange { status })
        }
        (OpKind::Complete { .. }, Outcome::Ok { status, .. }) => Some(Action::Complete { status }),
        (OpKind::Cancel { .. }, Outcome::Unknown(_)) => Some(Action::CancelUnknown),
        (OpKind::Complete { success, .. }, Outcome::Unknown(_)) => Some(Action::CompleteUnknown {
            status: if *success { "completed" } else { "failed" },
        }),
        _ => None,
    }
}

/// Each job's history is linearizable (see [`crate::linearizability`]).
fn linearizability(ops: &[Op], out: &mut Vec<Violation>) {
    let mut per_job: BTreeMap<u64, Vec<(LinOp, &Op)>> = BTreeMap::new();
    for op in ops {
        let (Some(job), Some(action)) = (op_job(op), action(op)) else {
            continue;
        };
        let complete_ms = if matches!(op.outcome, Outcome::Unknown(_)) {
            u64::MAX
        } else {
            op.complete_ms
        };
        per_job.entry(job).or_default().push((
            LinOp {
                invoke_ms: op.invoke_ms,
                complete_ms,
                action,
            },
            op,
        ));
    }
    for (job, mut list) in per_job {
        if !list.iter().any(|(l, _)| l.action == Action::Create) {
            // Created by a submit whose answer was lost: it may have happened any time before.
            list.insert(
                0,
                (
                    LinOp {
                        invoke_ms: 0,
                        complete_ms: u64::MAX,
                        action: Action::CreateUnknown,
                    },
                    list[0].1,
                ),
            );
        }
        list.truncate(OPS_PER_JOB_MAX);
        let lin: Vec<LinOp> = list.iter().map(|(l, _)| *l).collect();
        if !is_linearizable(&lin) {
            let first = list[0].1;
            out.push(Violation {
                check: "linearizability",
                job: Some(job),
                at_ms: first.invoke_ms,
                message: format!(
                    "the {} operations on job {job} have no linearization",
                    lin.len()
                ),
            });
        }
    }
}

/// Every node holds the same jobs with the same status and fence token.
fn convergence(state: &FinalState, out: &mut Vec<Violation>) {
    let Some(reference) = state.first() else {
        return;
    };
    for (slot, jobs) in state.iter().enumerate().skip(1) {
        let ids_a: BTreeSet<&u64> = reference.keys().collect();
        let ids_b: BTreeSet<&u64> = jobs.keys().collect();
        for id in ids_a.symmetric_difference(&ids_b) {
            out.push(Violation {
                check: "convergence",
                job: Some(**id),
                at_ms: 0,
                message: format!("job {id} is on only one of slot 1 and slot {}", slot + 1),
            });
        }
        for (id, a) in reference {
            if let Some(b) = jobs.get(id) {
                if (a.status, a.fence_token, &a.idempotency_key, &a.name)
                    != (b.status, b.fence_token, &b.idempotency_key, &b.name)
                {
                    out.push(Violation {
                        check: "convergence",
                        job: Some(*id),
                        at_ms: 0,
                        message: format!(
                            "job {id}: slot 1 has {}/fence {}, slot {} has {}/fence {}",
                            a.status,
                            a.fence_token,
                            slot + 1,
                            b.status,
                            b.fence_token
                        ),
                    });
                }
            }
        }
    }
}
