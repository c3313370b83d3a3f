//! Model-based property tests: random command streams (plus raw events that skip `decide`, as
//! a racing or deposed leader would produce) folded through `apply`, checking after every step
//! the invariants the brief names, and at the end that snapshots, records and the codec all
//! reproduce the same state hash.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::harness::{spec, Sim};
use crate::apply::apply_one_by_one;
use crate::{
    apply, apply_prepared, decide, decode_proposal, encode_proposal, replay_prepared, restore,
    snapshot, snapshot_frozen, state_hash, Command, Event, FenceToken, IdempotencyKey, JobId,
    JobStatus, LogIndex, NodeId, Outcome, Prepared, ReportKind, State, StateConfig, Term,
    TimeoutReason, WorkerId, WorkerReport, WorkerStatus, WorkflowId, WorkflowRef, WorkflowStatus,
};

/// One step of a random history; `pick` values select among existing jobs and workflows.
#[derive(Debug, Clone)]
enum Step {
    Submit {
        key: Option<u8>,
        body: u8,
        workflows: usize,
    },
    RacingSubmits {
        key: u8,
        body: u8,
    },
    Cancel {
        pick: u8,
        stale_fence: bool,
    },
    DispatchPending,
    Report {
        pick: u8,
        kind: u8,
    },
    Extension {
        pick: u8,
        progress: u8,
    },
    Register {
        worker: u8,
        cores: u32,
    },
    Lose {
        worker: u8,
    },
    Drain {
        worker: u8,
    },
    BecomeLeader,
    CheckTimeouts,
    Expire,
    Advance {
        ms: u64,
    },
    ForcedTimeout {
        pick: u8,
        stuck: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (proptest::option::of(0u8..4), 0u8..2, 1usize..3)
            .prop_map(|(key, body, workflows)| Step::Submit { key, body, workflows }),
        1 => (0u8..4, 0u8..2).prop_map(|(key, body)| Step::RacingSubmits { key, body }),
        1 => (any::<u8>(), any::<bool>())
            .prop_map(|(pick, stale_fence)| Step::Cancel { pick, stale_fence }),
        3 => Just(Step::DispatchPending),
        6 => (any::<u8>(), 0u8..5).prop_map(|(pick, kind)| Step::Report { pick, kind }),
        2 => (any::<u8>(), 0u8..3).prop_map(|(pick, progress)| Step::Extension { pick, progress }),
        1 => (0u8..3, 1u32..4).prop_map(|(worker, cores)| Step::Register { worker, cores }),
        1 => (0u8..3).prop_map(|worker| Step::Lose { worker }),
        1 => (0u8..3).prop_map(|worker| Step::Drain { worker }),
        1 => Just(Step::BecomeLeader),
        2 => Just(Step::CheckTimeouts),
        1 => Just(Step::Expire),
        3 => (0u64..40_000).prop_map(|ms| Step::Advance { ms }),
        1 => (any::<u8>(), any::<bool>())
            .prop_map(|(pick, stuck)| Step::ForcedTimeout { pick, stuck }),
    ]
}

/// A reservation or a submit over five keys (one of them invalid; the other four are more than
/// `small_config` keeps live) and three specs (one of them invalid), with a hash that matches
/// either valid spec or neither.
fn raw_key_event() -> impl Strategy<Value = Event> {
    let key = |n: u8| {
        IdempotencyKey::new(
            "p",
            if n == 3 {
                String::new()
            } else {
                format!("k{n}")
            },
        )
    };
    let body = |n: u8| match n {
        0 | 1 => spec(&format!("s{n}"), 1),
        _ => crate::JobSpec {
            workflows: Vec::new(),
            ..spec("bad", 1)
        },
    };
    prop_oneof![
        (0u8..5, 0u8..3).prop_map(move |(k, h)| Event::IdempotencyReserved {
            key: key(k),
            body_hash: match h {
                0 | 1 => crate::codec::body_hash(&body(h)),
                _ => crate::BodyHash(7),
            },
        }),
        (proptest::option::of(0u8..5), 0u8..3).prop_map(move |(k, b)| Event::JobSubmitted {
            idempotency_key: k.map(key),
            spec: body(b),
        }),
    ]
}

/// Folds `log` with keyed submit pairs applied at once and one by one, and checks after every
/// entry that the reports, the state hashes and the indexes agree.
fn fused_and_one_by_one_agree(log: &[(LogIndex, crate::Proposal)]) -> Result<(), TestCaseError> {
    let mut fused = State::new(small_config()).unwrap();
    let mut reference = State::new(small_config()).unwrap();
    for (index, proposal) in log {
        let expected = apply_one_by_one(&mut reference, *index, proposal);
        let got = apply(&mut fused, *index, proposal);
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(state_hash(&fused), state_hash(&reference));
        prop_assert_eq!(&fused.index, &reference.index);
    }
    Ok(())
}

fn small_config() -> StateConfig {
    StateConfig {
        cancel_grace_ms: 30_000,
        idempotency_ttl_ms: 60_000,
        idempotency_live_keys_max: 3,
        retained_finished_jobs: 3,
        timeline_entries_max: 4,
    }
}

fn pick_job(state: &State, pick: u8) -> Option<JobId> {
    let ids: Vec<JobId> = state.jobs().map(|job| job.id).collect();
    (!ids.is_empty()).then(|| ids[pick as usize % ids.len()])
}

/// A workflow holding a worker, as (target, worker).
fn pick_assigned(state: &State, pick: u8) -> Option<(WorkflowRef, WorkerId)> {
    let mut assigned = Vec::new();
    for job in state.jobs() {
        for (position, runtime) in (0u32..).zip(&job.workflows) {
            if let (true, Some(worker)) = (runtime.status.holds_worker(), runtime.worker) {
                let target = WorkflowRef {
                    job: job.id,
                    workflow: WorkflowId(position),
                    attempt: runtime.attempt,
                };
                assigned.push((target, worker));
            }
        }
    }
    (!assigned.is_empty()).then(|| assigned[pick as usize % assigned.len()])
}

fn job_spec(body: u8, workflows: usize) -> crate::JobSpec {
    let mut job_spec = spec(&format!("job-{body}"), workflows);
    job_spec.timeout_ms = 60_000 + u64::from(body) * 30_000;
    job_spec.stuck_threshold_ms = 50_000;
    job_spec.workflows[0].timeout_ms = Some(45_000);
    job_spec
}

/// Turns a step into proposals (usually one) for the current state.
fn proposals_for(sim: &Sim, step: &Step) -> Vec<Vec<Event>> {
    let state = &sim.state;
    let decided = |command: Command| -> Vec<Vec<Event>> {
        decide(state, command, sim.now_ms)
            .map(|events| vec![events])
            .unwrap_or_default()
    };
    match step {
        Step::Submit {
            key,
            body,
            workflows,
        } => decided(Command::SubmitJob {
            idempotency_key: key.map(|key| IdempotencyKey::new("ns", format!("k{key}"))),
            spec: job_spec(*body, *workflows),
        }),
        Step::RacingSubmits { key, body } => {
            let command = Command::SubmitJob {
                idempotency_key: Some(IdempotencyKey::new("ns", format!("k{key}"))),
                spec: job_spec(*body, 1),
            };
            let first = decide(state, command.clone(), sim.now_ms);
            let second = decide(state, command, sim.now_ms);
            first.into_iter().chain(second).collect()
        }
        Step::Cancel { pick, stale_fence } => match pick_job(state, *pick) {
            Some(job) => {
                let current = state.globals().fence_token;
                let fence = if *stale_fence {
                    FenceToken(current.0 + 7)
                } else {
                    current
                };
                vec![vec![Event::CancelRequested {
                    job,
                    fence_token: Some(fence),
                }]]
            }
            None => Vec::new(),
        },
        Step::DispatchPending => decided(Command::DispatchPending { max_assignments: 4 }),
        Step::Report { pick, kind } => match pick_assigned(state, *pick) {
            Some((target, worker)) => {
                let progress = state.job(target.job).map_or(0, |job| {
                    job.workflow(target.workflow)
                        .map_or(0, |runtime| runtime.progress)
                });
                let kind = match kind {
                    0 => ReportKind::Started,
                    1 => ReportKind::Progress {
                        progress: progress + 1,
                    },
                    2 => ReportKind::Completed,
                    3 => ReportKind::Failed {
                        error: "boom".into(),
                        exit_code: Some(1),
                    },
                    _ => ReportKind::Cancelled,
                };
                // Exit reports carry exit details, so output records are folded, snapshotted
                // and rebuilt like every other record.
                let ends = !matches!(kind, ReportKind::Started | ReportKind::Progress { .. });
                let exit = ends.then(|| crate::ExitRecord {
                    exit_code: Some(0),
                    signal: None,
                    duration_ms: target.attempt.0.into(),
                    output_tail: format!("attempt {} said bye", target.attempt),
                });
                let report = WorkerReport {
                    worker,
                    target,
                    kind,
                    exit,
                };
                // Raw, so that invalid transitions reach apply and must be refused there.
                let event = match decide(state, Command::Report(report.clone()), sim.now_ms) {
                    Ok(events) => events,
                    Err(_) => vec![raw_report(report)],
                };
                vec![event]
            }
            None => Vec::new(),
        },
        Step::Extension { pick, progress } => match pick_assigned(state, *pick) {
            Some((target, worker)) => decided(Command::RequestExtension {
                job: target.job,
                worker,
                progress: u64::from(*progress),
            }),
            None => Vec::new(),
        },
        Step::Register { worker, cores } => decided(Command::RegisterWorker {
            worker: WorkerId(u64::from(*worker)),
            cores: *cores,
            address: format!("w{worker}"),
        }),
        Step::Lose { worker } => decided(Command::WorkerLost {
            worker: WorkerId(u64::from(*worker)),
        }),
        Step::Drain { worker } => decided(Command::DrainWorker {
            worker: WorkerId(u64::from(*worker)),
        }),
        Step::BecomeLeader => {
            let term = Term(state.globals().term.0 + 1);
            decided(Command::BecomeLeader {
                term,
                node: NodeId(term.0 % 3),
            })
        }
        Step::CheckTimeouts => decided(Command::CheckTimeouts),
        Step::Expire => decided(Command::ExpireIdempotency),
        Step::Advance { .. } => Vec::new(),
        Step::ForcedTimeout { pick, stuck } => match pick_job(state, *pick) {
            Some(job) => {
                let reason = if *stuck {
                    TimeoutReason::Stuck
                } else {
                    TimeoutReason::Overall
                };
                let fence_token = state.globals().fence_token;
                vec![vec![Event::JobTimedOut {
                    job,
                    reason,
                    fence_token,
                }]]
            }
            None => Vec::new(),
        },
    }
}

fn raw_report(report: WorkerReport) -> Event {
    let WorkerReport {
        worker,
        target,
        kind,
        exit: _,
    } = report;
    match kind {
        ReportKind::Started => Event::WorkflowStarted { target, worker },
        ReportKind::Progress { progress } => Event::WorkflowProgress {
            target,
            worker,
            progress,
        },
        ReportKind::Completed => Event::WorkflowCompleted { target, worker },
        ReportKind::Failed { error, exit_code } => Event::WorkflowFailed {
            target,
            worker,
            error,
            exit_code,
        },
        ReportKind::Cancelled => Event::WorkflowCancelled { target, worker },
    }
}

/// Checks every invariant between `before` and the state after applying `events` at `now_ms`.
fn check_invariants(before: &State, after: &State, events: &[Event], outcomes: &[Outcome]) {
    let now_ms = after.globals().last_stamp_ms;
    for job in before.jobs() {
        if job.status.is_terminal() {
            let status = after.job(job.id).map(|later| later.status);
            assert_eq!(
                status,
                Some(job.status),
                "terminal status of {} is absorbing",
                job.id
            );
        }
    }
    assert!(
        after.globals().fence_token >= before.globals().fence_token,
        "fence never decreases"
    );
    let mut jobs_per_key: BTreeMap<&IdempotencyKey, u32> = BTreeMap::new();
    for job in after.jobs() {
        // Jobs submitted under an earlier, since expired, life of the key do not count.
        let live = job
            .idempotency_key
            .as_ref()
            .and_then(|key| after.idempotency_entry(key));
        if let Some(entry) = live.filter(|entry| job.submitted_at_ms >= entry.reserved_at_ms) {
            *jobs_per_key.entry(&entry.key).or_default() += 1;
        }
    }
    assert!(
        jobs_per_key.values().all(|count| *count <= 1),
        "one job per live key"
    );
    for job in after.jobs() {
        for runtime in &job.workflows {
            if let (true, Some(worker)) = (runtime.status.holds_worker(), runtime.worker) {
                let status = after.worker(worker).map(|record| record.status);
                assert_ne!(
                    status,
                    Some(WorkerStatus::Lost),
                    "job {} runs on a lost worker",
                    job.id
                );
            }
            if runtime.status == WorkflowStatus::Running {
                assert!(
                    job.status == JobStatus::Running,
                    "running workflow in a {} job",
                    job.status
                );
            }
        }
    }
    // A job times out only if the condition held at the stamp (checked with the brief's
    // formulas on the state just before, which is what apply saw for a single-event proposal).
    for (event, outcome) in events.iter().zip(outcomes) {
        if let (Event::JobTimedOut { job, reason, .. }, Outcome::Applied) = (event, outcome) {
            let record = before.job(*job).expect("timed-out job existed");
            let held = match reason {
                TimeoutReason::Overall => {
                    now_ms - record.started_at_ms
                        > record.spec.timeout_ms() + record.total_extensions_granted_ms()
                }
                TimeoutReason::Stuck => {
                    record.status == JobStatus::Running
                        && now_ms - record.last_progress_at_ms > record.spec.stuck_threshold_ms()
                }
            };
            assert!(
                held,
                "job {job} timed out ({reason}) without the condition at {now_ms}"
            );
            assert_eq!(
                after.job(*job).map(|later| later.status),
                Some(JobStatus::TimedOut)
            );
        }
    }
    let rebuilt = State::from_owned_records(after.to_records()).expect("records rebuild");
    assert_eq!(
        rebuilt.index, after.index,
        "indexes match a rebuild from records"
    );
}

/// Runs the steps; returns the simulation (with its log).
fn run(steps: &[Step]) -> Sim {
    let mut sim = Sim::with_state(State::new(small_config()).unwrap());
    sim.become_leader(1, 1);
    for step in steps {
        if let Step::Advance { ms } = step {
            sim.advance(*ms);
            continue;
        }
        for events in proposals_for(&sim, step) {
            if events.is_empty() {
                continue;
            }
            let before = sim.state.clone();
            let single = events.len() == 1;
            sim.propose(events.clone());
            let report = sim.last_report.as_ref().unwrap();
            if single {
                check_invariants(&before, &sim.state, &events, &report.outcomes);
            } else {
                check_invariants(&before, &sim.state, &[], &[]);
            }
        }
    }
    sim
}

fn fold_log(state: State, log: &[(LogIndex, crate::Proposal)]) -> State {
    let mut state = state;
    for (index, proposal) in log {
        apply(&mut state, *index, proposal);
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_plus_suffix_equals_full_fold(
        steps in proptest::collection::vec(step(), 1..80),
        split in any::<proptest::sample::Index>(),
    ) {
        let sim = run(&steps);
        let full = state_hash(&sim.state);
        let fresh = || State::new(small_config()).unwrap();
        prop_assert_eq!(state_hash(&fold_log(fresh(), &sim.log)), full, "fold is deterministic");
        let cut = split.index(sim.log.len() + 1);
        let prefix = fold_log(fresh(), &sim.log[..cut]);
        let restored = restore(&snapshot(&prefix).unwrap()).unwrap();
        prop_assert_eq!(state_hash(&restored), state_hash(&prefix));
        prop_assert_eq!(&restored.index, &prefix.index);
        prop_assert_eq!(state_hash(&fold_log(restored, &sim.log[cut..])), full);
    }

    /// A snapshot build encodes a frozen copy while `apply` goes on (ADR 0020): folding the rest
    /// of the log after the freeze must leave the frozen records as they were, and change the
    /// state as if nothing had been frozen.
    #[test]
    fn frozen_records_do_not_move_with_later_applies(
        steps in proptest::collection::vec(step(), 1..80),
        split in any::<proptest::sample::Index>(),
    ) {
        let sim = run(&steps);
        let fresh = || State::new(small_config()).unwrap();
        let cut = split.index(sim.log.len() + 1);
        let prefix = fold_log(fresh(), &sim.log[..cut]);
        let at_cut = snapshot(&prefix).unwrap();
        let frozen = prefix.freeze();
        let folded_on = fold_log(prefix, &sim.log[cut..]);
        prop_assert_eq!(snapshot_frozen(&frozen).unwrap(), at_cut);
        prop_assert_eq!(state_hash(&folded_on), state_hash(&sim.state));
        prop_assert_eq!(snapshot(&folded_on).unwrap(), snapshot(&sim.state).unwrap());
    }

    /// A prepared proposal (ADR 0023) applies exactly as the proposal does: the same report
    /// for every entry, the same state after each.
    #[test]
    fn prepared_proposals_apply_as_the_proposals_do(steps in proptest::collection::vec(step(), 1..80)) {
        let sim = run(&steps);
        let mut plain = State::new(small_config()).unwrap();
        let mut prepared = State::new(small_config()).unwrap();
        let mut replayed = State::new(small_config()).unwrap();
        for (index, proposal) in &sim.log {
            let expected = apply(&mut plain, *index, proposal);
            let got = apply_prepared(&mut prepared, *index, &mut Prepared::new(proposal.clone()));
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(state_hash(&prepared), state_hash(&plain));
            let quiet = replay_prepared(&mut replayed, *index, &mut Prepared::new(proposal.clone()));
            prop_assert_eq!(&quiet.outcomes, &expected.outcomes);
            prop_assert_eq!(&quiet.stop_orders, &expected.stop_orders);
            prop_assert_eq!(&quiet.eviction_candidates, &expected.eviction_candidates);
            let listed_nothing = crate::Touched { globals: quiet.touched.globals, ..Default::default() };
            prop_assert_eq!(&quiet.touched, &listed_nothing, "a replay lists no record");
            prop_assert_eq!(state_hash(&replayed), state_hash(&plain));
        }
        let again = sim.log.last().map(|(index, proposal)| {
            apply_prepared(&mut prepared, *index, &mut Prepared::new(proposal.clone()))
        });
        prop_assert!(again.is_none_or(|report| report.touched.jobs.is_empty()), "an applied entry is refused");
        prop_assert_eq!(snapshot(&prepared).unwrap(), snapshot(&sim.state).unwrap());
    }

    #[test]
    fn keyed_submits_applied_at_once_equal_one_by_one(steps in proptest::collection::vec(step(), 1..80)) {
        let sim = run(&steps);
        fused_and_one_by_one_agree(&sim.log)?;
    }

    /// Raw reservation and submit events in any order and combination (keys live or not,
    /// matching or not, invalid keys and specs, the live-key bound reached), as no `decide`
    /// writes them: the fused path must still equal the one-by-one fold.
    #[test]
    fn raw_reservations_and_submits_apply_at_once_as_one_by_one(
        entries in proptest::collection::vec(proptest::collection::vec(raw_key_event(), 1..6), 1..12)
    ) {
        let log: Vec<(LogIndex, crate::Proposal)> = (1u64..)
            .zip(entries)
            .map(|(position, events)| (LogIndex(position), crate::Proposal { stamp_ms: 1_000 * position, events }))
            .collect();
        fused_and_one_by_one_agree(&log)?;
    }

    #[test]
    fn codec_and_records_round_trips_keep_the_hash(steps in proptest::collection::vec(step(), 1..80)) {
        let sim = run(&steps);
        let decoded: Vec<(LogIndex, crate::Proposal)> = sim
            .log
            .iter()
            .map(|(index, proposal)| (*index, decode_proposal(&encode_proposal(proposal).unwrap()).unwrap()))
            .collect();
        prop_assert_eq!(&decoded, &sim.log);
        let replayed = fold_log(State::new(small_config()).unwrap(), &decoded);
        prop_assert_eq!(state_hash(&replayed), state_hash(&sim.state));
        let parts = sim.state.parts();
        let rebuilt = State::from_records(
            parts.globals().clone(),
            parts.jobs().rev().cloned(),
            parts.idempotency().cloned(),
            parts.workers().cloned(),
            parts.outputs().rev().cloned(),
        ).unwrap();
        prop_assert_eq!(state_hash(&rebuilt), state_hash(&sim.state));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Bytes from the disk or the network never panic the decoders: they decode or they are a
    /// typed error.
    #[test]
    fn decoders_never_panic_on_garbage(body in proptest::collection::vec(any::<u8>(), 0..256), flip in any::<proptest::sample::Index>()) {
        let mut proposal_bytes = b"STEV\x01\x00".to_vec();
        proposal_bytes.extend_from_slice(&body);
        // Either outcome is fine; the property is that decoding returns at all.
        let _decoded = decode_proposal(&proposal_bytes);
        let mut snapshot_bytes = b"STSN\x01\x00".to_vec();
        snapshot_bytes.extend_from_slice(&body);
        let _restored = restore(&snapshot_bytes);
        let mut damaged = snapshot(&run(&[Step::Submit { key: Some(1), body: 0, workflows: 2 }]).state).unwrap();
        let position = flip.index(damaged.len());
        damaged[position] ^= 0x5a;
        if let Ok(state) = restore(&damaged) {
            prop_assert!(State::from_owned_records(state.to_records()).is_ok());
        }
    }
}
