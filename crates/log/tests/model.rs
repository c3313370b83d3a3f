//! Model-based test: random sequences of append (by `append`, or by `try_write` with `write` as
//! its fallback) / truncate_after / purge_before / reopen / tear-tail against a `Vec` model. After every step (and every reopen) the log must equal the
//! model, up to the records a torn (unacknowledged) append may or may not have left.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use steward_log::testing::{Faults, FaultyFs};
use steward_log::{Error, LogIndex, Record, TryWrite, Wal, WalOptions};

use common::{all_records, fast_tempdir, record, small_segments};

#[derive(Debug, Clone)]
enum Op {
    Append {
        count: usize,
        payload_bytes: usize,
        new_term: bool,
        /// Through `try_write` first, as the Raft log store does, then `write` if it declined.
        try_first: bool,
    },
    TruncateAfter {
        back: u64,
    },
    PurgeBefore {
        forward: u64,
    },
    Reopen,
    /// An append that the machine crashes in the middle of, after `keep_per_mille` ‰ of its
    /// bytes reached the file; then a reopen.
    TearTail {
        count: usize,
        keep_per_mille: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..700, any::<bool>(), any::<bool>())
            .prop_map(|(count, payload_bytes, new_term, try_first)| Op::Append { count, payload_bytes, new_term, try_first }),
        2 => (0u64..12).prop_map(|back| Op::TruncateAfter { back }),
        2 => (0u64..40).prop_map(|forward| Op::PurgeBefore { forward }),
        1 => Just(Op::Reopen),
        2 => (1usize..5, 0u64..1000).prop_map(|(count, keep_per_mille)| Op::TearTail { count, keep_per_mille }),
    ]
}

struct Harness<'a> {
    dir: &'a Path,
    /// `None` only between closing and reopening (the directory lock allows one `Wal`).
    wal: Option<Wal>,
    faults: Arc<Faults>,
    /// What the log must hold.
    model: Vec<Record>,
    /// The index the next append must start at (`None`: any).
    next: Option<u64>,
    term: u64,
}

impl<'a> Harness<'a> {
    fn open(dir: &'a Path) -> Self {
        let (wal, faults) = open(dir);
        Harness {
            dir,
            wal: Some(wal),
            faults,
            model: Vec::new(),
            next: None,
            term: 1,
        }
    }

    fn batch(&self, count: usize, payload_bytes: usize) -> Vec<Record> {
        let start = self.next.unwrap_or(1);
        (0..count as u64)
            .map(|i| record(start + i, self.term, payload_bytes + i as usize))
            .collect()
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Append {
                count,
                payload_bytes,
                new_term,
                try_first,
            } => {
                if new_term {
                    self.term += 1;
                }
                let batch = self.batch(count, payload_bytes);
                if try_first {
                    self.try_append(batch.clone());
                } else {
                    self.wal().append(batch.clone()).unwrap();
                }
                self.next = Some(batch[batch.len() - 1].index.0 + 1);
                self.model.extend(batch);
            }
            Op::TruncateAfter { back } => self.truncate(back),
            Op::PurgeBefore { forward } => self.purge(forward),
            Op::Reopen => self.reopen(),
            Op::TearTail {
                count,
                keep_per_mille,
            } => self.tear(count, keep_per_mille),
        }
        self.check();
    }

    /// `try_write`, falling back to `write` with the records it gives back, then the wait for
    /// durability: what the Raft log store does.
    fn try_append(&self, batch: Vec<Record>) {
        let ticket = match self.wal().try_write(batch.clone()) {
            TryWrite::Done(written) => written.unwrap(),
            TryWrite::WouldBlock(records) => {
                assert_eq!(
                    records, batch,
                    "a declined try_write gives the batch back as it was"
                );
                self.wal().write(records).unwrap()
            }
        };
        self.wal().wait_durable(ticket).unwrap();
    }

    fn truncate(&mut self, back: u64) {
        let (Some(first), Some(last)) = (self.model.first(), self.model.last()) else {
            return;
        };
        let (first, last) = (first.index.0, last.index.0);
        if first >= 2 {
            // Below the first record (purged): refused, nothing changes.
            let err = self.wal().truncate_after(LogIndex(first - 2));
            assert!(matches!(err, Err(Error::TruncateBeforeFirst { .. })));
        }
        let index = last.saturating_sub(back).max(first.saturating_sub(1));
        self.wal().truncate_after(LogIndex(index)).unwrap();
        self.model.retain(|r| r.index.0 <= index);
        if index < last {
            self.next = Some(index + 1);
        }
    }

    fn purge(&mut self, forward: u64) {
        let base = self
            .model
            .first()
            .map(|r| r.index.0)
            .or(self.next)
            .unwrap_or(1);
        let index = base + forward;
        self.wal().purge_before(LogIndex(index)).unwrap();
        let next = self.next.unwrap_or(index);
        let whole_log_below = index > next || (index == next && !self.model.is_empty());
        if self.next.is_none() || whole_log_below {
            self.model.clear();
            self.next = Some(index.max(next));
        } else {
            // Whole segments only: every record at or after `index` stays, older ones may go.
            let first_kept = self.wal().first_index().map_or(next, |i| i.0);
            assert!(
                first_kept <= index,
                "purge_before({index}) removed record {first_kept}"
            );
            self.model.retain(|r| r.index.0 >= first_kept);
        }
    }

    fn wal(&self) -> &Wal {
        self.wal.as_ref().expect("the log is open between steps")
    }

    fn reopen(&mut self) {
        self.wal = None;
        let (wal, faults) = open(self.dir);
        self.wal = Some(wal);
        self.faults = faults;
    }

    fn tear(&mut self, count: usize, keep_per_mille: u64) {
        let batch = self.batch(count, 100);
        let bytes: u64 = batch
            .iter()
            .map(|r| steward_log::format::frame_bytes(r.payload.len() as u64))
            .sum();
        // Segment creation writes a 32-byte header first; a crash there is covered too.
        self.faults.crash_after_bytes(bytes * keep_per_mille / 1000);
        let result = self.wal().append(batch.clone());
        if result.is_ok() {
            // The append fit in the budget (only possible for keep = 100%); it is acknowledged.
            self.next = Some(batch[batch.len() - 1].index.0 + 1);
            self.model.extend(batch);
            self.faults.crash_after_bytes(u64::MAX);
            return;
        }
        assert!(self.faults.crashed());
        self.reopen();
        // Unacknowledged records may survive, but only as a whole prefix of the torn batch.
        let got = all_records(self.wal());
        assert!(got.len() >= self.model.len(), "acknowledged records lost");
        assert_eq!(got[..self.model.len()], self.model[..]);
        let survivors = &got[self.model.len()..];
        assert_eq!(survivors, &batch[..survivors.len()]);
        self.model = got;
        if let Some(last) = self.model.last() {
            self.next = Some(last.index.0 + 1);
        }
    }

    fn check(&self) {
        assert_eq!(all_records(self.wal()), self.model);
        assert_eq!(
            self.wal().first_index(),
            self.model.first().map(|r| r.index)
        );
        assert_eq!(self.wal().last_index(), self.model.last().map(|r| r.index));
        if self.next.is_some() {
            assert_eq!(self.wal().next_index().map(|i| i.0), self.next);
        }
        for r in self.model.iter().step_by(7) {
            assert_eq!(self.wal().read(r.index).unwrap().as_ref(), Some(r));
        }
    }
}

fn open(dir: &Path) -> (Wal, Arc<Faults>) {
    let (fs, faults) = FaultyFs::new();
    // No background preparation: the crash budget must count only the log's own writes.
    let options = WalOptions {
        prepare_segments_in_background: false,
        ..small_segments()
    };
    let (wal, _) = Wal::open_with_fs(dir, options, Arc::new(fs)).unwrap();
    (wal, faults)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = fast_tempdir();
        let mut h = Harness::open(dir.path());
        for op in &ops {
            h.apply(op);
        }
        h.reopen();
        h.check();
        let report = steward_log::scan_dir(dir.path()).unwrap();
        prop_assert!(report.is_clean(), "{:?}", report.problems);
    }
}

/// Shrunk from a failing run of `log_matches_model` with 512 cases: `purge_before(next)` when the
/// active segment is empty and already named `next` replaced that segment with a new file of the
/// same name and then deleted it as one of the old segments.
#[test]
fn regression_tear_then_truncate_then_purge() {
    let ops = [
        Op::Append {
            count: 1,
            payload_bytes: 25,
            new_term: false,
            try_first: false,
        },
        Op::TearTail {
            count: 4,
            keep_per_mille: 747,
        },
        Op::Append {
            count: 2,
            payload_bytes: 441,
            new_term: false,
            try_first: false,
        },
        Op::Append {
            count: 5,
            payload_bytes: 489,
            new_term: false,
            try_first: false,
        },
        Op::TearTail {
            count: 3,
            keep_per_mille: 324,
        },
        Op::TruncateAfter { back: 4 },
        Op::TruncateAfter { back: 2 },
        Op::PurgeBefore { forward: 6 },
    ];
    let dir = fast_tempdir();
    let mut h = Harness::open(dir.path());
    for op in &ops {
        h.apply(op);
    }
    h.reopen();
    h.check();
}
