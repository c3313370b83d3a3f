//! The newest log entries, kept in memory beside the WAL (ADR 0030).
//!
//! openraft reads every entry back from the log store twice on the leader (to replicate it and
//! to apply it) and once on a follower (to apply it), nearly always moments after it was
//! appended. Served from the WAL, each read is a `pread` on a blocking thread: two thread
//! hand-offs on the path of every write. This cache answers those reads from memory. It holds
//! a run of consecutive entries ending at the newest one appended, bounded by count and bytes;
//! a range it does not hold entirely is read from the WAL, which stays the only truth. This
//! module does not touch the WAL; the log store keeps the two in step.

use std::collections::VecDeque;

use openraft::{Entry, EntryPayload};

use crate::raft::{ProposalBytes, TypeConfig};

/// Most entries kept. Default: 4096 (a few seconds of writes at the benchmark's highest
/// rates, far more than a healthy follower lags behind).
pub const TAIL_ENTRIES_MAX: usize = 4096;
/// Most payload bytes kept. Default: 16 MiB.
pub const TAIL_BYTES_MAX: usize = 16 << 20;
/// Bytes counted per entry besides its proposal payload (the entry and its queue slot).
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// A run of consecutive entries, oldest first, ending at the newest entry appended.
#[derive(Debug)]
pub struct TailCache {
    entries: VecDeque<Entry<TypeConfig>>,
    bytes: usize,
    entries_max: usize,
    bytes_max: usize,
}

impl Default for TailCache {
    fn default() -> Self {
        TailCache::with_limits(TAIL_ENTRIES_MAX, TAIL_BYTES_MAX)
    }
}

fn cost(entry: &Entry<TypeConfig>) -> usize {
    let payload = match &entry.payload {
        EntryPayload::Normal(ProposalBytes(bytes)) => bytes.len(),
        EntryPayload::Blank | EntryPayload::Membership(_) => 0,
    };
    payload.saturating_add(ENTRY_OVERHEAD_BYTES)
}

impl TailCache {
    /// An empty cache keeping at most `entries_max` entries and `bytes_max` bytes.
    pub fn with_limits(entries_max: usize, bytes_max: usize) -> Self {
        TailCache {
            entries: VecDeque::new(),
            bytes: 0,
            entries_max,
            bytes_max,
        }
    }

    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.log_id.index)
    }

    fn next_index(&self) -> Option<u64> {
        self.entries
            .back()
            .map(|e| e.log_id.index.saturating_add(1))
    }

    /// Records entries just written to the WAL. `entries` must be consecutive. Written over
    /// a cached index (a follower's log replaced from a conflict onwards), they replace it and
    /// everything after; after a gap, the cache starts again from them.
    pub fn appended(&mut self, entries: Vec<Entry<TypeConfig>>) {
        let Some(first) = entries.first().map(|e| e.log_id.index) else {
            return;
        };
        let consecutive = entries
            .iter()
            .zip(first..)
            .all(|(entry, index)| entry.log_id.index == index);
        if !consecutive {
            self.clear();
            return;
        }
        match self.next_index() {
            Some(next) if first < next => self.truncate_from(first),
            Some(next) if first > next => self.clear(),
            _ => {}
        }
        for entry in entries {
            self.bytes = self.bytes.saturating_add(cost(&entry));
            self.entries.push_back(entry);
        }
        while self.entries.len() > self.entries_max || self.bytes > self.bytes_max {
            self.pop_oldest();
        }
    }

    /// Forgets the entries at and after `index` (the WAL is being truncated there).
    pub fn truncate_from(&mut self, index: u64) {
        while self.next_index().is_some_and(|next| next > index) {
            if let Some(entry) = self.entries.pop_back() {
                self.bytes = self.bytes.saturating_sub(cost(&entry));
            }
        }
    }

    /// Forgets the entries at and before `index` (purged from the WAL).
    pub fn purge_through(&mut self, index: u64) {
        while self.first_index().is_some_and(|first| first <= index) {
            self.pop_oldest();
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    fn pop_oldest(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes = self.bytes.saturating_sub(cost(&entry));
        }
    }

    /// The entries `start..end` if the cache holds every one of them; `None` otherwise (the
    /// caller reads the WAL). An empty range is `None` too: only the WAL knows where it ends.
    pub fn range(&self, start: u64, end: u64) -> Option<Vec<Entry<TypeConfig>>> {
        let (first, next) = (self.first_index()?, self.next_index()?);
        if start < first || end > next || start >= end {
            return None;
        }
        let from = usize::try_from(start - first).ok()?;
        let count = usize::try_from(end - start).ok()?;
        Some(self.entries.range(from..from + count).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::{CommittedLeaderId, LogId};
    use proptest::prelude::*;

    use super::*;

    fn entry(index: u64, term: u64, size: usize) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 0), index),
            payload: EntryPayload::Normal(ProposalBytes(Bytes::from(vec![term as u8; size]))),
        }
    }

    /// What the WAL would hold: entries by index from 1, nothing purged below `floor`.
    #[derive(Debug, Default)]
    struct Model {
        log: Vec<Entry<TypeConfig>>,
        floor: u64,
    }

    impl Model {
        fn next(&self) -> u64 {
            self.log.last().map_or(1, |e| e.log_id.index + 1)
        }
        fn get(&self, index: u64) -> Option<&Entry<TypeConfig>> {
            self.log.iter().find(|e| e.log_id.index == index)
        }
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Appends `count` entries of `size` bytes at the log's end.
        Append { count: u64, size: usize },
        /// Replaces the log from `back` entries before its end with `count` entries of a new
        /// term (a follower's conflict).
        Overwrite { back: u64, count: u64 },
        /// Truncates `back` entries from the end.
        Truncate { back: u64 },
        /// Purges the oldest `count` entries.
        Purge { count: u64 },
        /// Reads `len` entries starting `back` entries before the end.
        Read { back: u64, len: u64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (1u64..6, 0usize..300).prop_map(|(count, size)| Step::Append { count, size }),
            1 => (0u64..8, 1u64..4).prop_map(|(back, count)| Step::Overwrite { back, count }),
            1 => (0u64..5).prop_map(|back| Step::Truncate { back }),
            1 => (0u64..5).prop_map(|count| Step::Purge { count }),
            4 => (0u64..12, 0u64..6).prop_map(|(back, len)| Step::Read { back, len }),
        ]
    }

    proptest! {
        /// Whatever the cache answers is what the WAL holds at those indexes, and it stays
        /// within its limits.
        #[test]
        fn answers_only_what_the_log_holds(steps in prop::collection::vec(step(), 1..80)) {
            let mut cache = TailCache::with_limits(10, 1500);
            let mut model = Model::default();
            let mut term = 1u64;
            for step in steps {
                match step {
                    Step::Append { count, size } => {
                        let next = model.next();
                        let new: Vec<_> = (next..next + count).map(|i| entry(i, term, size)).collect();
                        model.log.extend(new.iter().cloned());
                        cache.appended(new);
                    }
                    Step::Overwrite { back, count } => {
                        term += 1;
                        let from = model.next().saturating_sub(back).max(model.floor.max(1));
                        model.log.retain(|e| e.log_id.index < from);
                        let new: Vec<_> = (from..from + count).map(|i| entry(i, term, 10)).collect();
                        model.log.extend(new.iter().cloned());
                        cache.appended(new);
                    }
                    Step::Truncate { back } => {
                        let from = model.next().saturating_sub(back).max(model.floor.max(1));
                        model.log.retain(|e| e.log_id.index < from);
                        cache.truncate_from(from);
                    }
                    Step::Purge { count } => {
                        let through = model.log.first().map_or(0, |e| e.log_id.index) + count;
                        let through = through.saturating_sub(1).min(model.next().saturating_sub(1));
                        model.log.retain(|e| e.log_id.index > through);
                        model.floor = model.floor.max(through + 1);
                        cache.purge_through(through);
                    }
                    Step::Read { back, len } => {
                        let start = model.next().saturating_sub(back);
                        if let Some(got) = cache.range(start, start + len) {
                            prop_assert_eq!(got.len() as u64, len);
                            for (offset, entry) in got.iter().enumerate() {
                                let want = model.get(start + offset as u64);
                                prop_assert_eq!(Some(entry), want);
                            }
                        }
                    }
                }
                prop_assert!(cache.entries.len() <= 10);
                prop_assert!(cache.bytes <= 1500);
            }
        }
    }

    #[test]
    fn serves_the_newest_entries_and_nothing_outside_them() {
        let mut cache = TailCache::with_limits(3, 1 << 20);
        cache.appended((1..=5).map(|i| entry(i, 1, 8)).collect());
        let got = cache
            .range(3, 6)
            .map(|v| v.iter().map(|e| e.log_id.index).collect::<Vec<_>>());
        assert_eq!(got, Some(vec![3, 4, 5]));
        assert!(
            cache.range(2, 4).is_none(),
            "index 2 fell out of a cache of three"
        );
        assert!(cache.range(4, 7).is_none(), "index 6 was never appended");
        assert!(cache.range(4, 4).is_none());
    }

    #[test]
    fn an_overwrite_replaces_the_tail_from_the_conflict() {
        let mut cache = TailCache::default();
        cache.appended((1..=5).map(|i| entry(i, 1, 8)).collect());
        cache.appended(vec![entry(4, 2, 8)]);
        let terms: Option<Vec<u64>> = cache
            .range(3, 5)
            .map(|v| v.iter().map(|e| e.log_id.leader_id.term).collect());
        assert_eq!(terms, Some(vec![1, 2]));
        assert!(
            cache.range(5, 6).is_none(),
            "index 5 of term 1 was replaced"
        );
    }

    #[test]
    fn a_gap_starts_the_cache_again() {
        let mut cache = TailCache::default();
        cache.appended((1..=3).map(|i| entry(i, 1, 8)).collect());
        cache.appended(vec![entry(10, 1, 8)]);
        assert!(cache.range(3, 4).is_none());
        assert_eq!(cache.range(10, 11).map(|v| v.len()), Some(1));
    }
}
