//! Basic behaviour of `Wal`: append, read, reopen, truncate, purge, vote, rolling, errors.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::sync::Arc;

use steward_log::testing::FaultyFs;
use steward_log::{Error, LogIndex, Record, SyncPolicy, TryWrite, Wal, WalOptions};

fn small() -> WalOptions {
    WalOptions {
        segment_bytes_max: 4096,
        ..WalOptions::default()
    }
}

/// For fault injection: no background thread may consume an injected fault.
fn small_foreground() -> WalOptions {
    WalOptions {
        prepare_segments_in_background: false,
        ..small()
    }
}

fn rec(index: u64, term: u64) -> Record {
    Record::new(
        index,
        term,
        1,
        format!("payload {index} term {term}").into_bytes(),
    )
}

fn batch(range: std::ops::Range<u64>, term: u64) -> Vec<Record> {
    range.map(|i| rec(i, term)).collect()
}

fn indices(wal: &Wal) -> Vec<u64> {
    wal.range(0..u64::MAX)
        .unwrap()
        .iter()
        .map(|r| r.index.0)
        .collect()
}

#[test]
fn append_read_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(report.records, 0);
    assert_eq!(wal.last_index(), None);
    wal.append(batch(1..4, 1)).unwrap();
    wal.append(batch(4..6, 2)).unwrap();
    assert_eq!(wal.read(LogIndex(4)).unwrap(), Some(rec(4, 2)));
    assert_eq!(wal.read(LogIndex(6)).unwrap(), None);
    assert_eq!(wal.first_index(), Some(LogIndex(1)));
    assert_eq!(wal.last_index(), Some(LogIndex(5)));
    let m = wal.metrics();
    assert_eq!((m.appends, m.records), (2, 5));
    assert!(m.syncs >= 2);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(report.records, 5);
    assert_eq!(report.torn_tail, None);
    assert_eq!(
        wal.range(0..100).unwrap(),
        [batch(1..4, 1), batch(4..6, 2)].concat()
    );
}

#[test]
fn non_contiguous_batches_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    wal.append(batch(10..12, 1)).unwrap();
    let err = wal.append(batch(13..14, 1)).unwrap_err();
    assert!(matches!(
        err,
        Error::NotContiguous {
            expected: 12,
            got: 13
        }
    ));
    let err = wal.append(vec![rec(12, 1), rec(14, 1)]).unwrap_err();
    assert!(matches!(
        err,
        Error::NotContiguous {
            expected: 13,
            got: 14
        }
    ));
    assert_eq!(indices(&wal), vec![10, 11]);
}

#[test]
fn rolls_segments_and_iterates_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    for i in 1..=300 {
        wal.append(vec![rec(i, 1)]).unwrap();
    }
    let report = steward_log::scan_dir(dir.path()).unwrap();
    assert!(
        report.segments.len() > 3,
        "{} segments",
        report.segments.len()
    );
    assert!(report.is_clean());
    let got: Vec<u64> = wal.iter(50..1000).map(|r| r.unwrap().index.0).collect();
    assert_eq!(got, (50..=300).collect::<Vec<_>>());
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(indices(&wal), (1..=300).collect::<Vec<_>>());
}

#[test]
fn truncate_after_is_durable_and_allows_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    wal.append(batch(1..200, 1)).unwrap();
    wal.truncate_after(LogIndex(150)).unwrap();
    assert_eq!(wal.last_index(), Some(LogIndex(150)));
    wal.truncate_after(LogIndex(20)).unwrap();
    wal.append(batch(21..30, 2)).unwrap();
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(
        wal.range(0..100).unwrap(),
        [batch(1..21, 1), batch(21..30, 2)].concat()
    );
    wal.truncate_after(LogIndex(0)).unwrap();
    assert_eq!(wal.last_index(), None);
    assert_eq!(wal.next_index(), Some(LogIndex(1)));
}

#[test]
fn purge_before_keeps_active_segment_and_remembers_next_index() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    for start in (1..200).step_by(10) {
        wal.append(batch(start..start + 10, 1)).unwrap();
    }
    wal.purge_before(LogIndex(100)).unwrap();
    let first = wal.first_index().unwrap().0;
    assert!(first > 1 && first <= 100, "first {first}");
    assert_eq!(wal.last_index(), Some(LogIndex(200)));
    assert!(matches!(
        wal.truncate_after(LogIndex(0)),
        Err(Error::TruncateBeforeFirst { .. })
    ));
    wal.purge_before(LogIndex(500)).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (None, None));
    assert_eq!(wal.next_index(), Some(LogIndex(500)));
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.next_index(), Some(LogIndex(500)));
    assert!(matches!(
        wal.append(batch(1..2, 1)),
        Err(Error::NotContiguous { expected: 500, .. })
    ));
    wal.append(batch(500..502, 3)).unwrap();
    assert_eq!(indices(&wal), vec![500, 501]);
}

#[test]
fn vote_is_saved_replaced_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.read_vote().unwrap(), None);
    wal.save_vote(b"vote one").unwrap();
    wal.save_vote(b"vote two").unwrap();
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.read_vote().unwrap().as_deref(), Some(&b"vote two"[..]));
}

#[test]
fn short_writes_are_completed() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFs::new();
    faults.set_short_writes(true);
    let (wal, _) = Wal::open_with_fs(dir.path(), small_foreground(), Arc::new(fs)).unwrap();
    wal.append(batch(1..20, 1)).unwrap();
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.range(0..100).unwrap(), batch(1..20, 1));
}

#[test]
fn a_failed_sync_poisons_the_log_and_reopen_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFs::new();
    let (wal, _) = Wal::open_with_fs(dir.path(), small_foreground(), Arc::new(fs)).unwrap();
    wal.append(batch(1..3, 1)).unwrap();
    faults.fail_next_sync();
    assert!(matches!(
        wal.append(batch(3..4, 1)),
        Err(Error::Io {
            op: "fdatasync",
            ..
        })
    ));
    assert!(matches!(
        wal.append(batch(4..5, 1)),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(
        wal.truncate_after(LogIndex(1)),
        Err(Error::Poisoned { .. })
    ));
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert!(wal.last_index() >= Some(LogIndex(2)));
}

#[test]
fn a_failed_write_poisons_without_acknowledging() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, faults) = FaultyFs::new();
    let (wal, _) = Wal::open_with_fs(dir.path(), small_foreground(), Arc::new(fs)).unwrap();
    wal.append(batch(1..3, 1)).unwrap();
    faults.fail_next_write();
    assert!(matches!(
        wal.append(batch(3..4, 1)),
        Err(Error::Io {
            op: "write segment",
            ..
        })
    ));
    assert!(matches!(
        wal.append(batch(4..5, 1)),
        Err(Error::Poisoned { .. })
    ));
    assert!(matches!(wal.read(LogIndex(3)), Err(Error::Poisoned { .. })));
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(wal.last_index(), Some(LogIndex(2)));
}

#[test]
fn oversized_record_gets_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    wal.append(batch(1..3, 1)).unwrap();
    wal.append(vec![Record::new(3, 1, 1, vec![7u8; 10_000])])
        .unwrap();
    wal.append(batch(4..6, 1)).unwrap();
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(
        wal.read(LogIndex(3)).unwrap().unwrap().payload.len(),
        10_000
    );
    assert_eq!(indices(&wal), vec![1, 2, 3, 4, 5]);
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        segment_bytes_max: 10,
        sync_policy: SyncPolicy::Never,
        ..WalOptions::default()
    };
    assert!(matches!(
        Wal::open(dir.path(), options),
        Err(Error::InvalidOption {
            field: "segment_bytes_max",
            ..
        })
    ));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    assert!(matches!(
        Wal::open(dir.path(), small()),
        Err(Error::Locked { .. })
    ));
    drop(wal);
    Wal::open(dir.path(), small()).unwrap();
}

#[test]
fn wal_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Wal>();
}

#[test]
fn rolls_use_the_background_spare_and_close_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    for i in 1..=200 {
        wal.append(vec![rec(i, 1)]).unwrap();
    }
    drop(wal);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert!(report.removed_temp_files.is_empty());
    assert_eq!(indices(&wal), (1..=200).collect::<Vec<_>>());
    assert!(steward_log::scan_dir(dir.path()).unwrap().is_clean());
}

/// `try_write` writes what fits in the active segment and gives back, untouched, a batch that
/// would roll it; `write` then takes the batch, and the log holds every record once.
#[test]
fn try_write_declines_only_what_would_roll_and_write_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    let (mut done, mut declined) = (0, 0);
    for i in 1..=200 {
        let ticket = match wal.try_write(vec![rec(i, 1)]) {
            TryWrite::Done(written) => {
                done += 1;
                written.unwrap()
            }
            TryWrite::WouldBlock(records) => {
                declined += 1;
                assert_eq!(records, vec![rec(i, 1)]);
                wal.write(records).unwrap()
            }
        };
        wal.wait_durable(ticket).unwrap();
    }
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wal")
        })
        .count();
    assert!(segments > 2, "200 records must span several 4 KiB segments");
    assert!(
        declined >= segments - 1,
        "each roll was left to write ({declined} declined, {segments} segments)"
    );
    assert!(done > declined * 10, "{done} done, {declined} declined");
    assert_eq!(indices(&wal), (1..=200).collect::<Vec<_>>());
    match wal.try_write(vec![rec(202, 1)]) {
        TryWrite::Done(Err(Error::NotContiguous {
            expected: 201,
            got: 202,
        })) => {}
        other => panic!("a gap must be refused as write refuses it: {other:?}"),
    }
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(report.records, 200);
    assert_eq!(indices(&wal), (1..=200).collect::<Vec<_>>());
}

#[test]
fn never_policy_still_reaches_the_file_before_append_returns() {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        sync_policy: SyncPolicy::Never,
        ..small()
    };
    let (wal, _) = Wal::open(dir.path(), options).unwrap();
    wal.append(batch(1..6, 1)).unwrap();
    // Another reader of the directory (as after a process crash) sees every record.
    let seen: Vec<u64> = steward_log::read_dir_records(dir.path(), 0..100)
        .unwrap()
        .map(|r| r.unwrap().index.0)
        .collect();
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    assert_eq!(wal.metrics().syncs, 0);
}

#[test]
fn iter_starts_at_the_first_record_after_a_purge() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small()).unwrap();
    for start in (1..600).step_by(20) {
        wal.append(batch(start..start + 20, 1)).unwrap();
    }
    wal.purge_before(LogIndex(400)).unwrap();
    let first = wal.first_index().unwrap().0;
    assert!(
        first > 256,
        "purge must have removed more than one iterator chunk ({first})"
    );
    let got: Vec<u64> = wal.iter(0..10_000).map(|r| r.unwrap().index.0).collect();
    assert_eq!(got, (first..=600).collect::<Vec<_>>());
}
