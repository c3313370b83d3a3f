//! The sled materialized view: the state machine's records (globals, jobs, idempotency keys,
//! workers, output records) plus openraft's applied log id, membership and the removed node ids, written in one
//! atomic batch per applied batch. ADR 0007.
//!
//! The view is a cache, not the truth: sled 0.34's flush is not a durable sync on Linux, so after
//! a crash it may be behind. The WAL and the snapshot files are the truth; the state machine
//! adapter re-applies what the view lacks. This module does not decide what to write.

use std::collections::BTreeSet;
use std::path::Path;

use openraft::{LogId, StoredMembership};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use steward_statemachine::{
    Globals, IdempotencyEntry, Job, JobId, State, Touched, Worker, WorkflowId, WorkflowOutput,
};

use crate::error::{Error, Result};
use crate::raft::{NodeId, PeerNode};

/// Value of the `m/format` key: names this layout. A view in another layout is rebuilt.
/// Version 2: job records with the packed spec and timeline of snapshot format 2.
const VIEW_FORMAT: &[u8] = b"steward-view-2";

/// Attempts to open sled while another handle in this process releases it. Default: 50.
const OPEN_ATTEMPTS_MAX: u32 = 50;
/// Pause between those attempts. Default: 100 ms.
const OPEN_RETRY_MS: u64 = 100;

const KEY_FORMAT: &[u8] = b"m/format";
const KEY_GLOBALS: &[u8] = b"m/globals";
const KEY_RAFT: &[u8] = b"m/raft";
const PREFIX_JOB: &[u8] = b"j/";
const PREFIX_KEY: &[u8] = b"k/";
const PREFIX_WORKER: &[u8] = b"w/";
/// Output records, keyed by job id and workflow position (big-endian). Views written before
/// output records existed have none, which is what their state had.
const PREFIX_OUTPUT: &[u8] = b"o/";

/// openraft's part of the applied state, kept beside the records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftMeta {
    /// The last log id applied (any entry kind).
    pub last_applied: Option<LogId<NodeId>>,
    /// The last membership applied.
    pub membership: StoredMembership<NodeId, PeerNode>,
    /// Node ids that were members once and were removed; never reused.
    pub removed_ids: BTreeSet<NodeId>,
}

/// Records and meta encoded by [`View::encode_applied`], written whole by [`View::write`].
pub struct ViewBatch(sled::Batch);

/// The sled database holding the view.
pub struct View {
    db: sled::Db,
    path: std::path::PathBuf,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| Error::storage("encode a view record", e))
}

fn decode<T: DeserializeOwned>(bytes: &[u8], key: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| {
            Error::storage(
                format!("decode view key {}", String::from_utf8_lossy(key)),
                e,
            )
        })
}

fn output_key(job: JobId, workflow: WorkflowId) -> Vec<u8> {
    let mut key = keyed(PREFIX_OUTPUT, &job.0.to_be_bytes());
    key.extend_from_slice(&workflow.0.to_be_bytes());
    key
}

fn keyed(prefix: &[u8], id: &[u8]) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(id);
    key
}

impl View {
    /// Opens (creating) the view at `path`. Retries for a while: a previous `Node` on the same
    /// directory in this process may still be releasing sled's file lock.
    pub fn open(path: &Path) -> Result<View> {
        let mut attempts = 0;
        loop {
            match sled::open(path) {
                Ok(db) => {
                    return Ok(View {
                        db,
                        path: path.to_path_buf(),
                    })
                }
                Err(e) if attempts < OPEN_ATTEMPTS_MAX => {
                    attempts += 1;
                    tracing::debug!(error = %e, attempts, "sled busy; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(OPEN_RETRY_MS));
                }
                Err(e) => {
                    return Err(Error::storage(
                        format!("open sled at {}", path.display()),
                        e,
                    ))
                }
            }
        }
    }

    /// Asks sled to write its buffers (not a durable sync on Linux; see the module comment).
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(drop).map_err(self.err("flush"))
    }

    fn err(&self, verb: &str) -> impl Fn(sled::Error) -> Error + '_ {
        let what = format!("{verb} sled at {}", self.path.display());
        move |e| Error::storage(what.clone(), e)
    }

    /// Reads only openraft's part of the view (what it has applied), not its records: `None` if
    /// empty or in another layout. The restart path uses it to replay the WAL up to that point
    /// instead of reading every record (ADR 0015).
    pub fn load_meta(&self) -> Result<Option<RaftMeta>> {
        Ok(self.load_header()?.map(|(_, meta)| meta))
    }

    fn load_header(&self) -> Result<Option<(Globals, RaftMeta)>> {
        match self.db.get(KEY_FORMAT).map_err(self.err("read"))? {
            Some(format) if format.as_ref() == VIEW_FORMAT => {}
            _ => return Ok(None),
        }
        let Some(globals) = self.db.get(KEY_GLOBALS).map_err(self.err("read"))? else {
            return Ok(None);
        };
        let globals: Globals = decode(&globals, KEY_GLOBALS)?;
        let meta = match self.db.get(KEY_RAFT).map_err(self.err("read"))? {
            Some(bytes) => decode(&bytes, KEY_RAFT)?,
            None => RaftMeta::default(),
        };
        Ok(Some((globals, meta)))
    }

    /// Loads the view: `None` if empty or in another layout (then the caller rebuilds it).
    pub fn load(&self) -> Result<Option<(State, RaftMeta)>> {
        let Some((globals, meta)) = self.load_header()? else {
            return Ok(None);
        };
        let jobs: Vec<Job> = self.scan(PREFIX_JOB)?;
        let keys: Vec<IdempotencyEntry> = self.scan(PREFIX_KEY)?;
        let workers: Vec<Worker> = self.scan(PREFIX_WORKER)?;
        let outputs: Vec<WorkflowOutput> = self.scan(PREFIX_OUTPUT)?;
        let state = State::from_records(globals, jobs, keys, workers, outputs).map_err(|e| {
            Error::storage(format!("rebuild state from {}", self.path.display()), e)
        })?;
        Ok(Some((state, meta)))
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(prefix) {
            let (key, value) = item.map_err(self.err("scan"))?;
            out.push(decode(&value, &key)?);
        }
        Ok(out)
    }

    /// Encodes the records `touched` names (deletions for those `state` no longer has) and
    /// `meta` as one batch, for [`View::write`]. Takes no lock of its own: the caller holds the
    /// state still while this reads it.
    pub fn encode_applied(
        &self,
        state: &State,
        touched: &Touched,
        meta: &RaftMeta,
    ) -> Result<ViewBatch> {
        let mut batch = sled::Batch::default();
        batch.insert(KEY_FORMAT, VIEW_FORMAT);
        batch.insert(KEY_GLOBALS, encode(state.globals())?);
        batch.insert(KEY_RAFT, encode(meta)?);
        for id in &touched.jobs {
            let key = keyed(PREFIX_JOB, &id.0.to_be_bytes());
            match state.job(*id) {
                Some(job) => batch.insert(key, encode(job)?),
                None => batch.remove(key),
            }
        }
        for idem in &touched.idempotency_keys {
            let key = keyed(PREFIX_KEY, &encode(idem)?);
            match state.idempotency_entry(idem) {
                Some(entry) => batch.insert(key, encode(entry)?),
                None => batch.remove(key),
            }
        }
        for id in &touched.workers {
            let key = keyed(PREFIX_WORKER, &id.0.to_be_bytes());
            match state.worker(*id) {
                Some(worker) => batch.insert(key, encode(worker)?),
                None => batch.remove(key),
            }
        }
        for (job, workflow) in &touched.outputs {
            let key = output_key(*job, *workflow);
            match state.output(*job, *workflow) {
                Some(output) => batch.insert(key, encode(output)?),
                None => batch.remove(key),
            }
        }
        Ok(ViewBatch(batch))
    }

    /// Writes `batch` atomically. Not durable on return (see the module comment).
    pub fn write(&self, batch: ViewBatch) -> Result<()> {
        self.db.apply_batch(batch.0).map_err(self.err("write"))
    }

    /// Replaces the whole view with `state` and `meta` (after installing a snapshot or when the
    /// view was unusable), in one atomic batch.
    pub fn replace_all(&self, state: &State, meta: &RaftMeta) -> Result<()> {
        let mut batch = sled::Batch::default();
        for item in self.db.iter().keys() {
            batch.remove(item.map_err(self.err("scan"))?);
        }
        batch.insert(KEY_FORMAT, VIEW_FORMAT);
        batch.insert(KEY_GLOBALS, encode(state.globals())?);
        batch.insert(KEY_RAFT, encode(meta)?);
        for job in state.jobs() {
            batch.insert(keyed(PREFIX_JOB, &job.id.0.to_be_bytes()), encode(job)?);
        }
        for entry in state.idempotency_entries() {
            batch.insert(keyed(PREFIX_KEY, &encode(&entry.key)?), encode(entry)?);
        }
        for worker in state.workers() {
            batch.insert(
                keyed(PREFIX_WORKER, &worker.id.0.to_be_bytes()),
                encode(worker)?,
            );
        }
        for output in state.parts().outputs() {
            batch.insert(output_key(output.job, output.workflow), encode(output)?);
        }
        self.db.apply_batch(batch).map_err(self.err("write"))
    }
}
