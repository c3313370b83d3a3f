//! The openraft log-store adapter on its own, over a real WAL in a tempdir: entry kinds survive
//! the WAL, the vote and the purge point survive a reopen, truncate and purge map to the WAL's.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use openraft::storage::RaftLogStorage;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, Vote};
use steward_log::{SyncPolicy, Wal, WalOptions};
use steward_node::raft::log_store::{record_to_entry, LogStore};
use steward_node::raft::{NodeId, PeerNode, ProposalBytes, TypeConfig};

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

async fn open(dir: &std::path::Path) -> (Arc<Wal>, LogStore) {
    let options = WalOptions {
        sync_policy: SyncPolicy::Never,
        ..WalOptions::default()
    };
    let (wal, _report) = Wal::open(dir, options).unwrap();
    let wal = Arc::new(wal);
    let store = LogStore::new(wal.clone(), dir).await.unwrap();
    (wal, store)
}

fn entries(term: u64, range: std::ops::Range<u64>) -> Vec<Entry<TypeConfig>> {
    range
        .map(|i| {
            let payload = match i % 3 {
                0 => EntryPayload::Blank,
                1 => EntryPayload::Normal(ProposalBytes(Bytes::from(format!("p{i}")))),
                _ => {
                    let ids: BTreeSet<NodeId> = [1, 2].into_iter().collect();
                    let nodes: BTreeMap<NodeId, PeerNode> =
                        ids.iter().map(|id| (*id, PeerNode::default())).collect();
                    EntryPayload::Membership(Membership::new(vec![ids], nodes))
                }
            };
            Entry {
                log_id: log_id(term, i),
                payload,
            }
        })
        .collect()
}

async fn append(store: &mut LogStore, batch: Vec<Entry<TypeConfig>>) {
    // The adapter calls the callback before returning; `blocking_append` drives it.
    openraft::storage::RaftLogStorageExt::blocking_append(store, batch)
        .await
        .unwrap();
}

#[tokio::test]
async fn entries_round_trip_and_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (_wal, mut store) = open(tmp.path()).await;
    let written = entries(1, 1..10);
    append(&mut store, written.clone()).await;
    store.save_vote(&Vote::new_committed(1, 2)).await.unwrap();
    let read = store.try_get_log_entries(1..10).await.unwrap();
    assert_eq!(format!("{read:?}"), format!("{written:?}"));
    drop(store);
    drop(_wal);

    let (_wal, mut store) = open(tmp.path()).await;
    assert_eq!(
        store.read_vote().await.unwrap(),
        Some(Vote::new(1, 2)),
        "a reopened store keeps the vote's term and candidate but never a committed vote, \
         so no node resumes leadership after a restart (ADR 0014)"
    );
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(1, 9)));
    assert_eq!(state.last_purged_log_id, None);
    let read = store.try_get_log_entries(3..=4).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].log_id, log_id(1, 3));
}

#[tokio::test]
async fn truncate_then_append_a_new_term() {
    let tmp = tempfile::tempdir().unwrap();
    let (_wal, mut store) = open(tmp.path()).await;
    append(&mut store, entries(1, 1..10)).await;
    store.truncate(log_id(1, 6)).await.unwrap();
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 5))
    );
    append(&mut store, entries(2, 6..8)).await;
    let read = store.try_get_log_entries(5..100).await.unwrap();
    let ids: Vec<_> = read.iter().map(|e| e.log_id).collect();
    assert_eq!(ids, vec![log_id(1, 5), log_id(2, 6), log_id(2, 7)]);
}

#[tokio::test]
async fn purge_point_hides_leftovers_and_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (_wal, mut store) = open(tmp.path()).await;
    append(&mut store, entries(1, 1..20)).await;
    store.purge(log_id(1, 7)).await.unwrap();
    let read = store.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(
        read.first().map(|e| e.log_id),
        Some(log_id(1, 8)),
        "purged entries are hidden"
    );
    drop(store);
    drop(_wal);
    let (wal, mut store) = open(tmp.path()).await;
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 7)));
    assert_eq!(state.last_log_id, Some(log_id(1, 19)));
    // Purging past the end leaves an empty log that continues after the purge point.
    store.purge(log_id(1, 25)).await.unwrap();
    assert!(store.try_get_log_entries(0..100).await.unwrap().is_empty());
    append(&mut store, entries(2, 26..28)).await;
    assert_eq!(wal.first_index().map(|i| i.0), Some(26));
}

/// A crash between saving the purge point and deleting segments leaves a WAL that ends below
/// the purge point (a follower that installed a snapshot past its log's end). Reopening must
/// finish the purge, so that the next entry after the purge point is accepted.
#[tokio::test]
async fn a_purge_interrupted_by_a_crash_is_finished_on_reopen() {
    // The vote blob of a store that purged past its end, to graft onto one that did not.
    let purged = tempfile::tempdir().unwrap();
    let blob = {
        let (wal, mut store) = open(purged.path()).await;
        append(&mut store, entries(1, 1..10)).await;
        store.save_vote(&Vote::new_committed(1, 2)).await.unwrap();
        store.purge(log_id(1, 25)).await.unwrap();
        wal.read_vote().unwrap().unwrap()
    };
    let tmp = tempfile::tempdir().unwrap();
    {
        let (wal, mut store) = open(tmp.path()).await;
        append(&mut store, entries(1, 1..10)).await;
        // The purge point is durable, the segments were never deleted: the crash.
        wal.save_vote(&blob).unwrap();
    }
    let (wal, mut store) = open(tmp.path()).await;
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 25)));
    assert_eq!(state.last_log_id, Some(log_id(1, 25)));
    append(&mut store, entries(2, 26..28)).await;
    assert_eq!(wal.first_index().map(|i| i.0), Some(26));
    let read = store.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        vec![26, 27]
    );
}

#[test]
fn unknown_record_kind_is_an_error_not_a_panic() {
    let record = steward_log::Record::new(3, 1, 9, Bytes::from_static(b"x"));
    assert!(record_to_entry(record).is_err());
    let record = steward_log::Record::new(3, 1, 3, Bytes::from_static(b"\xff\xff"));
    assert!(
        record_to_entry(record).is_err(),
        "a damaged membership payload is refused"
    );
}
