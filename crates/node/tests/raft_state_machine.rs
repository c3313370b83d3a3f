//! The state-machine adapter on its own: proposals applied through steward-statemachine land in
//! sled, survive a reopen, snapshot into a self-checking file that installs elsewhere, and a
//! view that is behind the snapshot is restored from it on open.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::path::Path;

use bytes::Bytes;
use openraft::storage::{RaftStateMachine, SnapshotMeta};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use steward_node::raft::state_machine::StateMachineStore;
use steward_node::raft::{NodeId, ProposalBytes, TypeConfig};
use steward_statemachine::{
    decide, encode_proposal, state_hash, Command, ExitRecord, JobSpec, Outcome, Proposal,
    ReportKind, Term, WorkerId, WorkerReport, WorkflowId, WorkflowRef, WorkflowSpec,
};

fn open(dir: &Path) -> StateMachineStore {
    StateMachineStore::open(&dir.join("sled"), &dir.join("snapshots"), None).unwrap()
}

fn log_id(index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(1, 0), index)
}

fn submit(sm: &StateMachineStore, name: &str, stamp_ms: u64) -> ProposalBytes {
    let spec = JobSpec::new(name, vec![WorkflowSpec::new("w", vec!["true".to_string()])]);
    let command = Command::SubmitJob {
        idempotency_key: None,
        spec,
    };
    let events = sm
        .shared()
        .read(|state| decide(state, command, stamp_ms))
        .unwrap();
    let proposal = Proposal { stamp_ms, events };
    ProposalBytes(Bytes::from(encode_proposal(&proposal).unwrap()))
}

async fn apply_jobs(sm: &mut StateMachineStore, from: u64, count: u64) -> Vec<Outcome> {
    let mut entries = Vec::new();
    for index in from..from + count {
        let payload = EntryPayload::Normal(submit(sm, &format!("job-{index}"), 1_000 + index));
        entries.push(Entry::<TypeConfig> {
            log_id: log_id(index),
            payload,
        });
    }
    entries.push(Entry {
        log_id: log_id(from + count),
        payload: EntryPayload::Blank,
    });
    let responses = sm.apply(entries).await.unwrap();
    responses.into_iter().flat_map(|r| r.outcomes).collect()
}

fn hash(sm: &StateMachineStore) -> u64 {
    sm.shared().read(state_hash)
}

/// Decides `command` against the applied state and applies it as the entry at `index`.
async fn apply_command(sm: &mut StateMachineStore, index: u64, command: Command) -> Vec<Outcome> {
    let stamp_ms = 1_000 + index;
    let events = sm
        .shared()
        .read(|state| decide(state, command, stamp_ms))
        .unwrap();
    let payload = ProposalBytes(Bytes::from(
        encode_proposal(&Proposal { stamp_ms, events }).unwrap(),
    ));
    let entry = Entry::<TypeConfig> {
        log_id: log_id(index),
        payload: EntryPayload::Normal(payload),
    };
    let responses = sm.apply(vec![entry]).await.unwrap();
    responses.into_iter().flat_map(|r| r.outcomes).collect()
}

#[tokio::test]
async fn exit_records_survive_reopen_from_sled() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sm = open(tmp.path());
    let worker = WorkerId(9);
    let register = Command::RegisterWorker {
        worker,
        cores: 1,
        address: "127.0.0.1:1".into(),
    };
    apply_command(&mut sm, 1, register).await;
    apply_command(
        &mut sm,
        2,
        Command::BecomeLeader {
            term: Term(1),
            node: steward_statemachine::NodeId(1),
        },
    )
    .await;
    let outcomes = apply_jobs(&mut sm, 3, 1).await;
    let Some(Outcome::JobAccepted { job }) = outcomes.first().cloned() else {
        panic!("{outcomes:?}");
    };
    apply_command(&mut sm, 5, Command::DispatchPending { max_assignments: 1 }).await;
    let target = WorkflowRef {
        job,
        workflow: WorkflowId(0),
        attempt: sm
            .shared()
            .read(|s| s.job(job).unwrap().workflows[0].attempt),
    };
    let report = |kind, exit| {
        Command::Report(WorkerReport {
            worker,
            target,
            kind,
            exit,
        })
    };
    apply_command(&mut sm, 6, report(ReportKind::Started, None)).await;
    let exit = ExitRecord {
        exit_code: Some(0),
        signal: None,
        duration_ms: 12,
        output_tail: "all done\n".into(),
    };
    let outcomes = apply_command(
        &mut sm,
        7,
        report(ReportKind::Completed, Some(exit.clone())),
    )
    .await;
    assert!(
        outcomes
            .iter()
            .all(|o| !matches!(o, Outcome::Rejected { .. })),
        "{outcomes:?}"
    );
    let before = hash(&sm);
    drop(sm);

    let sm = open(tmp.path());
    assert_eq!(
        hash(&sm),
        before,
        "the sled view rebuilds the output records too"
    );
    let kept = sm
        .shared()
        .read(|s| s.output(job, WorkflowId(0)).cloned())
        .unwrap();
    assert_eq!(kept.exit, exit);
}

#[tokio::test]
async fn applied_jobs_survive_reopen_from_sled() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sm = open(tmp.path());
    let outcomes = apply_jobs(&mut sm, 1, 5).await;
    assert_eq!(outcomes.len(), 5);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::JobAccepted { .. })),
        "{outcomes:?}"
    );
    let before = hash(&sm);
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(6)));
    drop(sm);

    let mut sm = open(tmp.path());
    assert_eq!(hash(&sm), before, "the sled view rebuilds the same state");
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(6)));
    assert_eq!(sm.shared().read(|s| s.jobs().count()), 5);
}

#[tokio::test]
async fn snapshot_installs_on_another_node_and_restores_a_lagging_view() {
    let tmp = tempfile::tempdir().unwrap();
    let mut leader = open(&tmp.path().join("a"));
    apply_jobs(&mut leader, 1, 4).await;
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(5)));
    let image = snapshot.snapshot.into_inner();

    let mut follower = open(&tmp.path().join("b"));
    let meta: SnapshotMeta<NodeId, _> = snapshot.meta.clone();
    follower
        .install_snapshot(&meta, Box::new(Cursor::new(image.clone())))
        .await
        .unwrap();
    assert_eq!(hash(&follower), hash(&leader));
    let current = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.last_log_id, Some(log_id(5)));
    // The view is rewritten behind the install (ADR 0018); once written it names the snapshot.
    follower.shared().flush();
    assert_eq!(follower.shared().view_applied_index().unwrap(), 5);

    // The follower's sled view loses everything (as after a crash that sled never flushed):
    // opening again restores from the durable snapshot file.
    drop(follower);
    std::fs::remove_dir_all(tmp.path().join("b").join("sled")).unwrap();
    let mut follower = open(&tmp.path().join("b"));
    assert_eq!(hash(&follower), hash(&leader));
    assert_eq!(follower.applied_state().await.unwrap().0, Some(log_id(5)));

    // Damaged bytes from a peer are refused, not installed, and nothing panics.
    let mut damaged = image;
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    let result = follower
        .install_snapshot(&meta, Box::new(Cursor::new(damaged)))
        .await;
    assert!(result.is_err());
    assert_eq!(hash(&follower), hash(&leader));
}

/// `apply` folds a small batch on its runtime thread and a large one (over 16 KiB of payload) on
/// a blocking thread (ADR 0026): the same entries give the same outcomes and the same state
/// either way.
#[tokio::test]
async fn small_and_large_batches_fold_to_the_same_state() {
    let (one_dir, batch_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut one_by_one, mut batched) = (open(one_dir.path()), open(batch_dir.path()));
    let mut entries = Vec::new();
    let mut outcomes = Vec::new();
    for index in 1..=600 {
        let entry = Entry::<TypeConfig> {
            log_id: log_id(index),
            payload: EntryPayload::Normal(submit(
                &one_by_one,
                &format!("job-{index}"),
                1_000 + index,
            )),
        };
        entries.push(entry.clone());
        let responses = one_by_one.apply(vec![entry]).await.unwrap();
        outcomes.extend(responses.into_iter().flat_map(|r| r.outcomes));
    }
    let payload: usize = entries
        .iter()
        .map(|e| match &e.payload {
            EntryPayload::Normal(bytes) => bytes.0.len(),
            _ => 0,
        })
        .sum();
    assert!(
        payload > 16 * 1024,
        "the batch must be large: {payload} bytes"
    );
    let responses = batched.apply(entries).await.unwrap();
    let batched_outcomes: Vec<Outcome> = responses.into_iter().flat_map(|r| r.outcomes).collect();
    assert_eq!(outcomes.len(), 600);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Outcome::JobAccepted { .. })),
        "{outcomes:?}"
    );
    assert_eq!(batched_outcomes, outcomes);
    assert_eq!(hash(&batched), hash(&one_by_one));
}

#[tokio::test]
async fn an_undecodable_proposal_is_skipped_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sm = open(tmp.path());
    let bad = Entry::<TypeConfig> {
        log_id: log_id(1),
        payload: EntryPayload::Normal(ProposalBytes(Bytes::from_static(b"garbage"))),
    };
    let responses = sm.apply(vec![bad]).await.unwrap();
    assert!(responses[0].outcomes.is_empty());
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1)));
}

/// A reader on the async runtime never parks its worker thread behind a waiting `apply`
/// (ADR 0019): while a long reader (as a snapshot build is) holds the state and `apply` waits
/// for it, a runtime with one worker still runs the task that lets the long reader go.
#[test]
fn async_reads_leave_the_runtime_free_while_apply_waits() {
    use std::sync::mpsc;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let sm = open(dir.path());
    let shared = sm.shared();
    let (held_tx, held) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let long_reader = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            shared.read(|_| {
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })
        })
    };
    held.recv().unwrap();
    let applier = {
        let mut sm = sm.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(apply_jobs(&mut sm, 1, 1))
        })
    };
    // Lets the applier reach the lock. Should it not have yet, the read below does not wait and
    // the test shows nothing, but it cannot fail for that reason.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!applier.is_finished(), "apply ran under a held read lock");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (done_tx, done) = mpsc::channel();
    runtime.spawn(async move {
        let jobs = shared.read_async(|state| state.parts().jobs().len()).await;
        done_tx.send(jobs).unwrap();
    });
    let releaser = release.clone();
    runtime.spawn(async move { releaser.send(()).unwrap() });
    let outcome = done.recv_timeout(Duration::from_secs(30));
    if outcome.is_err() {
        // Unblocks the parked worker so that the failure below is reported, not a hang.
        release.send(()).unwrap();
    }
    let jobs = outcome.expect("the runtime's only worker was parked on the state lock");
    jobs.unwrap();
    long_reader.join().unwrap();
    let outcomes = applier.join().unwrap();
    assert!(
        matches!(outcomes[0], Outcome::JobAccepted { .. }),
        "{outcomes:?}"
    );
}
