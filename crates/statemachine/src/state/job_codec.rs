//! The snapshot encoding of a job record: one length-prefixed byte string per job, written and
//! read here field by field with the packed varints of `packed`.
//!
//! Restoring a million jobs through bincode's per-field decoding cost more than the rest of the
//! restore together (each primitive pays for the decode limit's bookkeeping); one byte string
//! per job is read by bincode in one step, and the fields by this module's reader, which
//! refuses malformed input (`None`) instead of panicking. The same bytes feed the state hash.
//! The node's view (sled) keeps using the serde form of [`Job`]. Layout, in order (also in
//! `docs/format.md`); `opt` is a byte 0 or 1 followed by the value when 1, `code` one byte:
//!
//! ```text
//! id | opt key (namespace str, key str) | spec: timeout_ms, stuck_threshold_ms,
//! opt cancel_grace_ms, retry_budget, retry_budget_per_workflow, packed bytes |
//! status code | submitted_at_ms | started_at_ms | last_progress_at_ms | opt finished_at_ms |
//! opt cancel_requested_at_ms | opt timed_out (reason code, at_ms, fence) | retries_used |
//! opt extensions (total_granted_ms, max_worker_extension_ms, opt last_extension_at_ms,
//!   count, (worker, grants code, total_granted_ms, last_progress, denials code)...) |
//! workflow count, (status code, attempt, retries_used, opt worker, opt fence, opt started_at_ms,
//!   opt finished_at_ms, progress, opt failure (error str, opt zigzag exit code))... |
//! timeline bytes, entries, dropped | compacted code
//! ```
//! Every number is a varint; bytes and strings carry a varint length.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::state::packed::{code_in, unzigzag, zigzag, Reader, Sink};
use crate::state::stored_spec::StoredSpec;
use crate::state::timeline::Timeline;
use crate::{
    Attempt, ExtensionTracker, Failure, FenceToken, IdempotencyKey, Job, JobExtensions, JobId,
    JobStatus, TimeoutReason, TimeoutRecord, WorkerId, WorkflowState, WorkflowStatus,
};

const WORKFLOW_STATUSES: [WorkflowStatus; 7] = [
    WorkflowStatus::Pending,
    WorkflowStatus::Dispatched,
    WorkflowStatus::Running,
    WorkflowStatus::Completed,
    WorkflowStatus::Failed,
    WorkflowStatus::Cancelling,
    WorkflowStatus::Cancelled,
];
const TIMEOUT_REASONS: [TimeoutReason; 2] = [TimeoutReason::Overall, TimeoutReason::Stuck];

/// Writes the job's record (without the outer length).
pub(crate) fn pack(job: &Job, out: &mut Vec<u8>) {
    out.varint(job.id.0);
    match &job.idempotency_key {
        Some(key) => {
            out.put(&[1]);
            out.string(&key.namespace);
            out.string(&key.key);
        }
        None => out.put(&[0]),
    }
    job.spec.pack_into(out);
    out.put(&[code_in(&JobStatus::ALL, &job.status)]);
    out.varint(job.submitted_at_ms);
    out.varint(job.started_at_ms);
    out.varint(job.last_progress_at_ms);
    opt(out, job.finished_at_ms);
    opt(out, job.cancel_requested_at_ms);
    match &job.timed_out {
        Some(record) => {
            out.put(&[1, code_in(&TIMEOUT_REASONS, &record.reason)]);
            out.varint(record.at_ms);
            out.varint(record.fence_token.0);
        }
        None => out.put(&[0]),
    }
    out.varint(u64::from(job.retries_used));
    match &job.extensions {
        Some(extensions) => {
            out.put(&[1]);
            pack_extensions(extensions, out);
        }
        None => out.put(&[0]),
    }
    out.varint(job.workflows.len() as u64);
    for state in &job.workflows {
        pack_workflow(state, out);
    }
    job.timeline.pack_into(out);
    out.put(&[u8::from(job.compacted)]);
}

fn pack_extensions(extensions: &JobExtensions, out: &mut Vec<u8>) {
    out.varint(extensions.total_granted_ms);
    out.varint(extensions.max_worker_extension_ms);
    opt(out, extensions.last_extension_at_ms);
    out.varint(extensions.trackers.len() as u64);
    for (worker, tracker) in &extensions.trackers {
        out.varint(worker.0);
        out.put(&[tracker.grants]);
        out.varint(tracker.total_granted_ms);
        out.varint(tracker.last_progress);
        out.put(&[tracker.consecutive_denials]);
    }
}

fn pack_workflow(state: &WorkflowState, out: &mut Vec<u8>) {
    out.put(&[code_in(&WORKFLOW_STATUSES, &state.status)]);
    out.varint(u64::from(state.attempt.0));
    out.varint(u64::from(state.retries_used));
    opt(out, state.worker.map(|worker| worker.0));
    opt(out, state.fence_token.map(|fence| fence.0));
    opt(out, state.started_at_ms);
    opt(out, state.finished_at_ms);
    out.varint(state.progress);
    match &state.failure {
        Some(failure) => {
            out.put(&[1]);
            out.string(&failure.error);
            opt(out, failure.exit_code.map(|code| zigzag(i64::from(code))));
        }
        None => out.put(&[0]),
    }
}

fn opt(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        Some(value) => {
            out.put(&[1]);
            out.varint(value);
        }
        None => out.put(&[0]),
    }
}

/// Reads a record written by [`pack`]; `None` if it is malformed or has bytes left over.
pub(crate) fn unpack(bytes: &[u8]) -> Option<Job> {
    let mut reader = Reader::new(bytes);
    let job = unpack_fields(&mut reader)?;
    reader.is_empty().then_some(job)
}

fn unpack_fields(reader: &mut Reader<'_>) -> Option<Job> {
    let id = JobId(reader.varint()?);
    let idempotency_key = match flag(reader)? {
        true => Some(IdempotencyKey {
            namespace: reader.string()?.to_owned(),
            key: reader.string()?.to_owned(),
        }),
        false => None,
    };
    let spec = StoredSpec::unpack_from(reader)?;
    let status = *JobStatus::ALL.get(usize::from(reader.byte()?))?;
    let submitted_at_ms = reader.varint()?;
    let started_at_ms = reader.varint()?;
    let last_progress_at_ms = reader.varint()?;
    let finished_at_ms = read_opt(reader)?;
    let cancel_requested_at_ms = read_opt(reader)?;
    let timed_out = match flag(reader)? {
        true => Some(TimeoutRecord {
            reason: *TIMEOUT_REASONS.get(usize::from(reader.byte()?))?,
            at_ms: reader.varint()?,
            fence_token: FenceToken(reader.varint()?),
        }),
        false => None,
    };
    let retries_used = reader.varint_u32()?;
    let extensions = match flag(reader)? {
        true => Some(Box::new(unpack_extensions(reader)?)),
        false => None,
    };
    let count = usize::try_from(reader.varint()?).ok()?;
    // Each workflow takes at least one byte: a damaged count cannot reserve more than that.
    let mut workflows = Vec::with_capacity(count.min(reader.rest().len()));
    for _ in 0..count {
        workflows.push(unpack_workflow(reader)?);
    }
    let timeline = Timeline::unpack_from(reader)?;
    let compacted = flag(reader)?;
    Some(Job {
        id,
        idempotency_key: idempotency_key.map(Arc::new),
        spec,
        status,
        submitted_at_ms,
        started_at_ms,
        last_progress_at_ms,
        finished_at_ms,
        cancel_requested_at_ms,
        timed_out,
        retries_used,
        extensions,
        workflows,
        timeline,
        compacted,
    })
}

fn unpack_extensions(reader: &mut Reader<'_>) -> Option<JobExtensions> {
    let total_granted_ms = reader.varint()?;
    let max_worker_extension_ms = reader.varint()?;
    let last_extension_at_ms = read_opt(reader)?;
    let mut trackers = BTreeMap::new();
    for _ in 0..reader.varint()? {
        let worker = WorkerId(reader.varint()?);
        let tracker = ExtensionTracker {
            grants: reader.byte()?,
            total_granted_ms: reader.varint()?,
            last_progress: reader.varint()?,
            consecutive_denials: reader.byte()?,
        };
        trackers.insert(worker, tracker);
    }
    Some(JobExtensions {
        total_granted_ms,
        max_worker_extension_ms,
        last_extension_at_ms,
        trackers,
    })
}

fn unpack_workflow(reader: &mut Reader<'_>) -> Option<WorkflowState> {
    Some(WorkflowState {
        status: *WORKFLOW_STATUSES.get(usize::from(reader.byte()?))?,
        attempt: Attempt(reader.varint_u32()?),
        retries_used: reader.varint_u32()?,
        worker: read_opt(reader)?.map(WorkerId),
        fence_token: read_opt(reader)?.map(FenceToken),
        started_at_ms: read_opt(reader)?,
        finished_at_ms: read_opt(reader)?,
        progress: reader.varint()?,
        failure: match flag(reader)? {
            true => Some(Box::new(Failure {
                error: reader.string()?.to_owned(),
                exit_code: match read_opt(reader)? {
                    Some(code) => Some(i32::try_from(unzigzag(code)).ok()?),
                    None => None,
                },
            })),
            false => None,
        },
    })
}

fn flag(reader: &mut Reader<'_>) -> Option<bool> {
    match reader.byte()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// `Some(None)` for an absent value, `None` for malformed input.
fn read_opt(reader: &mut Reader<'_>) -> Option<Option<u64>> {
    match flag(reader)? {
        true => reader.varint().map(Some),
        false => Some(None),
    }
}

impl bincode::Encode for Job {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        let mut bytes = Vec::with_capacity(256);
        pack(self, &mut bytes);
        bytes.as_slice().encode(encoder)
    }
}

impl<'de, Context> bincode::BorrowDecode<'de, Context> for Job {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = Context>>(
        decoder: &mut D,
    ) -> Result<Job, bincode::error::DecodeError> {
        let bytes: &[u8] = bincode::BorrowDecode::borrow_decode(decoder)?;
        unpack(bytes).ok_or(bincode::error::DecodeError::Other("malformed job record"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DenialReason, Happening, JobSpec, LogIndex, WorkflowSpec};

    /// A job with every optional part present.
    fn busy_job() -> Job {
        let spec = JobSpec::new(
            "release",
            vec![
                WorkflowSpec::new("build", vec!["make".into()]),
                WorkflowSpec::new("test", vec!["make".into(), "test".into()]),
            ],
        );
        let key = IdempotencyKey {
            namespace: "ci".into(),
            key: "run-7".into(),
        };
        let mut job = Job::new(
            JobId(57_003),
            Some(Arc::new(key)),
            &spec,
            StoredSpec::new(&spec),
            1_700_000_000_000,
            32,
        );
        job.record(LogIndex(57), job.submitted_at_ms, Happening::Submitted, 32);
        job.status = JobStatus::TimedOut;
        job.finished_at_ms = Some(1_700_000_100_000);
        job.cancel_requested_at_ms = Some(1_700_000_050_000);
        job.timed_out = Some(TimeoutRecord {
            reason: TimeoutReason::Stuck,
            at_ms: 1_700_000_100_000,
            fence_token: FenceToken(4),
        });
        job.retries_used = 2;
        let tracker = ExtensionTracker {
            grants: 2,
            total_granted_ms: 22_500,
            last_progress: 9,
            consecutive_denials: 1,
        };
        job.extensions_mut().trackers.insert(WorkerId(3), tracker);
        job.extensions_mut().last_extension_at_ms = Some(1_700_000_060_000);
        job.workflows[0] = WorkflowState {
            status: WorkflowStatus::Failed,
            attempt: Attempt(3),
            retries_used: 2,
            worker: Some(WorkerId(u64::MAX)),
            fence_token: Some(FenceToken(4)),
            started_at_ms: Some(1_700_000_070_000),
            finished_at_ms: Some(1_700_000_080_000),
            progress: 12,
            failure: Some(Box::new(Failure {
                error: "exit 1 ✗".into(),
                exit_code: Some(-9),
            })),
        };
        let denied = Happening::ExtensionDenied {
            worker: WorkerId(3),
            reason: DenialReason::NoProgress,
        };
        job.record(LogIndex(60), 1_700_000_065_000, denied, 32);
        job
    }

    #[test]
    fn records_round_trip_with_every_part_present_or_absent() {
        let busy = busy_job();
        let spec = JobSpec::new("j", vec![WorkflowSpec::new("w", vec!["true".into()])]);
        let plain = Job::new(JobId(1000), None, &spec, StoredSpec::new(&spec), 0, 32);
        for job in [busy, plain] {
            let mut bytes = Vec::new();
            pack(&job, &mut bytes);
            assert_eq!(unpack(&bytes), Some(job));
        }
    }

    #[test]
    fn damaged_records_are_refused_not_read_past_their_end() {
        let mut bytes = Vec::new();
        pack(&busy_job(), &mut bytes);
        for len in 0..bytes.len() {
            assert_eq!(unpack(&bytes[..len]), None, "{len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(unpack(&longer), None);
    }
}
