//! A job's spec as the state keeps it: the job's limits as plain fields, everything else packed
//! into one byte buffer.
//!
//! A submitted [`JobSpec`] is a tree of small allocations (a dozen for a two-workflow job: the
//! name, the workflow list, each workflow's name, argv vector and arguments). With a million
//! retained jobs that tree was the largest part of the state and of the restore time. Here the
//! numbers `apply` reads (timeouts, budgets, grace, each workflow's cores and timeout) are read
//! in place, and the text (names, labels, argv, env, working directories) is unpacked only by
//! queries. This is not a wire type: events and the API carry [`JobSpec`].
//!
//! Layout of the buffer (drawn in `docs/format.md` too):
//!
//! ```text
//! [workflows n: u16 LE]
//! n x [cores: u32 LE][has timeout: u8 0|1][timeout_ms: u64 LE, 0 when absent]
//! [name: str][labels: map]
//! n x [name: str][argv count: varint][arg: str]...[env: map][working dir: u8 0|1, then str]
//! str = [byte length: varint][UTF-8]    map = [count: varint]([key: str][value: str])...
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::WORKFLOWS_PER_JOB_MAX;
use crate::state::packed::{self, Counter, Reader, Sink};
use crate::{JobSpec, WorkflowSpec};

const COUNT_BYTES: usize = 2;
const LIMITS_BYTES: usize = 13;

const _: () = assert!(WORKFLOWS_PER_JOB_MAX <= u16::MAX as usize);

/// A job's spec in the state's compact form; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSpec {
    timeout_ms: u64,
    stuck_threshold_ms: u64,
    cancel_grace_ms: Option<u64>,
    retry_budget: u32,
    retry_budget_per_workflow: u32,
    packed: Packed,
}

/// The packed buffer, checked when decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Packed(Box<[u8]>);

/// A workflow's numbers, read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowLimits {
    /// Cores reserved on the worker.
    pub cores: u32,
    /// Timeout of one attempt, if any.
    pub timeout_ms: Option<u64>,
}

impl StoredSpec {
    /// Packs `spec` (its text in full).
    pub(crate) fn new(spec: &JobSpec) -> StoredSpec {
        StoredSpec::packed(spec, true)
    }

    /// Packs `spec`; without `full`, labels, argv and env are left out (a compacted job).
    fn packed(spec: &JobSpec, full: bool) -> StoredSpec {
        let mut counter = Counter::default();
        pack(spec, full, &mut counter);
        let mut bytes = Vec::with_capacity(counter.0);
        pack(spec, full, &mut bytes);
        StoredSpec {
            timeout_ms: spec.timeout_ms,
            stuck_threshold_ms: spec.stuck_threshold_ms,
            cancel_grace_ms: spec.cancel_grace_ms,
            retry_budget: spec.retry_budget,
            retry_budget_per_workflow: spec.retry_budget_per_workflow,
            packed: Packed(bytes.into_boxed_slice()),
        }
    }

    /// The same spec without labels, argv and env (what a compacted job keeps).
    pub(crate) fn compacted(&self) -> StoredSpec {
        StoredSpec::packed(&self.to_spec(), false)
    }

    /// Overall timeout from submission, before extensions.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// No progress for this long makes the running job stuck.
    pub fn stuck_threshold_ms(&self) -> u64 {
        self.stuck_threshold_ms
    }

    /// Re-dispatches the whole job may spend.
    pub fn retry_budget(&self) -> u32 {
        self.retry_budget
    }

    /// Re-dispatches each workflow may spend.
    pub fn retry_budget_per_workflow(&self) -> u32 {
        self.retry_budget_per_workflow
    }

    /// The job's cancel grace: its own, else the cluster's `default_ms`.
    pub fn cancel_grace_ms_or(&self, default_ms: u64) -> u64 {
        self.cancel_grace_ms.unwrap_or(default_ms)
    }

    /// Number of workflows.
    pub fn workflow_count(&self) -> usize {
        workflow_count(&self.packed.0)
    }

    /// The numbers of the workflow at `position`.
    pub fn workflow_limits(&self, position: usize) -> Option<WorkflowLimits> {
        if position >= self.workflow_count() {
            return None;
        }
        let start = COUNT_BYTES + position * LIMITS_BYTES;
        let mut reader = Reader::new(self.packed.0.get(start..start + LIMITS_BYTES)?);
        let cores = u32::from_le_bytes(reader.take(4)?.try_into().ok()?);
        let has_timeout = reader.byte()? == 1;
        let timeout_ms = u64::from_le_bytes(reader.take(8)?.try_into().ok()?);
        Some(WorkflowLimits {
            cores,
            timeout_ms: has_timeout.then_some(timeout_ms),
        })
    }

    /// Cores of the workflow at `position` (0 if there is none).
    pub fn workflow_cores(&self, position: usize) -> u32 {
        self.workflow_limits(position)
            .map_or(0, |limits| limits.cores)
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        self.text().string().unwrap_or_default()
    }

    /// Every workflow's name, in position order.
    pub fn workflow_names(&self) -> Vec<&str> {
        let mut names = Names(Vec::with_capacity(self.workflow_count()));
        walk(&self.packed.0, &mut names);
        names.0
    }

    /// The workflow at `position`, unpacked.
    pub fn workflow(&self, position: usize) -> Option<WorkflowSpec> {
        let mut spec = self.to_spec();
        (position < spec.workflows.len()).then(|| spec.workflows.swap_remove(position))
    }

    /// The spec, unpacked (labels, argv and env are empty once the job was compacted).
    pub fn to_spec(&self) -> JobSpec {
        let mut unpacker = Unpacker {
            spec: JobSpec::new(String::new(), Vec::new()),
        };
        let count = self.workflow_count();
        unpacker.spec.workflows = (0..count)
            .map(|position| {
                let limits = self.workflow_limits(position);
                let mut workflow = WorkflowSpec::new(String::new(), Vec::new());
                workflow.cores = limits.map_or(0, |limits| limits.cores);
                workflow.timeout_ms = limits.and_then(|limits| limits.timeout_ms);
                workflow
            })
            .collect();
        walk(&self.packed.0, &mut unpacker);
        let mut spec = unpacker.spec;
        spec.timeout_ms = self.timeout_ms;
        spec.stuck_threshold_ms = self.stuck_threshold_ms;
        spec.retry_budget = self.retry_budget;
        spec.retry_budget_per_workflow = self.retry_budget_per_workflow;
        spec.cancel_grace_ms = self.cancel_grace_ms;
        spec
    }

    /// Writes the spec into a job record (see `job_codec`).
    pub(crate) fn pack_into(&self, out: &mut Vec<u8>) {
        out.varint(self.timeout_ms);
        out.varint(self.stuck_threshold_ms);
        match self.cancel_grace_ms {
            Some(grace_ms) => {
                out.put(&[1]);
                out.varint(grace_ms);
            }
            None => out.put(&[0]),
        }
        out.varint(u64::from(self.retry_budget));
        out.varint(u64::from(self.retry_budget_per_workflow));
        out.varint(self.packed.0.len() as u64);
        out.put(&self.packed.0);
    }

    /// Reads what [`StoredSpec::pack_into`] wrote, checking the packed buffer.
    pub(crate) fn unpack_from(reader: &mut Reader<'_>) -> Option<StoredSpec> {
        let timeout_ms = reader.varint()?;
        let stuck_threshold_ms = reader.varint()?;
        let cancel_grace_ms = match reader.byte()? {
            0 => None,
            1 => Some(reader.varint()?),
            _ => return None,
        };
        let retry_budget = reader.varint_u32()?;
        let retry_budget_per_workflow = reader.varint_u32()?;
        let len = usize::try_from(reader.varint()?).ok()?;
        let packed = Packed::checked(reader.take(len)?.into()).ok()?;
        Some(StoredSpec {
            timeout_ms,
            stuck_threshold_ms,
            cancel_grace_ms,
            retry_budget,
            retry_budget_per_workflow,
            packed,
        })
    }

    fn text(&self) -> Reader<'_> {
        let start = COUNT_BYTES + self.workflow_count() * LIMITS_BYTES;
        Reader::new(self.packed.0.get(start..).unwrap_or_default())
    }
}

fn workflow_count(bytes: &[u8]) -> usize {
    match bytes {
        [low, high, ..] => usize::from(u16::from_le_bytes([*low, *high])),
        _ => 0,
    }
}

fn pack(spec: &JobSpec, full: bool, sink: &mut impl Sink) {
    sink.put(&(spec.workflows.len() as u16).to_le_bytes());
    for workflow in &spec.workflows {
        sink.put(&workflow.cores.to_le_bytes());
        sink.put(&[u8::from(workflow.timeout_ms.is_some())]);
        sink.put(&workflow.timeout_ms.unwrap_or(0).to_le_bytes());
    }
    sink.string(&spec.name);
    pack_map(if full { Some(&spec.labels) } else { None }, sink);
    for workflow in &spec.workflows {
        sink.string(&workflow.name);
        let argv: &[String] = if full { &workflow.command } else { &[] };
        sink.varint(argv.len() as u64);
        for argument in argv {
            sink.string(argument);
        }
        pack_map(if full { Some(&workflow.env) } else { None }, sink);
        match &workflow.working_dir {
            Some(dir) => {
                sink.put(&[1]);
                sink.string(dir);
            }
            None => sink.put(&[0]),
        }
    }
}

fn pack_map(map: Option<&BTreeMap<String, String>>, sink: &mut impl Sink) {
    let Some(map) = map else {
        sink.varint(0);
        return;
    };
    sink.varint(map.len() as u64);
    for (key, value) in map {
        sink.string(key);
        sink.string(value);
    }
}

/// What [`walk`] reports, in buffer order; every method defaults to ignoring its input.
trait TextVisitor<'a> {
    fn name(&mut self, _name: &'a str) {}
    fn label(&mut self, _key: &'a str, _value: &'a str) {}
    fn workflow_name(&mut self, _position: usize, _name: &'a str) {}
    fn argument(&mut self, _position: usize, _argument: &'a str) {}
    fn env(&mut self, _position: usize, _key: &'a str, _value: &'a str) {}
    fn working_dir(&mut self, _position: usize, _dir: &'a str) {}
}

/// Reads the whole buffer, reporting its text to `visitor`; `None` if the buffer is malformed
/// (short, bad UTF-8, a flag other than 0 or 1, trailing bytes).
fn walk<'a>(bytes: &'a [u8], visitor: &mut impl TextVisitor<'a>) -> Option<()> {
    let mut reader = Reader::new(bytes);
    let count = usize::from(u16::from_le_bytes(
        reader.take(COUNT_BYTES)?.try_into().ok()?,
    ));
    for _ in 0..count {
        let limits = reader.take(LIMITS_BYTES)?;
        if limits[4] > 1 {
            return None;
        }
    }
    visitor.name(reader.string()?);
    for _ in 0..reader.varint()? {
        let key = reader.string()?;
        visitor.label(key, reader.string()?);
    }
    for position in 0..count {
        visitor.workflow_name(position, reader.string()?);
        for _ in 0..reader.varint()? {
            visitor.argument(position, reader.string()?);
        }
        for _ in 0..reader.varint()? {
            let key = reader.string()?;
            visitor.env(position, key, reader.string()?);
        }
        match reader.byte()? {
            0 => {}
            1 => visitor.working_dir(position, reader.string()?),
            _ => return None,
        }
    }
    reader.is_empty().then_some(())
}

struct Checker;

impl TextVisitor<'_> for Checker {}

struct Names<'a>(Vec<&'a str>);

impl<'a> TextVisitor<'a> for Names<'a> {
    fn workflow_name(&mut self, _position: usize, name: &'a str) {
        self.0.push(name);
    }
}

struct Unpacker {
    spec: JobSpec,
}

impl Unpacker {
    fn at(&mut self, position: usize) -> Option<&mut WorkflowSpec> {
        self.spec.workflows.get_mut(position)
    }
}

impl TextVisitor<'_> for Unpacker {
    fn name(&mut self, name: &str) {
        self.spec.name = name.to_owned();
    }

    fn label(&mut self, key: &str, value: &str) {
        self.spec.labels.insert(key.to_owned(), value.to_owned());
    }

    fn workflow_name(&mut self, position: usize, name: &str) {
        if let Some(workflow) = self.at(position) {
            workflow.name = name.to_owned();
        }
    }

    fn argument(&mut self, position: usize, argument: &str) {
        if let Some(workflow) = self.at(position) {
            workflow.command.push(argument.to_owned());
        }
    }

    fn env(&mut self, position: usize, key: &str, value: &str) {
        if let Some(workflow) = self.at(position) {
            workflow.env.insert(key.to_owned(), value.to_owned());
        }
    }

    fn working_dir(&mut self, position: usize, dir: &str) {
        if let Some(workflow) = self.at(position) {
            workflow.working_dir = Some(dir.to_owned());
        }
    }
}

impl Serialize for Packed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        packed::serialize_bytes(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Packed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Packed, D::Error> {
        let bytes = packed::deserialize_bytes(deserializer)?.into_boxed_slice();
        Packed::checked(bytes).map_err(serde::de::Error::custom)
    }
}

impl Packed {
    fn checked(bytes: Box<[u8]>) -> Result<Packed, &'static str> {
        match walk(&bytes, &mut Checker) {
            Some(()) => Ok(Packed(bytes)),
            None => Err("malformed packed job spec"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JobSpec {
        let mut build = WorkflowSpec::new("build", vec!["make".into(), "-j4".into()]);
        build.env.insert("CC".into(), "clang".into());
        build.cores = 4;
        build.timeout_ms = Some(60_000);
        build.working_dir = Some("src".into());
        let test = WorkflowSpec::new("tést", vec!["make".into(), "test".into()]);
        let mut spec = JobSpec::new("release", vec![build, test]);
        spec.labels.insert("team".into(), "infra".into());
        spec.cancel_grace_ms = Some(5_000);
        spec.retry_budget = 7;
        spec
    }

    #[test]
    fn packing_round_trips_every_field() {
        let spec = sample();
        let stored = StoredSpec::new(&spec);
        assert_eq!(stored.to_spec(), spec);
        assert_eq!(stored.name(), "release");
        assert_eq!(stored.workflow_names(), ["build", "tést"]);
        assert_eq!(stored.workflow_count(), 2);
        let limits = WorkflowLimits {
            cores: 4,
            timeout_ms: Some(60_000),
        };
        assert_eq!(stored.workflow_limits(0), Some(limits));
        assert_eq!(stored.workflow_cores(1), 1);
        assert_eq!(stored.workflow_limits(2), None);
        assert_eq!(stored.workflow(1), Some(spec.workflows[1].clone()));
        assert_eq!(stored.cancel_grace_ms_or(1), 5_000);
    }

    #[test]
    fn compaction_keeps_names_and_numbers_only() {
        let stored = StoredSpec::new(&sample()).compacted();
        let spec = stored.to_spec();
        assert!(spec.labels.is_empty());
        assert!(spec
            .workflows
            .iter()
            .all(|w| w.command.is_empty() && w.env.is_empty()));
        assert_eq!(spec.workflows[0].working_dir.as_deref(), Some("src"));
        assert_eq!(stored.workflow_names(), ["build", "tést"]);
        assert_eq!(stored.workflow_cores(0), 4);
    }

    #[test]
    fn the_buffer_is_checked_when_decoded() {
        let stored = StoredSpec::new(&sample());
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&stored, config).unwrap();
        let (decoded, _): (StoredSpec, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(decoded, stored);
        // Every shortening of the buffer is refused, not read past its end.
        let buffer = &stored.packed.0;
        for len in 0..buffer.len() {
            assert!(walk(&buffer[..len], &mut Checker).is_none(), "{len}");
        }
        let mut longer = buffer.to_vec();
        longer.push(0);
        assert!(walk(&longer, &mut Checker).is_none());
        let mut bad_flag = buffer.to_vec();
        bad_flag[COUNT_BYTES + 4] = 2;
        assert!(walk(&bad_flag, &mut Checker).is_none());
    }
}
