//! Group commit: many threads appending at once share syncs, and every acknowledged record is
//! readable, in order, after reopening.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use steward_log::testing::FaultyFs;
use steward_log::{Error, LogIndex, SyncPolicy, Wal, WalOptions};

use common::{all_records, fast_tempdir, record};

const THREADS: usize = 16;
const APPENDS_PER_THREAD: usize = 150;

fn run(options: WalOptions) {
    let dir = fast_tempdir();
    let (wal, _) = Wal::open(dir.path(), options).unwrap();
    let wal = Arc::new(wal);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || {
                let mut acked = Vec::new();
                for _ in 0..APPENDS_PER_THREAD {
                    let ticket = wal
                        .append_next(|next| vec![record(next.0, t as u64, 40 + t)])
                        .unwrap();
                    acked.push(ticket.last_index().unwrap());
                }
                acked
            })
        })
        .collect();
    let mut acked: Vec<LogIndex> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    acked.sort();
    let total = (THREADS * APPENDS_PER_THREAD) as u64;
    assert_eq!(acked, (1..=total).map(LogIndex).collect::<Vec<_>>());
    let metrics = wal.metrics();
    assert_eq!(metrics.records, total);
    if options.sync_policy != SyncPolicy::Never {
        assert!(
            metrics.syncs <= total,
            "{} syncs for {total} records",
            metrics.syncs
        );
        assert_eq!(metrics.records_synced, total);
    }
    let before = all_records(&wal);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), options).unwrap();
    assert_eq!(report.records, total);
    let after = all_records(&wal);
    assert_eq!(after, before);
    for (i, rec) in after.iter().enumerate() {
        assert_eq!(rec.index.0, i as u64 + 1);
        let writer = rec.term as usize;
        assert_eq!(*rec, record(rec.index.0, rec.term, 40 + writer));
    }
}

#[test]
fn concurrent_appenders_with_always_share_syncs() {
    run(WalOptions {
        segment_bytes_max: 16 << 10,
        ..WalOptions::default()
    });
}

#[test]
fn concurrent_appenders_with_batch_policy() {
    run(WalOptions {
        segment_bytes_max: 16 << 10,
        sync_policy: SyncPolicy::Batch {
            max_delay: Duration::from_micros(200),
        },
        ..WalOptions::default()
    });
}

#[test]
fn appenders_share_one_slow_fdatasync() {
    let dir = fast_tempdir();
    let (fs, faults) = FaultyFs::new();
    faults.set_sync_delay(Duration::from_millis(2));
    let (wal, _) = Wal::open_with_fs(dir.path(), WalOptions::default(), Arc::new(fs)).unwrap();
    let wal = Arc::new(wal);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || {
                for _ in 0..20 {
                    wal.append_next(|next| vec![record(next.0, t as u64, 64)])
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let m = wal.metrics();
    let total = THREADS as u64 * 20;
    assert_eq!(m.records_synced, total);
    // Unbatched, every append would need its own sync; with 16 appenders waiting on a 2 ms sync,
    // each sync must cover several of them.
    assert!(
        m.syncs * 4 <= total,
        "{} syncs for {total} records",
        m.syncs
    );
    assert!(m.records_per_sync() >= 4.0);
}

#[test]
fn write_then_wait_pipelines() {
    let dir = fast_tempdir();
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    let tickets: Vec<_> = (1..=50)
        .map(|i| wal.write(vec![record(i, 1, 10)]).unwrap())
        .collect();
    for ticket in tickets {
        wal.wait_durable(ticket).unwrap();
    }
    assert!(
        wal.metrics().syncs <= 2,
        "one sync covers everything written before it"
    );
    assert_eq!(wal.last_index(), Some(LogIndex(50)));
}

/// A failed `fdatasync` while many appenders are parked for it: every appender comes back with
/// an error instead of hanging, and none is acknowledged unless a successful sync covered it.
#[test]
fn a_failed_sync_under_parked_appenders_acknowledges_only_synced_records() {
    let dir = fast_tempdir();
    let (fs, faults) = FaultyFs::new();
    faults.set_sync_delay(Duration::from_millis(1));
    let options = WalOptions {
        prepare_segments_in_background: false,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open_with_fs(dir.path(), options, Arc::new(fs)).unwrap();
    let wal = Arc::new(wal);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let (wal, done_tx) = (Arc::clone(&wal), done_tx.clone());
        handles.push(thread::spawn(move || {
            let mut acked = Vec::new();
            let error = loop {
                match wal.append_next(|next| vec![record(next.0, t as u64, 64)]) {
                    Ok(ticket) => acked.push(ticket.last_index().unwrap().0),
                    Err(e) => break e,
                }
            };
            done_tx.send((acked, error)).unwrap();
        }));
    }
    while wal.metrics().syncs < 5 {
        thread::sleep(Duration::from_millis(1));
    }
    faults.fail_next_sync();
    let mut acked = Vec::new();
    for _ in 0..THREADS {
        // A generous bound that only a lost wake-up (an appender parked forever) can exceed.
        let (thread_acked, error) = done_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert!(
            matches!(error, Error::Io { .. } | Error::Poisoned { .. }),
            "{error}"
        );
        acked.extend(thread_acked);
    }
    for handle in handles {
        handle.join().unwrap();
    }
    let synced = wal.metrics().records_synced;
    assert!(acked.iter().all(|&index| index <= synced));
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), options).unwrap();
    for index in acked {
        let read = wal.read(LogIndex(index)).unwrap().unwrap();
        assert_eq!(read.index.0, index);
    }
}
