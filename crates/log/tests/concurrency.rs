//! Group commit: many threads appending at once share syncs, and every acknowledged record is
//! readable, in order, after reopening.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use steward_log::testing::FaultyFs;
use steward_log::{LogIndex, SyncPolicy, Wal, WalOptions};

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
