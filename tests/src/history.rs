//! The client-visible history: one record per operation with its invoke and complete times
//! and what the client learned (ok with the job's status, a definite error, or unknown).
//!
//! It deliberately stores only what a client saw; what the cluster holds is read separately at
//! check time.

use std::sync::Mutex;
use std::time::Instant;

/// A job status as the harness tracks it (the API's name).
pub type Status = &'static str;

/// What an operation asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Submit; `key` is the idempotency key, `name` identifies the body.
    Submit {
        /// Idempotency key, if any.
        key: Option<String>,
        /// The body's job name (bodies differ exactly when names differ).
        name: String,
    },
    /// Cancel a job.
    Cancel {
        /// The job.
        job: u64,
    },
    /// Linearizable status read.
    Read {
        /// The job.
        job: u64,
    },
    /// Test-mode completion of the job's only workflow.
    Complete {
        /// The job.
        job: u64,
        /// Whether the workflow succeeds.
        success: bool,
    },
}

/// What the client learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success: the job id, its status and fence token in the answer, and whether the server
    /// called it a duplicate (submits) or `already_cancelled`/`already_terminal` (cancels).
    Ok {
        /// The job.
        job: u64,
        /// Its status in the answer.
        status: Status,
        /// Fence token in the answer.
        fence: u64,
        /// Submit `duplicate` flag, or cancel "nothing changed" flag.
        no_change: bool,
    },
    /// `409` idempotency conflict naming nothing changed.
    Conflict,
    /// A definite error (`4xx`): nothing changed. The code, for the timeline.
    Failed(String),
    /// Timeout, transport error or `5xx`: it may or may not have taken effect.
    Unknown(String),
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Op {
    /// Sequence number in invoke order.
    pub seq: usize,
    /// The client task.
    pub client: usize,
    /// The slot it was sent to.
    pub node: usize,
    /// What it asked.
    pub kind: OpKind,
    /// Invoke time (ms since the run began).
    pub invoke_ms: u64,
    /// Completion time (ms since the run began).
    pub complete_ms: u64,
    /// What it learned.
    pub outcome: Outcome,
}

/// A timeline line: a fault or a phase change, at a time.
#[derive(Debug, Clone)]
pub struct Note {
    /// When (ms since the run began).
    pub at_ms: u64,
    /// What.
    pub text: String,
}

/// The shared, append-only history of one run.
#[derive(Debug)]
pub struct History {
    began: Instant,
    ops: Mutex<Vec<Op>>,
    notes: Mutex<Vec<Note>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history whose clock starts now.
    pub fn new() -> Self {
        Self {
            began: Instant::now(),
            ops: Mutex::new(Vec::new()),
            notes: Mutex::new(Vec::new()),
        }
    }

    /// Milliseconds since the run began.
    pub fn now_ms(&self) -> u64 {
        self.began.elapsed().as_millis() as u64
    }

    /// Records a completed operation.
    pub fn record(&self, mut op: Op) {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        op.seq = ops.len();
        ops.push(op);
    }

    /// Records a timeline note (and prints it).
    pub fn note(&self, text: impl Into<String>) {
        let note = Note {
            at_ms: self.now_ms(),
            text: text.into(),
        };
        eprintln!("[{:>7} ms] {}", note.at_ms, note.text);
        self.notes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(note);
    }

    /// A copy of every operation.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A copy of every note.
    pub fn notes(&self) -> Vec<Note> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The timeline of a violation, as text: for a job, every operation on it and the notes
    /// during its life (± `window_ms`); otherwise everything within `window_ms` of `at_ms`.
    pub fn timeline_around(&self, job: Option<u64>, at_ms: u64, window_ms: u64) -> String {
        let span = job.and_then(|j| {
            let ops = self.ops();
            let mine = ops.iter().filter(|op| op_job(op) == Some(j));
            let first = mine.clone().map(|op| op.invoke_ms).min()?;
            let last = mine.map(|op| op.complete_ms).max()?;
            Some((first, last))
        });
        let (low, high) = match span {
            Some((first, last)) => (first.saturating_sub(window_ms), last + window_ms),
            None => (at_ms.saturating_sub(window_ms), at_ms + window_ms),
        };
        let mut lines: Vec<(u64, String)> = self
            .notes()
            .into_iter()
            .filter(|n| n.at_ms >= low && n.at_ms <= high)
            .map(|n| (n.at_ms, format!("  {:>7} ms  NEMESIS  {}", n.at_ms, n.text)))
            .collect();
        for op in self.ops() {
            let touches = job.is_none_or(|j| op_job(&op) == Some(j));
            if touches && op.complete_ms >= low && op.invoke_ms <= high {
                lines.push((
                    op.invoke_ms,
                    format!(
                        "  {:>7}..{:<7} ms  client {} -> node {}  {:?}  => {:?}",
                        op.invoke_ms, op.complete_ms, op.client, op.node, op.kind, op.outcome
                    ),
                ));
            }
        }
        lines.sort_by_key(|(at, _)| *at);
        lines.into_iter().map(|(_, l)| l + "\n").collect()
    }
}

/// The job an operation concerns, when known.
pub fn op_job(op: &Op) -> Option<u64> {
    match (&op.kind, &op.outcome) {
        (OpKind::Cancel { job } | OpKind::Read { job } | OpKind::Complete { job, .. }, _) => {
            Some(*job)
        }
        (OpKind::Submit { .. }, Outcome::Ok { job, .. }) => Some(*job),
        _ => None,
    }
}
