//! Fold and snapshot benchmark (`cargo bench -p steward-statemachine [-- SECTION...]`).
//!
//! Sections (all by default): `fold` replays a generated log of about one million events on
//! one thread (apply only, then decode + apply); `snapshot` snapshots and restores states of one
//! million finished two-workflow jobs (all kept in full, all compacted, and the default
//! retention of 100 000 full + 900 000 compacted); `memory` measures resident bytes per finished
//! job in a child process each (a fresh heap, so freed memory cannot hide growth).
//!
//! Not a test: it asserts only that the fold paths agree, and its figures depend on the machine
//! and its load. Memory is read from `/proc/self/statm` (Linux); elsewhere it prints "n/a".

use std::error::Error;
use std::process::Command;
use std::time::{Duration, Instant};

use steward_statemachine::{
    apply, body_hash, decode_proposal, encode_proposal, restore, snapshot, state_hash, Attempt,
    Event, FenceToken, IdempotencyKey, Job, JobId, JobSpec, LogIndex, NodeId, Proposal, State,
    StateConfig, Term, Worker, WorkerId, WorkflowId, WorkflowRef, WorkflowSpec,
    RETAINED_FINISHED_JOBS_DEFAULT,
};

/// Jobs per generation round; each round is 9 events per job.
const ROUND_JOBS: u64 = 1_000;
/// Rounds in the replay log: 112 × 9 000 = 1 008 000 job events.
const ROUNDS: u64 = 112;
/// Workers, and cores each: room for every workflow of a round at once.
const WORKERS: u64 = 64;
const WORKER_CORES: u32 = 64;
/// Jobs in the snapshot and memory sections.
const JOBS: u64 = 1_000_000;

type BenchResult<T> = Result<T, Box<dyn Error>>;

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    if let [role, case] = args.as_slice() {
        match role.as_str() {
            "memory-child" => return memory_child(case),
            "snapshot-child" => return snapshot_child(case),
            _ => {}
        }
    }
    let wanted = |section: &str| args.is_empty() || args.iter().any(|arg| arg == section);
    println!("steward-statemachine benchmark (release, one thread)");
    let header = ("measure", "items", "wall", "rate", "cpu", "rate (cpu)");
    println!(
        "{:<40} {:>10} {:>10} {:>10} | {:>10} {:>16}",
        header.0, header.1, header.2, header.3, header.4, header.5
    );
    if wanted("fold") {
        fold_section()?;
    }
    if wanted("snapshot") {
        snapshot_section()?;
    }
    if wanted("memory") {
        memory_section()?;
    }
    Ok(())
}

fn fold_section() -> BenchResult<()> {
    let log = generate_log(ROUNDS, 0);
    let events: u64 = log
        .iter()
        .map(|(_, proposal)| proposal.events.len() as u64)
        .sum();
    let (state, fold_time) = timed(|| fold(&log));
    print_row("fold: apply", events, fold_time, "events");
    let encoded: Vec<(LogIndex, Vec<u8>)> = log
        .iter()
        .map(|(index, proposal)| encode_proposal(proposal).map(|bytes| (*index, bytes)))
        .collect::<Result<_, _>>()?;
    let (replayed, replay_time) = timed(|| decode_and_fold(&encoded));
    print_row("fold: decode + apply", events, replay_time, "events");
    if state_hash(&replayed?) != state_hash(&state) {
        return Err("decode + apply diverged from apply".into());
    }
    let payload_bytes: usize = encoded.iter().map(|(_, bytes)| bytes.len()).sum();
    println!(
        "  (log: {} entries, {payload_bytes} payload bytes)",
        log.len()
    );
    Ok(())
}

/// Each case in a child process: a fresh heap, as at a node's start (freed memory from an
/// earlier case would otherwise make the allocator's free lists part of the measurement).
fn snapshot_section() -> BenchResult<()> {
    for case in ["full", "compacted", "default"] {
        run_child("snapshot-child", case)?;
    }
    Ok(())
}

fn snapshot_child(case: &str) -> BenchResult<()> {
    let (full, compacted, workers) = finished_job_templates()?;
    let (label, retained) = match case {
        "full" => ("1 M jobs, all kept in full", JOBS),
        "compacted" => ("1 M jobs, all compacted", 0),
        _ => (
            "1 M jobs, default retention",
            RETAINED_FINISHED_JOBS_DEFAULT,
        ),
    };
    let state = many_jobs((&full, &compacted), &workers, JOBS, retained)?;
    let (bytes, snapshot_time) = timed(|| snapshot(&state));
    let bytes = bytes?;
    print_row(&format!("snapshot: {label}"), JOBS, snapshot_time, "jobs");
    let (restored, restore_time) = timed(|| restore(&bytes));
    let restored = restored?;
    print_row(&format!("restore: {label}"), JOBS, restore_time, "jobs");
    let (hash, hash_time) = timed(|| state_hash(&restored));
    print_row(&format!("state_hash: {label}"), JOBS, hash_time, "jobs");
    if hash != state_hash(&state) {
        return Err("restore changed the state".into());
    }
    println!(
        "  (snapshot: {} bytes, {} per job)",
        bytes.len(),
        bytes.len() as u64 / JOBS
    );
    Ok(())
}

fn run_child(role: &str, case: &str) -> BenchResult<()> {
    let output = Command::new(std::env::current_exe()?)
        .args([role, case])
        .output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{role} {case} failed: {stderr}").into());
    }
    print!("{}", String::from_utf8_lossy(&output.stdout));
    Ok(())
}

fn memory_section() -> BenchResult<()> {
    for kind in ["full", "compacted", "default", "keyed"] {
        run_child("memory-child", kind)?;
    }
    Ok(())
}

/// Pending jobs folded in the child of the `keyed` memory case: as many as the 1 M-event
/// restart of `steward bench cluster` holds.
const KEYED_JOBS: u64 = 500_000;

/// Folds `KEYED_JOBS` keyed submits shaped like the cluster benchmark's (unnamed, so named
/// after the program; one workflow whose argument is 256 bytes; a key of its own each) and
/// prints the resident growth per job: what a restart over that log builds.
fn keyed_memory_child() -> BenchResult<()> {
    let argument = "a".repeat(256);
    let spec = JobSpec::new(
        "true",
        vec![WorkflowSpec::new("main", vec!["true".into(), argument])],
    );
    let hash = body_hash(&spec);
    let mut state = State::new(StateConfig::default())?;
    let before = resident_bytes();
    for n in 0..KEYED_JOBS {
        let key = IdempotencyKey::new("default", format!("bench-0123abcd-{}-{n}", n % 256));
        let proposal = Proposal {
            stamp_ms: 1_700_000_000_000 + n,
            events: vec![
                Event::IdempotencyReserved {
                    key: key.clone(),
                    body_hash: hash,
                },
                Event::JobSubmitted {
                    idempotency_key: Some(key),
                    spec: spec.clone(),
                },
            ],
        };
        apply(&mut state, LogIndex(n + 1), &proposal);
    }
    let after = resident_bytes();
    let jobs = state.parts().jobs().len() as u64;
    if jobs != KEYED_JOBS {
        return Err(format!("{jobs} jobs accepted of {KEYED_JOBS} keyed submits").into());
    }
    let per_job = match (before, after) {
        (Some(before), Some(after)) => format!("{} bytes", after.saturating_sub(before) / jobs),
        _ => "n/a".to_owned(),
    };
    println!("memory per pending keyed job (cluster benchmark's submit, resident): {per_job}");
    Ok(())
}

/// Builds `JOBS` finished jobs (`full`, `compacted`, or the `default` retention of 100 000
/// full and the rest compacted) in a fresh process and prints the
/// resident growth per job, indexes included.
fn memory_child(kind: &str) -> BenchResult<()> {
    if kind == "keyed" {
        return keyed_memory_child();
    }
    let (full, compacted, workers) = finished_job_templates()?;
    let retained = match kind {
        "full" => JOBS,
        "compacted" => 0,
        _ => RETAINED_FINISHED_JOBS_DEFAULT,
    };
    let before = resident_bytes();
    let state = many_jobs((&full, &compacted), &workers, JOBS, retained)?;
    let after = resident_bytes();
    let per_job = match (before, after) {
        (Some(before), Some(after)) => format!("{} bytes", after.saturating_sub(before) / JOBS),
        _ => "n/a".to_owned(),
    };
    println!("memory per finished 2-workflow job ({kind}, resident, with indexes): {per_job}");
    drop(state);
    Ok(())
}

/// Wall time and, where the kernel tells, this thread's on-CPU time (the machine may be shared:
/// the CPU time is the single-core cost).
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

fn timed<T>(work: impl FnOnce() -> T) -> (T, Timing) {
    let cpu_start = thread_cpu_time();
    let start = Instant::now();
    let value = work();
    let wall = start.elapsed();
    let cpu = match (cpu_start, thread_cpu_time()) {
        (Some(start), Some(end)) => end.checked_sub(start),
        _ => None,
    };
    (value, Timing { wall, cpu })
}

/// On-CPU time of this thread from `/proc/thread-self/schedstat` (first field, nanoseconds).
fn thread_cpu_time() -> Option<Duration> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = schedstat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn print_row(measure: &str, items: u64, time: Timing, unit: &str) {
    let rate = |seconds: f64| items as f64 / seconds / 1e6;
    let wall = time.wall.as_secs_f64();
    let cpu = match time.cpu {
        Some(cpu) => {
            let seconds = cpu.as_secs_f64();
            format!("{seconds:>8.3} s {:>8.2} M {unit}/s", rate(seconds))
        }
        None => "n/a".to_owned(),
    };
    println!(
        "{measure:<40} {items:>10} {wall:>8.3} s {:>8.2} M/s | {cpu}",
        rate(wall)
    );
}

fn job_spec(n: u64) -> JobSpec {
    let workflow =
        |name: &str| WorkflowSpec::new(name, vec!["sh".into(), "-c".into(), "true".into()]);
    JobSpec::new(
        format!("job-{n}"),
        vec![workflow("build"), workflow("test")],
    )
}

/// One leader change, `WORKERS` registrations, then rounds of 1 000 jobs: submit all, dispatch
/// both workflows of each, start, one progress report each, complete. One event per log entry,
/// as the node proposes them.
fn generate_log(rounds: u64, first_job: u64) -> Vec<(LogIndex, Proposal)> {
    let mut log = Vec::new();
    let mut push = |event: Event| -> LogIndex {
        let index = LogIndex(log.len() as u64 + 1);
        let proposal = Proposal {
            stamp_ms: 1_700_000_000_000 + index.0,
            events: vec![event],
        };
        log.push((index, proposal));
        index
    };
    let fence_token = FenceToken(1);
    push(Event::LeaderChanged {
        term: Term(1),
        leader: NodeId(1),
        fence_token,
    });
    for worker in 0..WORKERS {
        let address = format!("10.0.0.{worker}:7000");
        push(Event::WorkerRegistered {
            worker: WorkerId(worker),
            cores: WORKER_CORES,
            address,
        });
    }
    for round in 0..rounds {
        let mut targets = Vec::new();
        for n in 0..ROUND_JOBS {
            let spec = job_spec(first_job + round * ROUND_JOBS + n);
            let index = push(Event::JobSubmitted {
                idempotency_key: None,
                spec,
            });
            for workflow in 0..2u32 {
                let job = JobId(index.0 * 1000);
                let target = WorkflowRef {
                    job,
                    workflow: WorkflowId(workflow),
                    attempt: Attempt(1),
                };
                targets.push((target, WorkerId((n * 2 + u64::from(workflow)) % WORKERS)));
            }
        }
        for &(target, worker) in &targets {
            push(Event::WorkflowDispatched {
                target,
                worker,
                fence_token,
            });
        }
        for &(target, worker) in &targets {
            push(Event::WorkflowStarted { target, worker });
        }
        for &(target, worker) in &targets {
            push(Event::WorkflowProgress {
                target,
                worker,
                progress: 1,
            });
        }
        for &(target, worker) in &targets {
            push(Event::WorkflowCompleted { target, worker });
        }
    }
    log
}

fn fold(log: &[(LogIndex, Proposal)]) -> State {
    let mut state = State::default();
    for (index, proposal) in log {
        apply(&mut state, *index, proposal);
    }
    state
}

fn decode_and_fold(encoded: &[(LogIndex, Vec<u8>)]) -> steward_statemachine::Result<State> {
    let mut state = State::default();
    for (index, bytes) in encoded {
        apply(&mut state, *index, &decode_proposal(bytes)?);
    }
    Ok(state)
}

/// One finished (completed) two-workflow job as the fold leaves it, in full and compacted,
/// and the workers. Its name has the length of a typical name among a million jobs.
fn finished_job_templates() -> BenchResult<(Job, Job, Vec<Worker>)> {
    let first = JOBS / 2;
    let full = fold(&generate_log(1, first));
    let config = StateConfig {
        retained_finished_jobs: 0,
        ..StateConfig::default()
    };
    let mut compacted = State::new(config)?;
    for (index, proposal) in &generate_log(1, first) {
        apply(&mut compacted, *index, proposal);
    }
    let job = full.jobs().next().ok_or("no job in the template log")?;
    let summary = compacted
        .jobs()
        .next()
        .ok_or("no job in the template log")?;
    if !summary.compacted || job.compacted {
        return Err("the template jobs are not as expected".into());
    }
    Ok((
        job.clone(),
        summary.clone(),
        full.workers().cloned().collect(),
    ))
}

/// `count` copies of the templates under fresh ids, each owning its own allocations; all but the
/// newest `retained` are copies of the compacted one, as the state machine leaves them.
fn many_jobs(
    (full, compacted): (&Job, &Job),
    workers: &[Worker],
    count: u64,
    retained: u64,
) -> BenchResult<State> {
    let config = StateConfig {
        retained_finished_jobs: retained,
        ..StateConfig::default()
    };
    let mut globals = State::new(config)?.globals().clone();
    globals.last_applied = LogIndex(count);
    let jobs = (1..=count).map(|n| {
        let template = if n + retained <= count {
            compacted
        } else {
            full
        };
        let mut job = template.clone();
        job.id = JobId(n * 1000);
        job
    });
    Ok(State::from_records(
        globals,
        jobs,
        Vec::new(),
        workers.iter().cloned(),
        Vec::new(),
    )?)
}

/// Resident set size from `/proc/self/statm` (Linux), in bytes.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
