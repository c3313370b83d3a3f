//! A Wing–Gong linearizability checker for one job's client-visible status history.
//!
//! Linearizability is local (compositional), so the harness checks each job on its own: a
//! small history (at most [`OPS_PER_JOB_MAX`] operations) searched depth-first over "which
//! operations are linearized" × "model state", with memoization. Operations whose outcome is
//! unknown may take effect at any point after their invocation, or never. It deliberately
//! models only the status (live, cancelling, terminal kind), not every field of a job.

use std::collections::HashSet;

use crate::history::Status;

/// Largest per-job history checked (the search is exponential in the worst case).
pub const OPS_PER_JOB_MAX: usize = 64;

/// The model's view of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Not submitted yet.
    Absent,
    /// Pending or running.
    Live,
    /// A cancel was accepted; workflows are stopping.
    Cancelling,
    /// Terminal, with its status.
    Terminal(Status),
}

/// What an operation did in the model, with what the client saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A first submit that created the job.
    Create,
    /// A read (or a duplicate submit) that saw `status`.
    Read {
        /// The status answered.
        status: Status,
    },
    /// A cancel that changed something; the job's status in the answer.
    Cancel {
        /// The status answered (`running` while cancelling, or `cancelled`).
        status: Status,
    },
    /// A cancel that changed nothing (already cancelled or already terminal).
    CancelNoChange {
        /// The status answered.
        status: Status,
    },
    /// A completion; the status in the answer.
    Complete {
        /// The status answered.
        status: Status,
    },
    /// A cancel whose outcome is unknown.
    CancelUnknown,
    /// A completion whose outcome is unknown; `completed` or `failed` if it applied.
    CompleteUnknown {
        /// The status it would have produced.
        status: Status,
    },
    /// A submit whose outcome is unknown (it may have created the job).
    CreateUnknown,
}

/// The transitions a live job may make without any client operation. Default: none (the
/// test-only worker never polls and holds no lease, so nothing fails or finishes a job the
/// clients drive; a cancelling job still settles to a terminal status on its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Model {
    /// A live job may time out: the leader's clock jumps past the stuck threshold, or real
    /// workers run jobs with short timeouts.
    pub may_time_out: bool,
    /// A live job may complete or fail: real workers run it (and may be lost).
    pub workers_finish: bool,
}

/// One operation on one job.
#[derive(Debug, Clone, Copy)]
pub struct LinOp {
    /// Invocation time.
    pub invoke_ms: u64,
    /// Completion time; `u64::MAX` for unknown outcomes.
    pub complete_ms: u64,
    /// Its effect and answer.
    pub action: Action,
}

fn is_live(status: Status) -> bool {
    status == "pending" || status == "running"
}

/// The states after applying `action` to `state` (empty when the answer is impossible).
fn step(state: JobState, action: Action, model: Model) -> Vec<JobState> {
    use JobState::*;
    // Some transitions happen without a client: a cancelling job becomes terminal when its
    // workflows stop or the grace period ends; what a live job may do is the model's.
    let settles = |s: JobState, status: Status| match s {
        Cancelling => !is_live(status),
        Live => {
            (model.may_time_out && status == "timed_out")
                || (model.workers_finish && (status == "completed" || status == "failed"))
        }
        _ => false,
    };
    match action {
        Action::Create | Action::CreateUnknown => match state {
            Absent => vec![Live],
            _ => vec![],
        },
        Action::Read { status } | Action::CancelNoChange { status } => {
            let ok = match state {
                Live => is_live(status) && !matches!(action, Action::CancelNoChange { .. }),
                Cancelling => is_live(status),
                Terminal(t) => t == status,
                Absent => false,
            };
            // The client resends a cancel whose answer was lost; the resend then reports the
            // first attempt's effect as "already cancelled".
            let own_resend = matches!(action, Action::CancelNoChange { .. }) && state == Live;
            if ok {
                vec![state]
            } else if own_resend && is_live(status) {
                vec![Cancelling]
            } else if (own_resend && status == "cancelled") || settles(state, status) {
                vec![Terminal(status)]
            } else {
                vec![]
            }
        }
        Action::Cancel { status } => match state {
            Live if is_live(status) => vec![Cancelling],
            Live if status == "cancelled" => vec![Terminal(status)],
            _ => vec![],
        },
        Action::Complete { status } => match state {
            Live | Cancelling if is_live(status) => vec![state],
            Live | Cancelling => vec![Terminal(status)],
            Terminal(t) if t == status => vec![state],
            _ => vec![],
        },
        Action::CancelUnknown => match state {
            Live => vec![Cancelling, Terminal("cancelled")],
            other => vec![other],
        },
        Action::CompleteUnknown { status } => match state {
            Live | Cancelling => vec![Terminal(status), state],
            other => vec![other],
        },
    }
}

fn is_unknown(action: Action) -> bool {
    matches!(
        action,
        Action::CancelUnknown | Action::CompleteUnknown { .. } | Action::CreateUnknown
    )
}

/// Whether `ops` (at most [`OPS_PER_JOB_MAX`]) is linearizable from `Absent` under `model`.
pub fn is_linearizable(ops: &[LinOp], model: Model) -> bool {
    assert!(ops.len() <= OPS_PER_JOB_MAX, "history too long to check");
    let required: u64 = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !is_unknown(op.action))
        .fold(0, |mask, (i, _)| mask | 1 << i);
    let mut seen = HashSet::new();
    search(ops, model, required, 0, JobState::Absent, &mut seen)
}

fn search(
    ops: &[LinOp],
    model: Model,
    required: u64,
    done: u64,
    state: JobState,
    seen: &mut HashSet<(u64, JobState)>,
) -> bool {
    if done & required == required {
        return true;
    }
    if !seen.insert((done, state)) {
        return false;
    }
    // Only an operation invoked before every pending definite operation completed can go next.
    let horizon = ops
        .iter()
        .enumerate()
        .filter(|(i, op)| done & (1 << i) == 0 && !is_unknown(op.action))
        .map(|(_, op)| op.complete_ms)
        .min()
        .unwrap_or(u64::MAX);
    for (i, op) in ops.iter().enumerate() {
        if done & (1 << i) != 0 || op.invoke_ms > horizon {
            continue;
        }
        for next in step(state, op.action, model) {
            if search(ops, model, required, done | 1 << i, next, seen) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(ops: &[LinOp]) -> bool {
        is_linearizable(ops, Model::default())
    }

    fn op(invoke_ms: u64, complete_ms: u64, action: Action) -> LinOp {
        LinOp {
            invoke_ms,
            complete_ms,
            action,
        }
    }

    #[test]
    fn sequential_legal_history_passes() {
        let ops = [
            op(0, 10, Action::Create),
            op(20, 30, Action::Read { status: "pending" }),
            op(
                40,
                50,
                Action::Complete {
                    status: "completed",
                },
            ),
            op(
                60,
                70,
                Action::Read {
                    status: "completed",
                },
            ),
            op(
                80,
                90,
                Action::CancelNoChange {
                    status: "completed",
                },
            ),
        ];
        assert!(strict(&ops));
    }

    #[test]
    fn stale_read_after_completion_is_rejected() {
        // The completion finished before the read began, yet the read saw the job pending.
        let ops = [
            op(0, 10, Action::Create),
            op(
                20,
                30,
                Action::Complete {
                    status: "completed",
                },
            ),
            op(40, 50, Action::Read { status: "pending" }),
        ];
        assert!(!strict(&ops));
    }

    #[test]
    fn concurrent_read_may_see_either_side() {
        let ops = [
            op(0, 10, Action::Create),
            op(
                20,
                60,
                Action::Complete {
                    status: "completed",
                },
            ),
            op(30, 40, Action::Read { status: "pending" }),
            op(
                35,
                70,
                Action::Read {
                    status: "completed",
                },
            ),
        ];
        assert!(strict(&ops));
    }

    #[test]
    fn terminal_states_are_absorbing() {
        let ops = [
            op(0, 10, Action::Create),
            op(
                20,
                30,
                Action::Cancel {
                    status: "cancelled",
                },
            ),
            op(
                40,
                50,
                Action::Complete {
                    status: "completed",
                },
            ),
        ];
        assert!(!strict(&ops));
        let flip = [
            op(0, 10, Action::Create),
            op(20, 30, Action::Read { status: "failed" }),
            op(
                40,
                50,
                Action::Read {
                    status: "completed",
                },
            ),
        ];
        assert!(!strict(&flip));
    }

    #[test]
    fn unknown_operations_may_or_may_not_apply() {
        let applied = [
            op(0, 10, Action::Create),
            op(20, u64::MAX, Action::CompleteUnknown { status: "failed" }),
            op(40, 50, Action::Read { status: "failed" }),
        ];
        assert!(strict(&applied));
        let not_applied = [
            op(0, 10, Action::Create),
            op(20, u64::MAX, Action::CancelUnknown),
            op(40, 50, Action::Read { status: "pending" }),
        ];
        assert!(strict(&not_applied));
        // But an unknown cancel cannot take effect before it was invoked.
        let too_early = [
            op(0, 10, Action::Create),
            op(
                20,
                30,
                Action::Read {
                    status: "cancelled",
                },
            ),
            op(40, u64::MAX, Action::CancelUnknown),
        ];
        assert!(!strict(&too_early));
    }

    #[test]
    fn a_live_job_ends_on_its_own_only_as_the_model_allows() {
        let alone = |status| {
            [
                op(0, 10, Action::Create),
                op(20, 30, Action::Read { status }),
            ]
        };
        // Test-route jobs: nothing but a client ends a live job.
        for status in ["failed", "completed", "timed_out"] {
            assert!(!strict(&alone(status)), "{status}");
        }
        let clock = Model {
            may_time_out: true,
            workers_finish: false,
        };
        assert!(is_linearizable(&alone("timed_out"), clock));
        assert!(!is_linearizable(&alone("failed"), clock));
        let workers = Model {
            may_time_out: true,
            workers_finish: true,
        };
        for status in ["failed", "completed", "timed_out"] {
            assert!(is_linearizable(&alone(status), workers), "{status}");
        }
        // Never cancelled without a cancel.
        assert!(!is_linearizable(&alone("cancelled"), workers));
    }

    #[test]
    fn resent_cancel_may_report_its_own_effect() {
        let ops = [
            op(0, 10, Action::Create),
            op(20, 30, Action::CancelNoChange { status: "running" }),
            op(
                40,
                50,
                Action::Read {
                    status: "cancelled",
                },
            ),
        ];
        assert!(strict(&ops));
        // But "already terminal: completed" needs a completion first.
        let completed = [
            op(0, 10, Action::Create),
            op(
                20,
                30,
                Action::CancelNoChange {
                    status: "completed",
                },
            ),
        ];
        assert!(!strict(&completed));
    }

    #[test]
    fn two_creates_are_rejected() {
        let ops = [op(0, 10, Action::Create), op(20, 30, Action::Create)];
        assert!(!strict(&ops));
    }

    #[test]
    fn cancelling_settles_to_cancelled() {
        let ops = [
            op(0, 10, Action::Create),
            op(20, 30, Action::Cancel { status: "running" }),
            op(40, 50, Action::Read { status: "running" }),
            op(
                60,
                70,
                Action::Read {
                    status: "cancelled",
                },
            ),
            op(
                80,
                90,
                Action::CancelNoChange {
                    status: "cancelled",
                },
            ),
        ];
        assert!(strict(&ops));
    }
}
