//! Workflow exits as workers report them: exit code or signal, run time and the last bytes of
//! the process's output, replicated so that `steward job logs` still answers after the worker
//! that ran the attempt is gone.
//!
//! Kept apart from the job records on purpose: a job's record stays small (the memory budget
//! per finished job), while outputs are bounded as a whole: at most [`OUTPUT_RECORDS_MAX`]
//! (job, workflow) pairs, the ones of the oldest jobs (smallest job ids) dropped first, each tail
//! cut to its last [`OUTPUT_TAIL_BYTES_MAX`] bytes. The worker keeps a longer tail of its own.

use serde::{Deserialize, Serialize};

use crate::{Attempt, JobId, WorkerId, WorkflowId};

/// Bytes of output tail replicated per exit; the worker's own tail is longer. Default: 2 048.
pub const OUTPUT_TAIL_BYTES_MAX: usize = 2_048;
/// Exit records kept in the state (one per job and workflow, the latest attempt's); beyond it
/// the records of the oldest jobs are dropped. Default: 20 000 (at most about 41 MB of tails).
pub const OUTPUT_RECORDS_MAX: usize = 20_000;

/// How an attempt's process ended, as its worker reported it.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
pub struct ExitRecord {
    /// Exit code, if the process exited.
    pub exit_code: Option<i32>,
    /// Signal number, if a signal ended it.
    pub signal: Option<i32>,
    /// Run time in milliseconds, measured by the worker.
    pub duration_ms: u64,
    /// The last bytes of stdout and stderr (at most [`OUTPUT_TAIL_BYTES_MAX`]).
    pub output_tail: String,
}

impl ExitRecord {
    /// The same record with its tail cut to its last [`OUTPUT_TAIL_BYTES_MAX`] bytes.
    pub fn bounded(mut self) -> ExitRecord {
        self.output_tail = last_bytes(&self.output_tail, OUTPUT_TAIL_BYTES_MAX).to_owned();
        self
    }
}

/// The exit of the latest reported attempt of one workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct WorkflowOutput {
    /// The job.
    pub job: JobId,
    /// The workflow within it.
    pub workflow: WorkflowId,
    /// The attempt that exited.
    pub attempt: Attempt,
    /// The worker that ran it.
    pub worker: WorkerId,
    /// When the exit was applied (the proposal's stamp).
    pub at_ms: u64,
    /// What the worker reported.
    pub exit: ExitRecord,
}

/// The suffix of `text` of at most `bytes_max` bytes that starts on a character boundary.
pub fn last_bytes(text: &str, bytes_max: usize) -> &str {
    if text.len() <= bytes_max {
        return text;
    }
    let mut start = text.len() - bytes_max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_bytes_keeps_the_end_on_a_character_boundary() {
        assert_eq!(last_bytes("hello", 10), "hello");
        assert_eq!(last_bytes("hello", 3), "llo");
        // "é" is two bytes: a cut through it moves forward to the next boundary.
        assert_eq!(last_bytes("aé", 1), "");
        assert_eq!(last_bytes("aéb", 2), "b");
        assert_eq!(last_bytes("aéb", 3), "éb");
    }

    #[test]
    fn bounded_cuts_only_the_tail() {
        let long = "x".repeat(OUTPUT_TAIL_BYTES_MAX + 10) + "end";
        let record = ExitRecord {
            exit_code: Some(3),
            signal: None,
            duration_ms: 7,
            output_tail: long,
        }
        .bounded();
        assert_eq!(record.output_tail.len(), OUTPUT_TAIL_BYTES_MAX);
        assert!(record.output_tail.ends_with("end"));
        assert_eq!(record.exit_code, Some(3));
    }
}
