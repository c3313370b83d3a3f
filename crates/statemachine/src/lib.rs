//! steward's job domain: commands, events and the deterministic fold.
//!
//! A client's [`Command`] is validated by [`decide`] on the leader against the applied
//! [`State`] and turns into [`Event`]s (facts). The leader stamps them into one [`Proposal`]
//! per Raft log entry; every replica folds committed proposals with [`apply`], which re-checks
//! each event and answers one [`Outcome`] per event plus the records it touched. The state can
//! be taken apart into records ([`State::parts`], [`State::from_records`]), snapshotted
//! ([`snapshot`], [`restore`]) and hashed ([`state_hash`]) to detect divergence.
//!
//! Pure and deterministic: no I/O, no clock, no randomness, no environment, no hash-map
//! iteration order. Time enters only as the proposal's stamp.
//!
//! Layout: `ids`, `status`, `spec` and `limits` are the vocabulary; `event`, `command`,
//! `rejection` and `outcome` the messages; `state` the records and indexes; `decide` (with the
//! leader duties) and `apply` the logic; `codec` the binary formats and hashes; `query` and
//! `replay` the read side. Formats are described in `docs/adr/0004-event-schema.md`, events in
//! `docs/events.md`.
#![deny(missing_docs)]

mod apply;
mod codec;
mod command;
mod decide;
mod display;
mod error;
mod event;
mod ids;
mod limits;
mod outcome;
mod output;
mod prepare;
mod query;
mod rejection;
mod replay;
mod spec;
mod state;
mod status;

#[cfg(test)]
mod tests;

pub use crate::apply::{apply, apply_prepared, replay_prepared};
pub use crate::codec::{
    body_hash, decode_proposal, encode_proposal, restore, snapshot, snapshot_frozen, state_hash,
    EVENT_SCHEMA_VERSION, EVENT_SCHEMA_VERSION_OLDEST, PROPOSAL_BYTES_MAX, PROPOSAL_MAGIC,
    SNAPSHOT_FORMAT_VERSION, SNAPSHOT_FORMAT_VERSION_OLDEST, SNAPSHOT_MAGIC,
};
pub use crate::command::{Command, ReportKind, WorkerReport};
pub use crate::decide::decide;
pub use crate::error::{Error, Result};
pub use crate::event::{Event, Proposal, WorkflowRef};
pub use crate::ids::{
    Attempt, BodyHash, FenceToken, IdempotencyKey, JobId, LogIndex, NodeId, Term, WorkerId,
    WorkflowId,
};
pub use crate::limits::*;
pub use crate::outcome::{ApplyReport, Outcome, StopOrder, Touched};
pub use crate::output::{
    last_bytes, ExitRecord, WorkflowOutput, OUTPUT_RECORDS_MAX, OUTPUT_TAIL_BYTES_MAX,
};
pub use crate::prepare::Prepared;
pub use crate::query::{JobView, Page, Summary, WorkflowView};
pub use crate::rejection::Rejection;
pub use crate::replay::{fold, Replayer, StopAt};
pub use crate::spec::{validate_key, JobSpec, WorkflowSpec};
pub use crate::state::{
    ExtensionTracker, Failure, FailureCause, Frozen, Globals, Happening, IdempotencyEntry, Job,
    JobExtensions, Parts, Records, State, StoredSpec, TimelineEntry, TimeoutRecord, Worker,
    WorkflowLimits, WorkflowState,
};
pub use crate::status::{DenialReason, JobStatus, TimeoutReason, WorkerStatus, WorkflowStatus};
