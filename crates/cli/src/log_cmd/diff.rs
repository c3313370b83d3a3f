//! `steward log diff DIR_A DIR_B`: walks two replicas' logs side by side and reports the first
//! index where their records differ (term, kind or payload bytes) and the first index after
//! which their folded states differ (by `state_hash`), or "identical up to index N".
//!
//! The fold is deterministic, so equal states stay equal across equal records: hashes are only
//! compared where both states first exist, after differing records, and after a gap. Each side
//! starts from its own start (empty or its newest snapshot); notes say when one log is longer or
//! starts later. Read-only.

use std::io::Write;
use std::iter::Peekable;
use std::path::Path;

use anyhow::Context as _;
use steward_log::{DirRecord, DirRecords};
use steward_statemachine::{state_hash, StopAt};

use super::replay_source::{start, Folder, Source};

/// One replica being walked.
struct Side {
    source: Source,
    records: Peekable<DirRecords>,
    folder: Folder,
    start_index: u64,
    from_snapshot: bool,
    first: Option<u64>,
    last: Option<u64>,
}

impl Side {
    fn open(dir: &Path) -> anyhow::Result<Side> {
        let source = Source::locate(dir)?;
        let mut records = source.records()?;
        let first = match records.peek() {
            Some(Ok(record)) => Some(record.index.0),
            _ => None,
        };
        let start = start(&source, first, false)?;
        let (start_index, from_snapshot) = (start.index, start.snapshot.is_some());
        Ok(Side {
            source,
            records,
            folder: Folder::new(start, StopAt::End),
            start_index,
            from_snapshot,
            first,
            last: None,
        })
    }

    fn peek_index(&mut self) -> anyhow::Result<Option<u64>> {
        match self.records.peek() {
            None => Ok(None),
            Some(Ok(record)) => Ok(Some(record.index.0)),
            Some(Err(_)) => match self.records.next() {
                Some(Err(e)) => {
                    Err(e).with_context(|| format!("cannot read {}", self.source.wal_dir.display()))
                }
                _ => Ok(None),
            },
        }
    }

    /// Takes the next record if it has `index`, folding it.
    fn take(&mut self, index: u64, fold: bool) -> Option<DirRecord> {
        if !matches!(self.records.peek(), Some(Ok(record)) if record.index.0 == index) {
            return None;
        }
        let record = self.records.next()?.ok()?;
        if fold {
            self.folder.feed(&record);
        }
        self.last = Some(index);
        Some(record)
    }

    fn hash(&self) -> u64 {
        state_hash(self.folder.replayer().state())
    }

    fn describe(&self) -> String {
        let range = match (self.first, self.last) {
            (Some(first), Some(last)) => format!("records {first}..={last}"),
            _ => "no records".to_owned(),
        };
        let start = if self.from_snapshot {
            format!(", folded from the snapshot at index {}", self.start_index)
        } else {
            String::new()
        };
        format!("{} ({range}{start})", self.source.wal_dir.display())
    }
}

fn describe_record(record: &DirRecord) -> String {
    format!(
        "term {} kind {} {} bytes crc 0x{:08x}",
        record.term,
        record.kind,
        record.payload.len(),
        record.crc
    )
}

/// What the walk found.
#[derive(Default)]
struct Findings {
    records_differ: Option<(u64, String, String)>,
    states_differ: Option<(u64, u64, u64)>,
    last_common: Option<u64>,
}

fn walk(a: &mut Side, b: &mut Side) -> anyhow::Result<Findings> {
    let mut found = Findings::default();
    let both_start = a.start_index.max(b.start_index);
    let mut check_state = true;
    loop {
        let index = match (a.peek_index()?, b.peek_index()?) {
            (None, None) => break,
            (Some(x), None) | (None, Some(x)) => x,
            (Some(x), Some(y)) => x.min(y),
        };
        let fold = found.states_differ.is_none();
        let (record_a, record_b) = (a.take(index, fold), b.take(index, fold));
        let (Some(record_a), Some(record_b)) = (record_a, record_b) else {
            check_state = true;
            continue;
        };
        found.last_common = Some(index);
        let same = record_a.term == record_b.term
            && record_a.kind == record_b.kind
            && record_a.payload == record_b.payload;
        if !same {
            check_state = true;
            if found.records_differ.is_none() {
                let (left, right) = (describe_record(&record_a), describe_record(&record_b));
                found.records_differ = Some((index, left, right));
            }
        }
        if fold && check_state && index >= both_start {
            let (hash_a, hash_b) = (a.hash(), b.hash());
            check_state = false;
            if hash_a != hash_b {
                found.states_differ = Some((index, hash_a, hash_b));
            }
        }
    }
    Ok(found)
}

/// Compares the two replicas; true when records and states agree wherever both exist.
pub fn run(dir_a: &Path, dir_b: &Path, out: &mut dyn Write) -> anyhow::Result<bool> {
    let mut a = Side::open(dir_a)?;
    let mut b = Side::open(dir_b)?;
    let found = walk(&mut a, &mut b)?;
    writeln!(out, "A: {}", a.describe())?;
    writeln!(out, "B: {}", b.describe())?;
    let Some(last_common) = found.last_common else {
        writeln!(out, "no index in common")?;
        return Ok(a.last.is_none() && b.last.is_none());
    };
    match &found.records_differ {
        Some((index, left, right)) => writeln!(
            out,
            "records differ first at index {index}: A {left}, B {right}"
        )?,
        None => writeln!(out, "records identical up to index {last_common}")?,
    }
    match found.states_differ {
        Some((index, hash_a, hash_b)) => writeln!(
            out,
            "states differ first after index {index}: A 0x{hash_a:016x}, B 0x{hash_b:016x}"
        )?,
        None => writeln!(out, "states identical up to index {last_common}")?,
    }
    for (name, side, other) in [("A", &a, &b), ("B", &b, &a)] {
        if side.last > other.last {
            let from = other.last.map_or(0, |last| last + 1);
            let to = side.last.unwrap_or(0);
            writeln!(out, "{name} is longer: {from}..={to} only in {name}")?;
        }
        if side.first > other.first {
            writeln!(
                out,
                "{name} starts later, at index {} (purged)",
                side.first.unwrap_or(0)
            )?;
        }
    }
    Ok(found.records_differ.is_none() && found.states_differ.is_none())
}
