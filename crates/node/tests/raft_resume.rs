//! The restart path of ADR 0015: the state machine rebuilds its state from the newest snapshot
//! and the WAL up to the entry its sled view applied last, gets exactly the state the view
//! holds, and falls back to reading the view whenever the WAL cannot reach that entry. The view
//! itself is written behind the apply path (ADR 0016) and catches up while the node runs.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::Bytes;
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use steward_log::{SyncPolicy, Wal, WalOptions};
use steward_node::raft::log_store::entry_to_record;
use steward_node::raft::resume::{fold_wal, WalReplay};
use steward_node::raft::state_machine::StateMachineStore;
use steward_node::raft::{NodeId, ProposalBytes, TypeConfig};
use steward_statemachine::{
    decide, encode_proposal, state_hash, Command, IdempotencyKey, JobSpec, Proposal, State,
    WorkflowSpec,
};

const TERM: u64 = 3;

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn open_wal(dir: &Path) -> Wal {
    let options = WalOptions {
        sync_policy: SyncPolicy::Never,
        ..WalOptions::default()
    };
    Wal::open(&dir.join("wal"), options).unwrap().0
}

fn open_sm(dir: &Path, wal: Option<&Wal>) -> StateMachineStore {
    let replay = wal.map(|wal| WalReplay {
        wal,
        purged_index: 0,
    });
    StateMachineStore::open(&dir.join("sled"), &dir.join("snapshots"), replay).unwrap()
}

fn hash(sm: &StateMachineStore) -> u64 {
    sm.shared().read(state_hash)
}

/// Entry `index`: a keyed submit, except every fifth entry, which is blank (as a new leader's).
fn entry(sm: &StateMachineStore, index: u64) -> Entry<TypeConfig> {
    if index % 5 == 0 {
        return Entry {
            log_id: log_id(TERM, index),
            payload: EntryPayload::Blank,
        };
    }
    let stamp_ms = 1_000 + index;
    let command = Command::SubmitJob {
        idempotency_key: Some(IdempotencyKey::new("tests", format!("key-{index}"))),
        spec: JobSpec::new(
            format!("job-{index}"),
            vec![WorkflowSpec::new("w", vec!["true".to_string()])],
        ),
    };
    let events = sm
        .shared()
        .read(|state| decide(state, command, stamp_ms))
        .unwrap();
    let proposal = Proposal { stamp_ms, events };
    Entry {
        log_id: log_id(TERM, index),
        payload: EntryPayload::Normal(ProposalBytes(Bytes::from(
            encode_proposal(&proposal).unwrap(),
        ))),
    }
}

/// Applies entries `range` one at a time and writes the first `in_wal` of them to the WAL too
/// (the rest are applied but lost from the log, as after a power loss that tore its tail).
async fn apply_and_log(
    sm: &mut StateMachineStore,
    wal: &Wal,
    range: std::ops::Range<u64>,
    in_wal: u64,
) {
    for index in range {
        let entry = entry(sm, index);
        if index < in_wal {
            wal.append(vec![entry_to_record(&entry).unwrap()]).unwrap();
        }
        sm.apply(vec![entry]).await.unwrap();
    }
}

/// A fresh data directory whose WAL and state machine hold entries `range` (all logged).
async fn logged(range: std::ops::Range<u64>) -> (tempfile::TempDir, Wal, StateMachineStore) {
    let tmp = tempfile::tempdir().unwrap();
    let wal = open_wal(tmp.path());
    let mut sm = open_sm(tmp.path(), Some(&wal));
    apply_and_log(&mut sm, &wal, range, u64::MAX).await;
    (tmp, wal, sm)
}

#[tokio::test]
async fn the_wal_replay_rebuilds_exactly_the_state_the_view_holds() {
    let (tmp, wal, sm) = logged(1..41).await;
    let expected = hash(&sm);
    drop(sm);

    let replayed = open_sm(tmp.path(), Some(&wal));
    assert_eq!(hash(&replayed), expected, "snapshot-less replay");
    let (applied, membership) = replayed.clone().applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(TERM, 40)));
    assert_eq!(membership, Default::default());
    drop(replayed);
    let from_view = open_sm(tmp.path(), None);
    assert_eq!(hash(&from_view), expected, "the view agrees");
    assert_eq!(from_view.shared().read(|s| s.jobs().count()), 32);
}

#[tokio::test]
async fn the_view_catches_up_behind_the_apply_path_while_open() {
    let (_tmp, _wal, sm) = logged(1..21).await;
    let shared = sm.shared();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while shared.view_applied_index().unwrap() < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the view writer never wrote entry 20"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(shared.view_applied_index().unwrap(), 20);
}

#[tokio::test]
async fn a_snapshot_plus_the_wal_after_it_rebuilds_the_state() {
    let (tmp, wal, mut sm) = logged(1..21).await;
    sm.build_snapshot().await.unwrap();
    apply_and_log(&mut sm, &wal, 21..36, u64::MAX).await;
    let expected = hash(&sm);
    drop(sm);

    let mut replayed = open_sm(tmp.path(), Some(&wal));
    assert_eq!(hash(&replayed), expected);
    assert_eq!(
        replayed.applied_state().await.unwrap().0,
        Some(log_id(TERM, 35))
    );
    let snapshot = replayed.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(
        snapshot.meta.last_log_id,
        Some(log_id(TERM, 20)),
        "the snapshot read at open is the one openraft gets"
    );
}

#[tokio::test]
async fn a_wal_that_lost_entries_the_view_applied_falls_back_to_the_view() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = open_wal(tmp.path());
    let mut sm = open_sm(tmp.path(), Some(&wal));
    apply_and_log(&mut sm, &wal, 1..31, 24).await;
    let expected = hash(&sm);
    drop(sm);

    let reopened = open_sm(tmp.path(), Some(&wal));
    assert_eq!(
        hash(&reopened),
        expected,
        "read from the view, not cut short"
    );
    assert_eq!(reopened.shared().read(|s| s.jobs().count()), 24);
}

#[tokio::test]
async fn fold_wal_refuses_what_the_wal_cannot_prove() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = open_wal(tmp.path());
    let mut sm = open_sm(tmp.path(), None);
    apply_and_log(&mut sm, &wal, 1..11, u64::MAX).await;
    let replay = WalReplay {
        wal: &wal,
        purged_index: 0,
    };
    let folded = fold_wal(State::default(), replay, 0, log_id(TERM, 10))
        .unwrap()
        .expect("the whole log folds");
    assert_eq!(folded.entries, 10);
    assert_eq!(state_hash(&folded.state), hash(&sm));

    let nothing = fold_wal(State::default(), replay, 10, log_id(TERM, 10))
        .unwrap()
        .expect("nothing to fold");
    assert_eq!(nothing.entries, 0);

    let refused = [
        ("beyond the end", replay, 0, log_id(TERM, 11)),
        (
            "another term at the target",
            replay,
            0,
            log_id(TERM + 1, 10),
        ),
        (
            "from below the purge point",
            WalReplay {
                wal: &wal,
                purged_index: 4,
            },
            2,
            log_id(TERM, 10),
        ),
    ];
    for (case, replay, after, upto) in refused {
        let folded = fold_wal(State::default(), replay, after, upto).unwrap();
        assert!(folded.is_none(), "{case}");
    }
}

/// An entry whose proposal does not decode is skipped alike by the apply path (which decodes
/// before it locks the state, ADR 0023) and by the restart's reader thread: the rebuilt state
/// is the one the running member had.
#[tokio::test]
async fn an_undecodable_proposal_is_skipped_alike_live_and_at_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = open_wal(tmp.path());
    let mut sm = open_sm(tmp.path(), Some(&wal));
    apply_and_log(&mut sm, &wal, 1..6, u64::MAX).await;
    let garbage = Entry {
        log_id: log_id(TERM, 6),
        payload: EntryPayload::Normal(ProposalBytes(Bytes::from_static(
            b"STEV\x01\x00not a proposal",
        ))),
    };
    wal.append(vec![entry_to_record(&garbage).unwrap()])
        .unwrap();
    let responses = sm.apply(vec![garbage]).await.unwrap();
    assert_eq!(responses.len(), 1);
    assert!(responses[0].outcomes.is_empty(), "nothing was applied");
    apply_and_log(&mut sm, &wal, 7..12, u64::MAX).await;
    let expected = hash(&sm);
    drop(sm);

    let replayed = open_sm(tmp.path(), Some(&wal));
    assert_eq!(hash(&replayed), expected);
    let (applied, _) = replayed.clone().applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(TERM, 11)));
    // Keyed submits at 1-4, 7-9 and 11; 5 and 10 are blank, 6 is the garbage.
    assert_eq!(replayed.shared().read(|s| s.jobs().count()), 8);
}
