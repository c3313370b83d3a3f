//! Secondary indexes over the records, never persisted: rebuilt by `State::from_records` and
//! kept in step by `apply`.
//!
//! They exist so that leader duties and queries do not scan every job. Equality of the rebuilt
//! and the incrementally maintained indexes is checked by the property tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::WorkflowStatus;
use crate::{IdempotencyEntry, IdempotencyKey, Job, JobId, JobStatus, WorkerId, WorkflowId};

/// What the indexes need to know of a workflow: its status and its worker.
pub(crate) type Placement = (WorkflowStatus, Option<WorkerId>);

/// Derived lookups; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Indexes {
    /// Jobs by status.
    pub by_status: BTreeMap<JobStatus, BTreeSet<JobId>>,
    /// Workflows waiting for dispatch (of jobs that are not terminal).
    pub pending_workflows: BTreeSet<(JobId, WorkflowId)>,
    /// Workflows holding each worker's cores.
    pub assignments: BTreeMap<WorkerId, BTreeSet<(JobId, WorkflowId)>>,
    /// Cores held on each worker (absent means 0).
    pub cores_used: BTreeMap<WorkerId, u32>,
    /// Keys that can expire, by expiry stamp.
    pub key_expiry: BTreeSet<(u64, Arc<IdempotencyKey>)>,
    /// Finished jobs not yet compacted, oldest finish first.
    pub retained_finished: BTreeSet<(u64, JobId)>,
    /// Jobs with a cancel in progress.
    pub cancelling: BTreeSet<JobId>,
}

impl Indexes {
    /// Derives every index from records; `jobs` in id order. Collects sorted vectors and
    /// builds each set in bulk.
    pub fn build<'a>(jobs: impl Iterator<Item = &'a Job>, keys: &[IdempotencyEntry]) -> Indexes {
        let mut by_status: BTreeMap<JobStatus, Vec<JobId>> = BTreeMap::new();
        let mut pending = Vec::new();
        let mut assignments: BTreeMap<WorkerId, Vec<(JobId, WorkflowId)>> = BTreeMap::new();
        let mut cores_used: BTreeMap<WorkerId, u32> = BTreeMap::new();
        let mut retained = Vec::new();
        let mut cancelling = Vec::new();
        for job in jobs {
            by_status.entry(job.status).or_default().push(job.id);
            for (position, state) in (0u32..).zip(&job.workflows) {
                let workflow = WorkflowId(position);
                if state.status == WorkflowStatus::Pending {
                    pending.push((job.id, workflow));
                }
                if let (true, Some(worker)) = (state.status.holds_worker(), state.worker) {
                    assignments
                        .entry(worker)
                        .or_default()
                        .push((job.id, workflow));
                    let used = cores_used.entry(worker).or_default();
                    *used = used.saturating_add(job.spec.workflow_cores(position as usize));
                }
            }
            if job.is_cancelling() {
                cancelling.push(job.id);
            }
            if let (Some(finished_at_ms), false) = (job.finished_at_ms, job.compacted) {
                retained.push((finished_at_ms, job.id));
            }
        }
        cores_used.retain(|_, cores| *cores > 0);
        let mut key_expiry: Vec<(u64, Arc<IdempotencyKey>)> = keys
            .iter()
            .filter(|entry| entry.expires_at_ms != u64::MAX)
            .map(|entry| (entry.expires_at_ms, Arc::clone(&entry.key)))
            .collect();
        key_expiry.sort_unstable();
        retained.sort_unstable();
        Indexes {
            by_status: by_status
                .into_iter()
                .map(|(status, ids)| (status, ids.into_iter().collect()))
                .collect(),
            pending_workflows: pending.into_iter().collect(),
            assignments: assignments
                .into_iter()
                .map(|(worker, set)| (worker, set.into_iter().collect()))
                .collect(),
            cores_used,
            key_expiry: key_expiry.into_iter().collect(),
            retained_finished: retained.into_iter().collect(),
            cancelling: cancelling.into_iter().collect(),
        }
    }

    pub fn add_job(&mut self, job: &Job) {
        self.by_status.entry(job.status).or_default().insert(job.id);
        for (position, state) in (0u32..).zip(&job.workflows) {
            let placement = (state.status, state.worker);
            let cores = job.spec.workflow_cores(position as usize);
            self.add_workflow(job.id, WorkflowId(position), placement, cores);
        }
        if job.is_cancelling() {
            self.cancelling.insert(job.id);
        }
        if let (Some(finished_at_ms), false) = (job.finished_at_ms, job.compacted) {
            self.retained_finished.insert((finished_at_ms, job.id));
        }
    }

    pub fn add_key(&mut self, entry: &IdempotencyEntry) {
        if entry.expires_at_ms != u64::MAX {
            self.key_expiry
                .insert((entry.expires_at_ms, Arc::clone(&entry.key)));
        }
    }

    pub fn remove_key(&mut self, entry: &IdempotencyEntry) {
        self.key_expiry
            .remove(&(entry.expires_at_ms, Arc::clone(&entry.key)));
    }

    pub fn job_status_changed(&mut self, job: JobId, from: JobStatus, to: JobStatus) {
        if let Some(set) = self.by_status.get_mut(&from) {
            set.remove(&job);
            if set.is_empty() {
                self.by_status.remove(&from);
            }
        }
        self.by_status.entry(to).or_default().insert(job);
    }

    /// Moves a workflow's entries from its `before` placement to its `after` one, touching
    /// only what differs (a start keeps the worker: its assignment and cores stay put).
    pub fn move_workflow(
        &mut self,
        job: JobId,
        workflow: WorkflowId,
        before: Placement,
        after: Placement,
        cores: u32,
    ) {
        let pending = |(status, _): Placement| status == WorkflowStatus::Pending;
        match (pending(before), pending(after)) {
            (true, false) => {
                self.pending_workflows.remove(&(job, workflow));
            }
            (false, true) => {
                self.pending_workflows.insert((job, workflow));
            }
            _ => {}
        }
        let (held_before, held_after) = (holder(before), holder(after));
        if held_before != held_after {
            if let Some(worker) = held_before {
                self.release(job, workflow, worker, cores);
            }
            if let Some(worker) = held_after {
                self.hold(job, workflow, worker, cores);
            }
        }
    }

    pub fn add_workflow(
        &mut self,
        job: JobId,
        workflow: WorkflowId,
        placement: Placement,
        cores: u32,
    ) {
        if placement.0 == WorkflowStatus::Pending {
            self.pending_workflows.insert((job, workflow));
        }
        if let Some(worker) = holder(placement) {
            self.hold(job, workflow, worker, cores);
        }
    }

    fn hold(&mut self, job: JobId, workflow: WorkflowId, worker: WorkerId, cores: u32) {
        self.assignments
            .entry(worker)
            .or_default()
            .insert((job, workflow));
        let used = self.cores_used.entry(worker).or_default();
        *used = used.saturating_add(cores);
    }

    fn release(&mut self, job: JobId, workflow: WorkflowId, worker: WorkerId, cores: u32) {
        if let Some(set) = self.assignments.get_mut(&worker) {
            set.remove(&(job, workflow));
            if set.is_empty() {
                self.assignments.remove(&worker);
            }
        }
        if let Some(used) = self.cores_used.get_mut(&worker) {
            *used = used.saturating_sub(cores);
            if *used == 0 {
                self.cores_used.remove(&worker);
            }
        }
    }
}

/// The worker whose cores the workflow holds, if it holds any.
fn holder((status, worker): Placement) -> Option<WorkerId> {
    worker.filter(|_| status.holds_worker())
}
