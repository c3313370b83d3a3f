//! Reading records back: by index, by range, and as an iterator. Reads see every appended
//! record, durable or not; they never change the log.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::format::{decode_frame, FrameDecode, RECORD_HEADER_BYTES};
use crate::fs::read_exact_at;
use crate::record::{LogIndex, Record};
use crate::segment::Segment;
use crate::wal::{lock, Wal};

/// Records fetched per lock acquisition by `Wal::iter`. Default: 256.
pub const ITER_CHUNK_RECORDS: u64 = 256;

impl Wal {
    /// Reads record `index`; `None` if it is not in the log.
    pub fn read(&self, index: LogIndex) -> Result<Option<Record>> {
        let mut out = self.range(index.0..index.0.saturating_add(1))?;
        Ok(out.pop())
    }

    /// Reads the records with indices in `range` that are in the log, in order.
    pub fn range(&self, range: Range<u64>) -> Result<Vec<Record>> {
        let mut st = lock(&self.state);
        self.flush_pending(&mut st)?;
        let mut out = Vec::new();
        for seg in &st.segments {
            let lo = range.start.max(seg.first_index);
            let hi = range.end.min(seg.next_index());
            if lo < hi {
                read_segment_range(seg, lo, hi, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Iterates over the records with indices in `range` that are in the log, reading
    /// `ITER_CHUNK_RECORDS` at a time (records appended or truncated meanwhile may or may not
    /// be seen).
    pub fn iter(&self, range: Range<u64>) -> Iter<'_> {
        Iter {
            wal: self,
            next: range.start,
            end: range.end,
            buffered: VecDeque::new(),
        }
    }
}

/// Reads records `lo..hi` (all inside `seg`) with one read.
fn read_segment_range(seg: &Segment, lo: u64, hi: u64, out: &mut Vec<Record>) -> Result<()> {
    let start = seg.offset_of(lo);
    let end = seg.offset_of(hi);
    let mut buf = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
    read_exact_at(seg.file.as_ref(), &mut buf, start)
        .map_err(|e| Error::io("read segment", &seg.path, e))?;
    let bytes = Bytes::from(buf);
    let mut at = 0usize;
    for index in lo..hi {
        let view = match decode_frame(&bytes[at..]) {
            FrameDecode::Valid(view) if view.index == index => view,
            FrameDecode::Valid(view) => {
                let reason = format!("record index {} where {index} was expected", view.index);
                return Err(Error::corruption(&seg.path, start + at as u64, reason));
            }
            FrameDecode::Empty => {
                return Err(Error::corruption(
                    &seg.path,
                    start + at as u64,
                    "record vanished",
                ));
            }
            FrameDecode::Invalid(reason) => {
                return Err(Error::corruption(&seg.path, start + at as u64, reason));
            }
        };
        let payload_start = at + RECORD_HEADER_BYTES as usize;
        out.push(Record {
            index: LogIndex(index),
            term: view.term,
            kind: view.kind,
            payload: bytes.slice(payload_start..payload_start + view.payload_bytes as usize),
        });
        at += view.frame_bytes as usize;
    }
    Ok(())
}

/// Iterator returned by `Wal::iter`.
#[derive(Debug)]
pub struct Iter<'a> {
    wal: &'a Wal,
    next: u64,
    end: u64,
    buffered: VecDeque<Record>,
}

impl Iterator for Iter<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffered.is_empty() && self.next < self.end {
            // Skip purged indices so a chunk below the first record does not end the iteration.
            if let Some(first) = self.wal.first_index() {
                self.next = self.next.max(first.0);
            }
            let chunk_end = self.end.min(self.next.saturating_add(ITER_CHUNK_RECORDS));
            match self.wal.range(self.next..chunk_end) {
                Ok(records) if records.is_empty() => self.next = self.end,
                Ok(records) => {
                    self.next = records.last().map_or(self.end, |r| r.index.0 + 1);
                    self.buffered.extend(records);
                }
                Err(e) => {
                    self.next = self.end;
                    return Some(Err(e));
                }
            }
        }
        self.buffered.pop_front().map(Ok)
    }
}
