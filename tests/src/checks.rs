//! The invariants checked after a run, each named after what it protects, over the history
//! and the final state read from every node.
//!
//! It deliberately reads the final state through the public API (stale reads on each node once
//! every node has applied the same index), so it checks what a client could see; the state
//! hashes add what a client cannot see (every field of every record), live and replayed offline.

use std::collections::{BTreeMap, BTreeSet};

use steward_node::api::types::{JobStatus, JobView, StateHashView};

use crate::history::{op_job, History, Op, OpKind, Outcome};
use crate::linearizability::{is_linearizable, Action, LinOp, Model, OPS_PER_JOB_MAX};
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

/// What every node holds after healing, by slot.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// Each node's jobs, read at one applied index (when settled: every slot in order; when
    /// not: only the reachable node that applied the most).
    pub jobs: Vec<BTreeMap<u64, JobView>>,
    /// The slot (0-based) each entry of `jobs` was read from.
    pub slots: Vec<usize>,
    /// Why the nodes never settled on one applied index, if they did not: a convergence
    /// violation; the other checks then run on the most advanced reachable node alone.
    pub unsettled: Option<String>,
    /// Each node's state hash, read at that same index.
    pub hashes: Vec<StateHashView>,
    /// The offline replay of each node's data directory up to its live hash's index (after
    /// the nodes stopped).
    pub replayed: Vec<Replayed>,
}

/// The result of replaying one node's data directory offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// The hash and index the replay printed.
    Hash(StateHashView),
    /// The index is before the node's newest snapshot (not comparable; not a violation).
    Unreachable(String),
    /// The replay failed.
    Failed(String),
}

/// Names of the checks, in order (liveness is checked by the run itself; `legal_histories`
/// includes the final jobs' timeouts).
pub const CHECKS: [&str; 6] = [
    "liveness",
    "durability",
    "exactly_once",
    "legal_histories",
    "linearizability",
    "convergence",
];

/// Runs every check; returns the violations (empty means all passed).
pub fn check_all(history: &History, state: &FinalState, model: Model) -> Vec<Violation> {
    let ops = history.ops();
    let mut violations = Vec::new();
    if let Some(why) = &state.unsettled {
        violations.push(Violation {
            check: "convergence",
            job: None,
            at_ms: history.now_ms(),
            message: why.clone(),
        });
    }
    durability(&ops, state, &mut violations);
    exactly_once(&ops, &state.jobs, &mut violations);
    legal_histories(&ops, &mut violations);
    timeouts_honoured(&state.jobs, &mut violations);
    linearizability(&ops, model, &mut violations);
    if state.unsettled.is_none() {
        convergence(&state.jobs, &mut violations);
        hashes_converge(state, &mut violations);
    }
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
        for (slot, jobs) in state.slots.iter().copied().zip(&state.jobs) {
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
fn exactly_once(ops: &[Op], state: &[BTreeMap<u64, JobView>], out: &mut Vec<Violation>) {
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
            // The submits that carried the key, so the race shows in the report.
            let submits: Vec<String> = ops
                .iter()
                .filter(|op| matches!(&op.kind, OpKind::Submit { key: Some(k), .. } if k == key))
                .map(|op| {
                    format!(
                        "\n    {}..{} ms client {} -> node {} => {:?}",
                        op.invoke_ms, op.complete_ms, op.client, op.node, op.outcome
                    )
                })
                .collect();
            out.push(Violation {
                check: "exactly_once",
                job: Some(ids[0]),
                at_ms: 0,
                message: format!(
                    "idempotency key {key:?} has {} jobs: {ids:?}; its submits:{}",
                    views.len(),
                    submits.concat()
                ),
            });
        }
    }
    keyless_once(ops, jobs, out);
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

/// A submit without a key is sent once (the client never resends it after it may have been
/// delivered), under a name no other submit uses: it may create at most one job.
fn keyless_once(ops: &[Op], jobs: &BTreeMap<u64, JobView>, out: &mut Vec<Violation>) {
    let mut by_name: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for view in jobs.values().filter(|v| v.idempotency_key.is_none()) {
        by_name.entry(&view.name).or_default().push(view.id);
    }
    for op in ops {
        let OpKind::Submit { key: None, name } = &op.kind else {
            continue;
        };
        if let Some(ids) = by_name.get(name.as_str()).filter(|ids| ids.len() > 1) {
            out.push(violation(
                "exactly_once",
                op,
                format!(
                    "one submit without a key created {} jobs: {ids:?}",
                    ids.len()
                ),
            ));
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

/// Every job that timed out overall did so only after its timeout plus every extension it was
/// granted had passed, by the leader stamps of its submit and its end (a timeout that ignored
/// extensions would end it early).
fn timeouts_honoured(state: &[BTreeMap<u64, JobView>], out: &mut Vec<Violation>) {
    let Some(jobs) = state.first() else { return };
    for job in jobs.values() {
        let overall = job.reason.as_deref() == Some("timed out (overall)");
        let (JobStatus::TimedOut, true, Some(finished)) = (job.status, overall, job.finished_at_ms)
        else {
            continue;
        };
        let ran_ms = finished.saturating_sub(job.submitted_at_ms);
        let allowed_ms = job
            .timeout_ms
            .saturating_add(job.total_extensions_granted_ms);
        if ran_ms <= allowed_ms {
            out.push(Violation {
                check: "legal_histories",
                job: Some(job.id),
                at_ms: 0,
                message: format!(
                    "job {} timed out (overall) after {ran_ms} ms of leader time, within its \
                     {} ms timeout plus {} ms of granted extensions",
                    job.id, job.timeout_ms, job.total_extensions_granted_ms
                ),
            });
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
fn linearizability(ops: &[Op], model: Model, out: &mut Vec<Violation>) {
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
        if !is_linearizable(&lin, model) {
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
fn convergence(state: &[BTreeMap<u64, JobView>], out: &mut Vec<Violation>) {
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

/// Every node's state hash is equal at the same applied index, and an offline replay of each
/// node's data directory up to that index gives the live hash.
fn hashes_converge(state: &FinalState, out: &mut Vec<Violation>) {
    let mut flag = |message: String| {
        out.push(Violation {
            check: "convergence",
            job: None,
            at_ms: 0,
            message,
        })
    };
    let Some(first) = state.hashes.first() else {
        return;
    };
    for (slot, hash) in state.hashes.iter().enumerate().skip(1) {
        if hash != first {
            flag(format!(
                "state hash {:#018x} at index {} on slot {}, {:#018x} at index {} on slot 1",
                hash.hash,
                hash.applied_index,
                slot + 1,
                first.hash,
                first.applied_index
            ));
        }
    }
    for (slot, (live, replayed)) in state.hashes.iter().zip(&state.replayed).enumerate() {
        match replayed {
            Replayed::Hash(offline) if offline != live => flag(format!(
                "slot {}: offline replay gives {:#018x} at index {}, the live node had \
                 {:#018x} at index {}",
                slot + 1,
                offline.hash,
                offline.applied_index,
                live.hash,
                live.applied_index
            )),
            Replayed::Failed(why) => flag(format!("slot {}: {why}", slot + 1)),
            Replayed::Hash(_) | Replayed::Unreachable(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(applied_index: u64, hash: u64) -> StateHashView {
        StateHashView {
            applied_index,
            hash,
        }
    }

    #[test]
    fn hashes_must_agree_live_and_offline() {
        let state = |hashes: Vec<StateHashView>, replayed: Vec<Replayed>| FinalState {
            hashes,
            replayed,
            ..FinalState::default()
        };
        let mut out = Vec::new();
        let same = vec![hash(9, 1), hash(9, 1)];
        let replayed = vec![
            Replayed::Hash(hash(9, 1)),
            Replayed::Unreachable("old".into()),
        ];
        hashes_converge(&state(same.clone(), replayed), &mut out);
        assert!(out.is_empty(), "{out:?}");
        hashes_converge(&state(vec![hash(9, 1), hash(9, 2)], Vec::new()), &mut out);
        assert_eq!(out.len(), 1);
        let replayed = vec![
            Replayed::Hash(hash(9, 3)),
            Replayed::Failed("exit 1".into()),
        ];
        hashes_converge(&state(same, replayed), &mut out);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|v| v.check == "convergence"));
    }

    fn timed_out(ran_ms: u64, extensions_ms: u64) -> JobView {
        let json = serde_json::json!({
            "id": 7, "name": "j", "status": "timed_out", "fence_token": 1, "workflows": [],
            "timeout_ms": 1_000, "total_extensions_granted_ms": extensions_ms,
            "submitted_at_ms": 10_000, "finished_at_ms": 10_000 + ran_ms,
            "reason": "timed out (overall)",
        });
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_overall_timeout_must_wait_for_granted_extensions() {
        let mut out = Vec::new();
        let jobs = |job: JobView| vec![BTreeMap::from([(job.id, job)])];
        timeouts_honoured(&jobs(timed_out(1_200, 0)), &mut out);
        timeouts_honoured(&jobs(timed_out(16_500, 15_000)), &mut out);
        assert!(out.is_empty(), "{out:?}");
        timeouts_honoured(&jobs(timed_out(1_200, 15_000)), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].message.contains("15000 ms of granted extensions"));
    }
}
