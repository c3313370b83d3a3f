//! The replicated state: records (globals, jobs, idempotency entries, workers) plus derived
//! indexes, and the way to take it apart into records and put it back together.
//!
//! The records are the truth: snapshots, the state hash and the node's sled mirror contain only
//! them, and [`State::from_records`] re-derives the indexes. Transitions live in `apply`,
//! queries in `query`.

mod index;
mod job;
mod job_codec;
mod key_map;
mod packed;
mod records;
mod stored_spec;
mod timeline;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub(crate) use self::index::Indexes;
pub use self::job::{
    ExtensionTracker, Failure, FailureCause, Happening, Job, JobExtensions, TimelineEntry,
    TimeoutRecord, WorkflowState,
};
pub(crate) use self::key_map::KeyMap;
pub use self::records::{Globals, IdempotencyEntry, Worker};
pub use self::stored_spec::{StoredSpec, WorkflowLimits};
use crate::{
    Error, IdempotencyKey, JobId, Result, StateConfig, WorkerId, WorkflowId, WorkflowOutput,
    OUTPUT_RECORDS_MAX,
};

/// The job domain's state: a pure fold of applied proposals.
#[derive(Debug, Clone)]
pub struct State {
    pub(crate) globals: Globals,
    /// Shared, not inline: B-tree nodes filled in id order stay about half full, so inline
    /// jobs would waste half a node slot each (measured by the benchmark), and a snapshot
    /// build takes a frozen copy of the map without copying a job (`apply` copies a job
    /// on its first change after that, `Arc::make_mut`; ADR 0020).
    pub(crate) jobs: BTreeMap<JobId, Arc<Job>>,
    /// Ordered by a hash of the key, then the key (`key_map`).
    pub(crate) keys: KeyMap,
    pub(crate) workers: BTreeMap<WorkerId, Worker>,
    /// Latest exit per (job, workflow), bounded by [`crate::OUTPUT_RECORDS_MAX`].
    pub(crate) outputs: BTreeMap<(JobId, WorkflowId), WorkflowOutput>,
    pub(crate) index: Indexes,
}

/// Borrowed view of every record, each kind in its map order (for persistence and snapshots).
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    state: &'a State,
}

impl<'a> Parts<'a> {
    /// The globals.
    pub fn globals(&self) -> &'a Globals {
        &self.state.globals
    }

    /// Every job, by id.
    pub fn jobs(&self) -> impl DoubleEndedIterator<Item = &'a Job> + ExactSizeIterator {
        self.state.jobs.values().map(|job| &**job)
    }

    /// Every live idempotency entry, in key-map order (a hash of the key, then the key).
    pub fn idempotency(
        &self,
    ) -> impl DoubleEndedIterator<Item = &'a IdempotencyEntry> + ExactSizeIterator {
        self.state.keys.values()
    }

    /// Every worker ever registered, by id.
    pub fn workers(&self) -> impl DoubleEndedIterator<Item = &'a Worker> + ExactSizeIterator {
        self.state.workers.values()
    }

    /// Every output record, by (job, workflow).
    pub fn outputs(
        &self,
    ) -> impl DoubleEndedIterator<Item = &'a WorkflowOutput> + ExactSizeIterator {
        self.state.outputs.values()
    }
}

/// The records of a state at one applied index, for a snapshot built while `apply` goes on:
/// the jobs are shared with the state, not copied, so freezing costs a walk of the maps
/// rather than a copy of every job (ADR 0020).
#[derive(Debug, Clone)]
pub struct Frozen {
    pub(crate) globals: Globals,
    pub(crate) jobs: BTreeMap<JobId, Arc<Job>>,
    pub(crate) keys: KeyMap,
    pub(crate) workers: BTreeMap<WorkerId, Worker>,
    pub(crate) outputs: BTreeMap<(JobId, WorkflowId), WorkflowOutput>,
}

/// Owned records, the unit of snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records {
    /// The globals.
    pub globals: Globals,
    /// Jobs in id order.
    pub jobs: Vec<Job>,
    /// Idempotency entries in key-map order.
    pub idempotency: Vec<IdempotencyEntry>,
    /// Workers in id order.
    pub workers: Vec<Worker>,
    /// Output records in (job, workflow) order (snapshot format 2 and later).
    pub outputs: Vec<WorkflowOutput>,
}

impl Default for State {
    fn default() -> State {
        State::empty(StateConfig::default())
    }
}

impl State {
    /// An empty state with `config`, after checking its minimums.
    pub fn new(config: StateConfig) -> Result<State> {
        config.validate()?;
        Ok(State::empty(config))
    }

    fn empty(config: StateConfig) -> State {
        State {
            globals: Globals::new(config),
            jobs: BTreeMap::new(),
            keys: KeyMap::default(),
            workers: BTreeMap::new(),
            outputs: BTreeMap::new(),
            index: Indexes::default(),
        }
    }

    /// The globals record.
    pub fn globals(&self) -> &Globals {
        &self.globals
    }

    /// The job record, full or compacted.
    pub fn job(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(&id).map(|job| &**job)
    }

    /// The idempotency entry for `key`, if live.
    pub fn idempotency_entry(&self, key: &IdempotencyKey) -> Option<&IdempotencyEntry> {
        self.keys.get(key)
    }

    /// The worker record.
    pub fn worker(&self, id: WorkerId) -> Option<&Worker> {
        self.workers.get(&id)
    }

    /// Every worker, by id.
    pub fn workers(&self) -> impl Iterator<Item = &Worker> {
        self.workers.values()
    }

    /// Every job, by id.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values().map(|job| &**job)
    }

    /// Every live idempotency entry, in key-map order (a hash of the key, then the key).
    pub fn idempotency_entries(&self) -> impl Iterator<Item = &IdempotencyEntry> {
        self.keys.values()
    }

    /// The latest recorded exit of the workflow, if it is still kept.
    pub fn output(&self, job: JobId, workflow: WorkflowId) -> Option<&WorkflowOutput> {
        self.outputs.get(&(job, workflow))
    }

    /// The kept exits of the job's workflows, in workflow order.
    pub fn outputs_of(&self, job: JobId) -> impl Iterator<Item = &WorkflowOutput> {
        self.outputs
            .range((job, WorkflowId(0))..=(job, WorkflowId(u32::MAX)))
            .map(|(_, output)| output)
    }

    /// Cores held on the worker by dispatched, running or cancelling workflows.
    pub fn cores_used(&self, worker: WorkerId) -> u32 {
        self.index.cores_used.get(&worker).copied().unwrap_or(0)
    }

    /// The records as they are now, sharing the jobs with this state (see [`Frozen`]).
    pub fn freeze(&self) -> Frozen {
        Frozen {
            globals: self.globals.clone(),
            jobs: self.jobs.clone(),
            keys: self.keys.clone(),
            workers: self.workers.clone(),
            outputs: self.outputs.clone(),
        }
    }

    /// Borrowed records, for persistence.
    pub fn parts(&self) -> Parts<'_> {
        Parts { state: self }
    }

    /// Owned copy of every record.
    pub fn to_records(&self) -> Records {
        Records {
            globals: self.globals.clone(),
            jobs: self.jobs.values().map(|job| Job::clone(job)).collect(),
            idempotency: self.keys.values().cloned().collect(),
            workers: self.workers.values().cloned().collect(),
            outputs: self.outputs.values().cloned().collect(),
        }
    }

    /// Rebuilds a state from its records (in any order), re-deriving every index. Fails with
    /// [`Error::InconsistentRecords`] on duplicates or records that contradict each other.
    pub fn from_records(
        globals: Globals,
        jobs: impl IntoIterator<Item = Job>,
        idempotency: impl IntoIterator<Item = IdempotencyEntry>,
        workers: impl IntoIterator<Item = Worker>,
        outputs: impl IntoIterator<Item = WorkflowOutput>,
    ) -> Result<State> {
        let jobs = jobs.into_iter().map(Arc::new).collect();
        State::from_shared(
            globals,
            jobs,
            idempotency.into_iter().collect(),
            workers.into_iter().collect(),
            outputs.into_iter().collect(),
        )
    }

    /// [`State::from_records`] on owned [`Records`].
    pub fn from_owned_records(records: Records) -> Result<State> {
        State::from_records(
            records.globals,
            records.jobs,
            records.idempotency,
            records.workers,
            records.outputs,
        )
    }

    /// Builds the maps in bulk from sorted vectors (packed B-tree nodes, no per-record search):
    /// this is the restore path for snapshots of a million jobs. The jobs come shared, as the
    /// map holds them, so decoding puts each job in its final allocation.
    pub(crate) fn from_shared(
        globals: Globals,
        mut jobs: Vec<Arc<Job>>,
        idempotency: Vec<IdempotencyEntry>,
        mut workers: Vec<Worker>,
        outputs: Vec<WorkflowOutput>,
    ) -> Result<State> {
        globals.config.validate()?;
        workers.sort_unstable_by_key(|worker| worker.id);
        if let Some(pair) = workers.windows(2).find(|pair| pair[0].id == pair[1].id) {
            return Err(inconsistent(format!("worker {} appears twice", pair[0].id)));
        }
        let workers: BTreeMap<WorkerId, Worker> = workers
            .into_iter()
            .map(|worker| (worker.id, worker))
            .collect();
        if !jobs.windows(2).all(|pair| pair[0].id < pair[1].id) {
            jobs.sort_unstable_by_key(|job| job.id);
            if let Some(pair) = jobs.windows(2).find(|pair| pair[0].id == pair[1].id) {
                return Err(inconsistent(format!("job {} appears twice", pair[0].id)));
            }
        }
        let last_applied = globals.last_applied;
        for job in &jobs {
            check_job(job, &workers)?;
            // A job from a later entry than the last applied one would collide with the id
            // `apply` derives when that entry arrives.
            if job.id.log_index() > last_applied {
                let what = format!(
                    "job {} is newer than the last applied index {last_applied}",
                    job.id
                );
                return Err(inconsistent(what));
            }
        }
        // The ids side by side: a binary search through the boxed jobs misses the cache at
        // every step.
        let job_ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
        for entry in &idempotency {
            let known = entry
                .job
                .is_none_or(|job| job_ids.binary_search(&job).is_ok());
            if !known {
                return Err(inconsistent(format!(
                    "key {} names a missing job",
                    entry.key
                )));
            }
        }
        let outputs = check_outputs(outputs, &jobs)?;
        let index = Indexes::build(jobs.iter().map(|job| &**job), &idempotency);
        let keys = KeyMap::from_entries(idempotency)
            .map_err(|key| inconsistent(format!("key {key} appears twice")))?;
        Ok(State {
            globals,
            jobs: jobs.into_iter().map(|job| (job.id, job)).collect(),
            keys,
            workers,
            outputs,
            index,
        })
    }
}

/// Keys the output records, refusing duplicates, too many, and records of missing workflows.
fn check_outputs(
    outputs: Vec<WorkflowOutput>,
    jobs: &[Arc<Job>],
) -> Result<BTreeMap<(JobId, WorkflowId), WorkflowOutput>> {
    if outputs.len() > OUTPUT_RECORDS_MAX {
        return Err(inconsistent(format!(
            "{} output records, more than the bound {OUTPUT_RECORDS_MAX}",
            outputs.len()
        )));
    }
    let mut keyed = BTreeMap::new();
    for output in outputs {
        let key = (output.job, output.workflow);
        let known = jobs
            .binary_search_by_key(&output.job, |job| job.id)
            .ok()
            .and_then(|at| jobs.get(at))
            .is_some_and(|job| job.workflow(output.workflow).is_some());
        if !known {
            return Err(inconsistent(format!(
                "output of job {} workflow {} names a missing workflow",
                output.job, output.workflow
            )));
        }
        if keyed.insert(key, output).is_some() {
            return Err(inconsistent(format!(
                "output of job {} workflow {} appears twice",
                key.0, key.1
            )));
        }
    }
    Ok(keyed)
}

fn inconsistent(what: String) -> Error {
    Error::InconsistentRecords { what }
}

fn check_job(job: &Job, workers: &BTreeMap<WorkerId, Worker>) -> Result<()> {
    if job.workflows.len() != job.spec.workflow_count() {
        return Err(inconsistent(format!(
            "job {} has mismatched workflow lists",
            job.id
        )));
    }
    for (position, state) in job.workflows.iter().enumerate() {
        if state.status.holds_worker() {
            match state.worker {
                Some(worker) if workers.contains_key(&worker) => {}
                _ => {
                    let what = format!("job {} workflow {position} has no known worker", job.id);
                    return Err(inconsistent(what));
                }
            }
        }
    }
    Ok(())
}
