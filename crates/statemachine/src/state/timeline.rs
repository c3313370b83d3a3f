//! A job's bounded timeline, kept encoded: one byte buffer of variable-length entries instead
//! of a vector of 48-byte structs.
//!
//! An entry's log index and stamp are stored as differences from the job's own (its creation
//! index and submission stamp), so a typical line takes 3 to 10 bytes. Reading decodes into
//! [`TimelineEntry`] values; only `apply` writes. Layout (also in `docs/format.md`):
//!
//! ```text
//! entry = [index - job index: zigzag varint][at_ms - submitted_at_ms: zigzag varint]
//!         [tag: u8][fields of the happening, each a varint or a one-byte code]
//! ```

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::state::packed::{self, code_in, unzigzag, zigzag, Reader, Sink};
use crate::{
    Attempt, DenialReason, FailureCause, FenceToken, Happening, JobStatus, LogIndex, TimelineEntry,
    TimeoutReason, WorkerId, WorkflowId,
};

/// What entries are stored relative to: the job's creation index and submission stamp.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Base {
    pub index: LogIndex,
    pub at_ms: u64,
}

/// The encoded entries, their number, and how many were dropped to keep it bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TimelineFields")]
pub(crate) struct Timeline {
    #[serde(serialize_with = "packed::serialize_bytes")]
    bytes: Vec<u8>,
    entries: u32,
    dropped: u32,
}

/// [`Timeline`] as decoded, before its bytes are checked.
#[derive(Deserialize)]
struct TimelineFields {
    #[serde(deserialize_with = "packed::deserialize_bytes")]
    bytes: Vec<u8>,
    entries: u32,
    dropped: u32,
}

impl TryFrom<TimelineFields> for Timeline {
    type Error = &'static str;

    fn try_from(fields: TimelineFields) -> Result<Timeline, &'static str> {
        let mut reader = Reader::new(&fields.bytes);
        let mut entries = 0u32;
        while !reader.is_empty() {
            skip(&mut reader).ok_or("malformed timeline entry")?;
            entries = entries.checked_add(1).ok_or("too many timeline entries")?;
        }
        if entries != fields.entries {
            return Err("timeline entry count does not match its entries");
        }
        Ok(Timeline {
            bytes: fields.bytes,
            entries,
            dropped: fields.dropped,
        })
    }
}

impl Timeline {
    /// An empty timeline with room for about `entries` lines.
    pub fn with_capacity(entries: usize) -> Timeline {
        Timeline {
            bytes: Vec::with_capacity(entries * TYPICAL_ENTRY_BYTES),
            entries: 0,
            dropped: 0,
        }
    }

    /// Writes the timeline into a job record (see `job_codec`).
    pub fn pack_into(&self, out: &mut Vec<u8>) {
        out.varint(self.bytes.len() as u64);
        out.put(&self.bytes);
        out.varint(u64::from(self.entries));
        out.varint(u64::from(self.dropped));
    }

    /// Reads what [`Timeline::pack_into`] wrote, checking every line.
    pub fn unpack_from(reader: &mut Reader<'_>) -> Option<Timeline> {
        let len = usize::try_from(reader.varint()?).ok()?;
        let fields = TimelineFields {
            bytes: reader.take(len)?.to_vec(),
            entries: reader.varint_u32()?,
            dropped: reader.varint_u32()?,
        };
        Timeline::try_from(fields).ok()
    }

    /// Lines dropped to keep it bounded.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Every line, oldest first.
    pub fn entries(&self, base: Base) -> Vec<TimelineEntry> {
        let mut entries = Vec::with_capacity(self.entries as usize);
        let mut reader = Reader::new(&self.bytes);
        while let Some(entry) = decode(&mut reader, base) {
            entries.push(entry);
        }
        entries
    }

    /// Appends a line. A progress line replaces the workflow's previous progress line; past
    /// `entries_max` the second-oldest line is dropped (the first, `Submitted`, always stays)
    /// and counted.
    pub fn record(&mut self, base: Base, entry: TimelineEntry, entries_max: u32) {
        if let Happening::Progress { workflow, .. } = entry.what {
            if let Some(range) = self.progress_line(workflow) {
                self.remove(range);
            }
        }
        if self.entries >= entries_max && self.entries >= 2 {
            if let Some(range) = self.span(1) {
                self.remove(range);
                self.dropped = self.dropped.saturating_add(1);
            }
        }
        encode(&mut self.bytes, base, &entry);
        self.entries += 1;
    }

    /// Drops progress lines and spare capacity (the job finished), in place.
    pub fn trim_finished(&mut self) {
        let (mut read, mut write) = (0, 0);
        while read < self.bytes.len() {
            let mut reader = Reader::new(&self.bytes[read..]);
            let Some(tag) = skip(&mut reader) else {
                break;
            };
            let end = self.bytes.len() - reader.rest().len();
            if tag == tag::PROGRESS {
                self.entries -= 1;
            } else {
                self.bytes.copy_within(read..end, write);
                write += end - read;
            }
            read = end;
        }
        self.bytes.truncate(write);
        self.bytes.shrink_to_fit();
    }

    /// Drops every line (compaction); the dropped count stays.
    pub fn clear(&mut self) {
        self.bytes = Vec::new();
        self.entries = 0;
    }

    fn remove(&mut self, range: Range<usize>) {
        self.bytes.drain(range);
        self.entries -= 1;
    }

    /// Byte range of the `wanted`-th line.
    fn span(&self, wanted: usize) -> Option<Range<usize>> {
        let mut reader = Reader::new(&self.bytes);
        let mut start = 0;
        for position in 0.. {
            skip(&mut reader)?;
            let end = self.bytes.len() - reader.rest().len();
            if position == wanted {
                return Some(start..end);
            }
            start = end;
        }
        None
    }

    /// Byte range of the workflow's progress line, if it has one.
    fn progress_line(&self, workflow: WorkflowId) -> Option<Range<usize>> {
        let mut reader = Reader::new(&self.bytes);
        let mut start = 0;
        loop {
            let line = reader;
            let tag = skip(&mut reader)?;
            let end = self.bytes.len() - reader.rest().len();
            if tag == tag::PROGRESS && progress_workflow(line) == Some(workflow) {
                return Some(start..end);
            }
            start = end;
        }
    }
}

/// Room reserved per expected line: a dispatch line with multi-byte differences is about 10.
const TYPICAL_ENTRY_BYTES: usize = 10;

mod tag {
    pub const SUBMITTED: u8 = 0;
    pub const DISPATCHED: u8 = 1;
    pub const STARTED: u8 = 2;
    pub const PROGRESS: u8 = 3;
    pub const WORKFLOW_COMPLETED: u8 = 4;
    pub const WORKFLOW_FAILED: u8 = 5;
    pub const WORKFLOW_CANCELLED: u8 = 6;
    pub const CANCEL_REQUESTED: u8 = 7;
    pub const EXTENSION_GRANTED: u8 = 8;
    pub const EXTENSION_DENIED: u8 = 9;
    pub const TIMED_OUT: u8 = 10;
    pub const FINISHED: u8 = 11;
}

fn encode(sink: &mut Vec<u8>, base: Base, entry: &TimelineEntry) {
    sink.varint(zigzag(entry.index.0.wrapping_sub(base.index.0) as i64));
    sink.varint(zigzag(entry.at_ms.wrapping_sub(base.at_ms) as i64));
    match entry.what {
        Happening::Submitted => sink.put(&[tag::SUBMITTED]),
        Happening::Dispatched {
            workflow,
            attempt,
            worker,
            fence_token,
        } => {
            sink.put(&[tag::DISPATCHED]);
            sink.varint(u64::from(workflow.0));
            sink.varint(u64::from(attempt.0));
            sink.varint(worker.0);
            sink.varint(fence_token.0);
        }
        Happening::Started { workflow, attempt } => {
            sink.put(&[tag::STARTED]);
            sink.varint(u64::from(workflow.0));
            sink.varint(u64::from(attempt.0));
        }
        Happening::Progress { workflow, progress } => {
            sink.put(&[tag::PROGRESS]);
            sink.varint(u64::from(workflow.0));
            sink.varint(progress);
        }
        Happening::WorkflowCompleted { workflow } => {
            sink.put(&[tag::WORKFLOW_COMPLETED]);
            sink.varint(u64::from(workflow.0));
        }
        Happening::WorkflowFailed {
            workflow,
            attempt,
            cause,
            retried,
        } => {
            sink.put(&[tag::WORKFLOW_FAILED]);
            sink.varint(u64::from(workflow.0));
            sink.varint(u64::from(attempt.0));
            sink.put(&[cause_code(cause), u8::from(retried)]);
        }
        Happening::WorkflowCancelled { workflow } => {
            sink.put(&[tag::WORKFLOW_CANCELLED]);
            sink.varint(u64::from(workflow.0));
        }
        Happening::CancelRequested => sink.put(&[tag::CANCEL_REQUESTED]),
        Happening::ExtensionGranted { worker, grant_ms } => {
            sink.put(&[tag::EXTENSION_GRANTED]);
            sink.varint(worker.0);
            sink.varint(grant_ms);
        }
        Happening::ExtensionDenied { worker, reason } => {
            sink.put(&[tag::EXTENSION_DENIED]);
            sink.varint(worker.0);
            sink.put(&[denial_code(reason)]);
        }
        Happening::TimedOut {
            reason,
            fence_token,
        } => {
            sink.put(&[tag::TIMED_OUT, timeout_code(reason)]);
            sink.varint(fence_token.0);
        }
        Happening::Finished { status } => sink.put(&[tag::FINISHED, status_code(status)]),
    }
}

/// The shape of a field after the tag.
#[derive(Clone, Copy)]
enum Field {
    /// A varint that fits `u32`.
    U32,
    /// A varint.
    U64,
    /// One byte below the given bound.
    Code(u8),
}

/// The fields of each tag, in order (what [`encode`] writes).
const LAYOUTS: [&[Field]; 12] = {
    use Field::{Code, U32, U64};
    [
        &[],
        &[U32, U32, U64, U64],
        &[U32, U32],
        &[U32, U64],
        &[U32],
        &[U32, U32, Code(CAUSES.len() as u8), Code(2)],
        &[U32],
        &[],
        &[U64, U64],
        &[U64, Code(DENIALS.len() as u8)],
        &[Code(TIMEOUTS.len() as u8), U64],
        &[Code(STATUSES.len() as u8)],
    ]
};

/// Steps over the next entry, checking it as [`decode`] would, without building it: for
/// validating decoded snapshots and for the edits of `apply`. Returns its tag.
fn skip(reader: &mut Reader<'_>) -> Option<u8> {
    reader.varint()?;
    reader.varint()?;
    let tag = reader.byte()?;
    for &field in *LAYOUTS.get(usize::from(tag))? {
        match field {
            Field::U32 => {
                reader.varint_u32()?;
            }
            Field::U64 => {
                reader.varint()?;
            }
            Field::Code(bound) => {
                if reader.byte()? >= bound {
                    return None;
                }
            }
        }
    }
    Some(tag)
}

/// The workflow of the progress line `line` starts with.
fn progress_workflow(mut line: Reader<'_>) -> Option<WorkflowId> {
    line.varint()?;
    line.varint()?;
    (line.byte()? == tag::PROGRESS).then_some(())?;
    line.varint_u32().map(WorkflowId)
}

/// The next entry, or `None` at the end or on malformed bytes.
fn decode(reader: &mut Reader<'_>, base: Base) -> Option<TimelineEntry> {
    let index = LogIndex(base.index.0.wrapping_add(unzigzag(reader.varint()?) as u64));
    let at_ms = base.at_ms.wrapping_add(unzigzag(reader.varint()?) as u64);
    let workflow = |reader: &mut Reader<'_>| reader.varint_u32().map(WorkflowId);
    let attempt = |reader: &mut Reader<'_>| reader.varint_u32().map(Attempt);
    let what = match reader.byte()? {
        tag::SUBMITTED => Happening::Submitted,
        tag::DISPATCHED => Happening::Dispatched {
            workflow: workflow(reader)?,
            attempt: attempt(reader)?,
            worker: WorkerId(reader.varint()?),
            fence_token: FenceToken(reader.varint()?),
        },
        tag::STARTED => Happening::Started {
            workflow: workflow(reader)?,
            attempt: attempt(reader)?,
        },
        tag::PROGRESS => Happening::Progress {
            workflow: workflow(reader)?,
            progress: reader.varint()?,
        },
        tag::WORKFLOW_COMPLETED => Happening::WorkflowCompleted {
            workflow: workflow(reader)?,
        },
        tag::WORKFLOW_FAILED => Happening::WorkflowFailed {
            workflow: workflow(reader)?,
            attempt: attempt(reader)?,
            cause: cause_of(reader.byte()?)?,
            retried: flag_of(reader.byte()?)?,
        },
        tag::WORKFLOW_CANCELLED => Happening::WorkflowCancelled {
            workflow: workflow(reader)?,
        },
        tag::CANCEL_REQUESTED => Happening::CancelRequested,
        tag::EXTENSION_GRANTED => Happening::ExtensionGranted {
            worker: WorkerId(reader.varint()?),
            grant_ms: reader.varint()?,
        },
        tag::EXTENSION_DENIED => Happening::ExtensionDenied {
            worker: WorkerId(reader.varint()?),
            reason: denial_of(reader.byte()?)?,
        },
        tag::TIMED_OUT => Happening::TimedOut {
            reason: timeout_of(reader.byte()?)?,
            fence_token: FenceToken(reader.varint()?),
        },
        tag::FINISHED => Happening::Finished {
            status: status_of(reader.byte()?)?,
        },
        _ => return None,
    };
    Some(TimelineEntry { index, at_ms, what })
}

fn flag_of(byte: u8) -> Option<bool> {
    match byte {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

const STATUSES: [JobStatus; 6] = JobStatus::ALL;
const CAUSES: [FailureCause; 3] = [
    FailureCause::Reported,
    FailureCause::TimedOut,
    FailureCause::WorkerLost,
];
const DENIALS: [DenialReason; 2] = [DenialReason::MaximumReached, DenialReason::NoProgress];
const TIMEOUTS: [TimeoutReason; 2] = [TimeoutReason::Overall, TimeoutReason::Stuck];

fn status_code(status: JobStatus) -> u8 {
    code_in(&STATUSES, &status)
}

fn status_of(code: u8) -> Option<JobStatus> {
    STATUSES.get(usize::from(code)).copied()
}

fn cause_code(cause: FailureCause) -> u8 {
    code_in(&CAUSES, &cause)
}

fn cause_of(code: u8) -> Option<FailureCause> {
    CAUSES.get(usize::from(code)).copied()
}

fn denial_code(reason: DenialReason) -> u8 {
    code_in(&DENIALS, &reason)
}

fn denial_of(code: u8) -> Option<DenialReason> {
    DENIALS.get(usize::from(code)).copied()
}

fn timeout_code(reason: TimeoutReason) -> u8 {
    code_in(&TIMEOUTS, &reason)
}

fn timeout_of(code: u8) -> Option<TimeoutReason> {
    TIMEOUTS.get(usize::from(code)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Base = Base {
        index: LogIndex(57),
        at_ms: 1_700_000_000_000,
    };

    fn every_happening() -> Vec<Happening> {
        let workflow = WorkflowId(3);
        let attempt = Attempt(2);
        let worker = WorkerId(u64::MAX);
        let mut all = vec![
            Happening::Submitted,
            Happening::Dispatched {
                workflow,
                attempt,
                worker,
                fence_token: FenceToken(9),
            },
            Happening::Started { workflow, attempt },
            Happening::Progress {
                workflow,
                progress: u64::MAX,
            },
            Happening::WorkflowCompleted { workflow },
            Happening::WorkflowCancelled { workflow },
            Happening::CancelRequested,
            Happening::ExtensionGranted {
                worker,
                grant_ms: 15_000,
            },
        ];
        for cause in CAUSES {
            for retried in [false, true] {
                all.push(Happening::WorkflowFailed {
                    workflow,
                    attempt,
                    cause,
                    retried,
                });
            }
        }
        for reason in DENIALS {
            all.push(Happening::ExtensionDenied { worker, reason });
        }
        for reason in TIMEOUTS {
            all.push(Happening::TimedOut {
                reason,
                fence_token: FenceToken(0),
            });
        }
        for status in STATUSES {
            all.push(Happening::Finished { status });
        }
        all
    }

    #[test]
    fn every_happening_round_trips_with_any_offset() {
        let mut timeline = Timeline::default();
        let mut expected = Vec::new();
        let offsets = [0, 1, 1_000_000, u64::MAX];
        for (n, what) in every_happening().into_iter().enumerate() {
            let offset = offsets[n % offsets.len()];
            let entry = TimelineEntry {
                index: LogIndex(BASE.index.0.wrapping_add(offset)),
                at_ms: BASE.at_ms.wrapping_sub(offset),
                what,
            };
            timeline.record(BASE, entry, u32::MAX);
            expected.push(entry);
        }
        assert_eq!(timeline.entries(BASE), expected);
        assert_eq!(timeline.entries as usize, expected.len());
    }

    #[test]
    fn progress_replaces_and_the_bound_keeps_the_first_line() {
        let mut timeline = Timeline::default();
        let line = |n: u64, what| TimelineEntry {
            index: LogIndex(57 + n),
            at_ms: BASE.at_ms + n,
            what,
        };
        let progress = |n| Happening::Progress {
            workflow: WorkflowId(0),
            progress: n,
        };
        timeline.record(BASE, line(0, Happening::Submitted), 3);
        timeline.record(BASE, line(1, progress(1)), 3);
        timeline.record(BASE, line(2, progress(2)), 3);
        assert_eq!(
            timeline.entries(BASE),
            [line(0, Happening::Submitted), line(2, progress(2))]
        );
        let started = Happening::Started {
            workflow: WorkflowId(1),
            attempt: Attempt(1),
        };
        timeline.record(BASE, line(3, started), 3);
        timeline.record(BASE, line(4, Happening::CancelRequested), 3);
        assert_eq!(
            timeline.entries(BASE),
            [
                line(0, Happening::Submitted),
                line(3, started),
                line(4, Happening::CancelRequested)
            ]
        );
        assert_eq!(timeline.dropped(), 1);
        timeline.trim_finished();
        assert_eq!(timeline.entries, 3);
        timeline.record(BASE, line(5, progress(3)), 10);
        timeline.trim_finished();
        assert_eq!(timeline.entries, 3);
        assert_eq!(timeline.bytes.capacity(), timeline.bytes.len());
    }

    #[test]
    fn skip_steps_over_exactly_what_decode_reads() {
        for what in every_happening() {
            let entry = TimelineEntry {
                index: LogIndex(BASE.index.0 + 300),
                at_ms: BASE.at_ms + 70_000,
                what,
            };
            let mut bytes = Vec::new();
            encode(&mut bytes, BASE, &entry);
            let (mut decoding, mut skipping) = (Reader::new(&bytes), Reader::new(&bytes));
            assert_eq!(decode(&mut decoding, BASE), Some(entry));
            assert!(skip(&mut skipping).is_some());
            assert!(decoding.is_empty() && skipping.is_empty(), "{what:?}");
            for len in 0..bytes.len() {
                assert!(skip(&mut Reader::new(&bytes[..len])).is_none(), "{what:?}");
            }
        }
    }

    #[test]
    fn malformed_timelines_are_refused_when_decoded() {
        let mut timeline = Timeline::default();
        for what in every_happening() {
            let entry = TimelineEntry {
                index: BASE.index,
                at_ms: BASE.at_ms,
                what,
            };
            timeline.record(BASE, entry, u32::MAX);
        }
        let fields = |bytes: &[u8], entries| TimelineFields {
            bytes: bytes.to_vec(),
            entries,
            dropped: 0,
        };
        let whole = Timeline::try_from(fields(&timeline.bytes, timeline.entries)).unwrap();
        assert_eq!(whole.entries(BASE), timeline.entries(BASE));
        assert!(Timeline::try_from(fields(&timeline.bytes, timeline.entries + 1)).is_err());
        let cut = &timeline.bytes[..timeline.bytes.len() - 1];
        assert!(Timeline::try_from(fields(cut, timeline.entries)).is_err());
        assert!(Timeline::try_from(fields(&[0, 0, 99], 1)).is_err());
        assert!(Timeline::try_from(fields(&[0, 0, tag::FINISHED, 6], 1)).is_err());
    }
}
