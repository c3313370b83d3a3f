//! The sled materialized view: the state machine's records (globals, jobs, idempotency keys,
//! workers, output records) plus openraft's applied log id, membership and the removed node ids,
//! written in atomic batches behind the apply path. ADR 0007, ADR 0016.
//!
//! Jobs are stored by page (ADR 0017): one record holds the jobs of the same ordinal submitted
//! in [`PAGE_ENTRIES`] consecutive log entries, with the idempotency entries bound to them, so
//! that a burst of submits costs sled a few page rewrites instead of two inserts per submit.
//! Page records are compressed with LZ4, since sled's cost grows with the bytes it is given
//! (ADR 0027, ADR 0029). Entries not bound to a job yet (a reservation) have records of their
//! own.
//!
//! The view is a cache, not the truth: sled 0.34's flush is not a durable sync on Linux, so after
//! a crash it may be behind. The WAL and the snapshot files are the truth; the state machine
//! adapter re-applies what the view lacks. This module does not decide what to write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openraft::{LogId, StoredMembership};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use steward_statemachine::{
    Globals, IdempotencyEntry, Job, JobId, LogIndex, State, Touched, Worker, WorkflowId,
    WorkflowOutput,
};

use crate::error::{Error, Result};
use crate::raft::background::LowPriorityThread;
use crate::raft::{NodeId, PeerNode};

/// Value of the `m/format` key: names this layout. A view in another layout is rebuilt.
/// Version 2: job records with the packed spec and timeline of snapshot format 2.
/// Version 3: jobs and their bound idempotency entries in page records (ADR 0017).
/// Version 4: pages of 8 entries instead of 32 (ADR 0027).
/// Version 5: page records compressed with LZ4 (ADR 0029).
const VIEW_FORMAT: &[u8] = b"steward-view-5";

/// Log entries per page: a page holds at most this many jobs (one per entry, all of the same
/// ordinal). Small enough that a sled leaf of pages (up to 17 records) of ordinary jobs stays
/// under the size sled writes as a blob file of its own (a quarter of its 512 KiB segment):
/// 8 jobs of about 700 bytes make a 6 KB page and a leaf of about 100 KB (ADR 0027).
const PAGE_ENTRIES: u64 = 8;

/// Attempts to open sled while another handle in this process releases it. Default: 50.
const OPEN_ATTEMPTS_MAX: u32 = 50;
/// Pause between those attempts. Default: 100 ms.
const OPEN_RETRY_MS: u64 = 100;

const KEY_FORMAT: &[u8] = b"m/format";
const KEY_GLOBALS: &[u8] = b"m/globals";
const KEY_RAFT: &[u8] = b"m/raft";
/// Pages of jobs with their bound idempotency entries, keyed by page number and ordinal
/// (big-endian).
const PREFIX_PAGE: &[u8] = b"p/";
/// Idempotency entries not bound to a job, keyed by the encoded key.
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

/// Which page record holds a job: its entry's index divided by [`PAGE_ENTRIES`], and its
/// ordinal within the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct PageId {
    number: u64,
    ordinal: u32,
}

impl PageId {
    fn of(job: JobId) -> PageId {
        PageId {
            number: job.log_index().0 / PAGE_ENTRIES,
            ordinal: job.ordinal(),
        }
    }

    fn key(self) -> Vec<u8> {
        let mut key = keyed(PREFIX_PAGE, &self.number.to_be_bytes());
        key.extend_from_slice(&self.ordinal.to_be_bytes());
        key
    }

    /// Every job id the page can hold, oldest first.
    fn members(self) -> impl Iterator<Item = JobId> {
        let first = self.number.saturating_mul(PAGE_ENTRIES);
        (first..first.saturating_add(PAGE_ENTRIES))
            .filter_map(move |index| JobId::from_position(LogIndex(index), self.ordinal))
    }
}

/// A page as written, borrowed from the state: its jobs in id order and the entries bound to
/// them.
#[derive(Default, Serialize)]
struct PageOut<'a> {
    jobs: Vec<&'a Job>,
    keys: Vec<&'a IdempotencyEntry>,
}

impl<'a> PageOut<'a> {
    fn add(&mut self, state: &'a State, job: &'a Job) {
        self.jobs.push(job);
        if let Some(entry) = bound_entry(state, job) {
            self.keys.push(entry);
        }
    }
}

/// A page as read back (the same encoding as [`PageOut`]).
#[derive(Deserialize)]
struct PageIn {
    jobs: Vec<Job>,
    keys: Vec<IdempotencyEntry>,
}

/// The live idempotency entry bound to `job`, if any. Jobs are never removed from the state
/// (only compacted), so every bound entry is found from its job.
fn bound_entry<'a>(state: &'a State, job: &Job) -> Option<&'a IdempotencyEntry> {
    let entry = state.idempotency_entry(job.idempotency_key.as_ref()?)?;
    (entry.job == Some(job.id)).then_some(entry)
}

fn page_out(state: &State, page: PageId) -> PageOut<'_> {
    let mut out = PageOut::default();
    for id in page.members() {
        if let Some(job) = state.job(id) {
            out.add(state, job);
        }
    }
    out
}

/// Records and meta encoded by [`View::encode_applied`], written whole by [`View::write`].
pub struct ViewBatch(sled::Batch);

/// A view being opened by [`View::open_in_background`].
pub struct OpeningView {
    thread: JoinHandle<Result<(View, Duration)>>,
    path: PathBuf,
}

impl OpeningView {
    /// Waits for the open; the view and how long sled took to open.
    pub fn finish(self) -> Result<(View, Duration)> {
        self.thread.join().unwrap_or_else(|_| {
            Err(Error::storage(
                format!("open sled at {}", self.path.display()),
                "the opening thread panicked",
            ))
        })
    }
}

/// The sled database holding the view.
pub struct View {
    db: sled::Db,
    path: std::path::PathBuf,
    /// Where the batches behind apply are written: sled's work there is milliseconds of CPU
    /// nobody waits for (ADR 0031).
    writer: LowPriorityThread,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| Error::storage("encode a view record", e))
}

/// A view key as an operator can read it in an error: a text key (`m/globals`) as it is, any
/// other as its prefix (`p/`, `k/`, `w/`, `o/`) and the binary id after it in hex (a page's
/// number and ordinal, big-endian).
fn key_name(key: &[u8]) -> String {
    if key.iter().all(u8::is_ascii_graphic) {
        return String::from_utf8_lossy(key).into_owned();
    }
    let (prefix, id) = key.split_at(key.len().min(2));
    let id: String = id.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{}{id}", String::from_utf8_lossy(prefix))
}

fn decode<T: DeserializeOwned>(bytes: &[u8], key: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(value, _)| value)
        .map_err(|e| Error::storage(format!("decode view key {}", key_name(key)), e))
}

/// Largest decoded page accepted from disk: far above any real page (at most
/// [`PAGE_ENTRIES`] jobs), low enough that a corrupted length cannot ask for gigabytes.
/// Default: 64 MiB.
const PAGE_DECODED_BYTES_MAX: usize = 64 << 20;

/// A page record: its bincode encoding, compressed with LZ4 behind the decoded length (u32,
/// little-endian). The jobs of a page share most of their fields' bytes (ADR 0029).
fn encode_page(page: &PageOut<'_>) -> Result<Vec<u8>> {
    Ok(lz4_flex::block::compress_prepend_size(&encode(page)?))
}

/// The bincode encoding of the page record `bytes` stored under `key`.
fn decompress_page(bytes: &[u8], key: &[u8]) -> Result<Vec<u8>> {
    let what = || format!("decompress view key {}", key_name(key));
    let (length, compressed) = match bytes.split_first_chunk::<4>() {
        Some((length, rest)) => (u32::from_le_bytes(*length) as usize, rest),
        None => return Err(Error::storage(what(), "shorter than its length field")),
    };
    if length > PAGE_DECODED_BYTES_MAX {
        return Err(Error::storage(
            what(),
            format!("decoded length {length} is over {PAGE_DECODED_BYTES_MAX}"),
        ));
    }
    let decoded =
        lz4_flex::block::decompress(compressed, length).map_err(|e| Error::storage(what(), e))?;
    if decoded.len() != length {
        return Err(Error::storage(
            what(),
            format!(
                "decoded {} bytes, its length field says {length}",
                decoded.len()
            ),
        ));
    }
    Ok(decoded)
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
                    let writer = LowPriorityThread::start("view-sled").map_err(|e| {
                        Error::storage(
                            format!("start the sled write thread for {}", path.display()),
                            e,
                        )
                    })?;
                    return Ok(View {
                        db,
                        path: path.to_path_buf(),
                        writer,
                    });
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

    /// Starts [`View::open`] on a thread of its own: sled's recovery reads its whole log, and
    /// the WAL's open and the snapshot's restore need not wait for it (ADR 0023).
    pub fn open_in_background(path: &Path) -> Result<OpeningView> {
        let owned = path.to_path_buf();
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("sled-open".to_owned())
            .spawn(move || View::open(&owned).map(|view| (view, started.elapsed())))
            .map_err(|e| Error::storage(format!("start opening sled at {}", path.display()), e))?;
        Ok(OpeningView {
            thread,
            path: path.to_path_buf(),
        })
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
        let mut jobs = Vec::new();
        let mut keys: Vec<IdempotencyEntry> = self.scan(PREFIX_KEY)?;
        for page in self.scan_pages()? {
            jobs.extend(page.jobs);
            keys.extend(page.keys);
        }
        let workers: Vec<Worker> = self.scan(PREFIX_WORKER)?;
        let outputs: Vec<WorkflowOutput> = self.scan(PREFIX_OUTPUT)?;
        let state = State::from_records(globals, jobs, keys, workers, outputs).map_err(|e| {
            Error::storage(format!("rebuild state from {}", self.path.display()), e)
        })?;
        Ok(Some((state, meta)))
    }

    fn scan_pages(&self) -> Result<Vec<PageIn>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(PREFIX_PAGE) {
            let (key, value) = item.map_err(self.err("scan"))?;
            out.push(decode(&decompress_page(&value, &key)?, &key)?);
        }
        Ok(out)
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
        // No format key: only `replace_all` vouches for the layout (see there).
        let mut batch = sled::Batch::default();
        batch.insert(KEY_GLOBALS, encode(state.globals())?);
        batch.insert(KEY_RAFT, encode(meta)?);
        let mut pages: BTreeSet<PageId> = touched.jobs.iter().map(|id| PageId::of(*id)).collect();
        for idem in &touched.idempotency_keys {
            let key = keyed(PREFIX_KEY, &encode(idem)?);
            match state.idempotency_entry(idem) {
                Some(entry @ IdempotencyEntry { job: None, .. }) => {
                    batch.insert(key, encode(entry)?);
                }
                Some(IdempotencyEntry { job: Some(job), .. }) => {
                    batch.remove(key);
                    pages.insert(PageId::of(*job));
                }
                // An expired entry that was bound names its job in `touched.jobs`.
                None => batch.remove(key),
            }
        }
        for page in pages {
            let out = page_out(state, page);
            if out.jobs.is_empty() {
                batch.remove(page.key());
            } else {
                batch.insert(page.key(), encode_page(&out)?);
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

    /// Writes `batch` atomically, on the view's low-priority thread (ADR 0031). Not durable on
    /// return (see the module comment).
    pub fn write(&self, batch: ViewBatch) -> Result<()> {
        let db = self.db.clone();
        match self.writer.run(move || db.apply_batch(batch.0)) {
            Some(written) => written.map_err(self.err("write")),
            None => Err(Error::storage(
                format!("write sled at {}", self.path.display()),
                "the sled write thread is gone",
            )),
        }
    }

    /// Replaces the whole view with `state` and `meta` (after installing a snapshot, or when
    /// the view was empty, unusable or behind the newest snapshot).
    ///
    /// Not one batch: a million jobs in one sled batch held gigabytes. The format key goes
    /// first and comes back last, so a view cut short by a crash or an error reads as unusable
    /// (`load_meta` answers `None`) and is rebuilt at the next start; sled recovers a prefix of
    /// its operations, so the format key cannot come back before the records it vouches for.
    pub fn replace_all(&self, state: &State, meta: &RaftMeta) -> Result<()> {
        self.db.remove(KEY_FORMAT).map_err(self.err("write"))?;
        self.db.clear().map_err(self.err("clear"))?;
        let mut chunk = Chunk::new(self);
        let mut pages: BTreeMap<PageId, PageOut<'_>> = BTreeMap::new();
        for job in state.jobs() {
            pages.entry(PageId::of(job.id)).or_default().add(state, job);
        }
        for (page, out) in &pages {
            chunk.insert(page.key(), encode_page(out)?)?;
        }
        for entry in state.idempotency_entries() {
            if entry.job.is_none() {
                chunk.insert(keyed(PREFIX_KEY, &encode(&entry.key)?), encode(entry)?)?;
            }
        }
        for worker in state.workers() {
            let key = keyed(PREFIX_WORKER, &worker.id.0.to_be_bytes());
            chunk.insert(key, encode(worker)?)?;
        }
        for output in state.parts().outputs() {
            chunk.insert(output_key(output.job, output.workflow), encode(output)?)?;
        }
        chunk.insert(KEY_GLOBALS.to_vec(), encode(state.globals())?)?;
        chunk.insert(KEY_RAFT.to_vec(), encode(meta)?)?;
        chunk.insert(KEY_FORMAT.to_vec(), VIEW_FORMAT.to_vec())?;
        chunk.apply()
    }
}

/// Records per sled batch when the view is rewritten whole: bounds the memory a rewrite holds.
/// Default: 1 024.
const REWRITE_BATCH_RECORDS: usize = 1024;

/// A sled batch applied every [`REWRITE_BATCH_RECORDS`] records.
struct Chunk<'v> {
    view: &'v View,
    batch: sled::Batch,
    records: usize,
}

impl<'v> Chunk<'v> {
    fn new(view: &'v View) -> Chunk<'v> {
        Chunk {
            view,
            batch: sled::Batch::default(),
            records: 0,
        }
    }

    fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.batch.insert(key, value);
        self.records += 1;
        if self.records >= REWRITE_BATCH_RECORDS {
            self.apply()?;
        }
        Ok(())
    }

    fn apply(&mut self) -> Result<()> {
        self.records = 0;
        let batch = std::mem::take(&mut self.batch);
        self.view
            .db
            .apply_batch(batch)
            .map_err(self.view.err("write"))
    }
}

#[cfg(test)]
mod tests {
    //! The view against its model, the state itself: after any history of submits (keyed or
    //! not, several per entry), cancels and key expiries, written in batches of any size, the
    //! view loads back to the same state.

    use proptest::prelude::*;
    use steward_statemachine::{
        apply, decide, state_hash, Command, IdempotencyKey, JobSpec, Proposal, WorkflowSpec,
    };

    use super::*;
    use crate::raft::view_writer::merge;

    #[derive(Debug, Clone)]
    enum Step {
        /// One entry submitting a job per element, keyed when `Some`.
        Submit(Vec<Option<u8>>),
        Cancel(u8),
        /// Moves time past the keys' TTL and expires what is due.
        Expire,
        /// Writes what was touched since the last write, then checks the view.
        Write,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => proptest::collection::vec(proptest::option::of(0u8..8), 1..4).prop_map(Step::Submit),
            2 => any::<u8>().prop_map(Step::Cancel),
            1 => Just(Step::Expire),
            2 => Just(Step::Write),
        ]
    }

    fn spec(name: &str) -> JobSpec {
        JobSpec::new(name, vec![WorkflowSpec::new("w", vec!["true".to_string()])])
    }

    struct Run {
        state: State,
        view: View,
        unwritten: Touched,
        index: u64,
        now_ms: u64,
        _dir: tempfile::TempDir,
    }

    impl Run {
        fn new() -> Run {
            let dir = tempfile::tempdir().unwrap();
            let view = View::open(&dir.path().join("sled")).unwrap();
            // As `StateMachineStore::open` does for an empty view: marks its layout.
            view.replace_all(&State::default(), &RaftMeta::default())
                .unwrap();
            Run {
                state: State::default(),
                view,
                unwritten: Touched::default(),
                index: 0,
                now_ms: 1_000,
                _dir: dir,
            }
        }

        fn propose(&mut self, commands: Vec<Command>) {
            let events: Vec<_> = commands
                .into_iter()
                .filter_map(|command| decide(&self.state, command, self.now_ms).ok())
                .flatten()
                .collect();
            self.index += 1;
            let proposal = Proposal {
                stamp_ms: self.now_ms,
                events,
            };
            let report = apply(&mut self.state, LogIndex(self.index), &proposal);
            merge(&mut self.unwritten, report.touched);
        }

        fn step(&mut self, step: Step) {
            match step {
                Step::Submit(keys) => {
                    let commands = keys
                        .into_iter()
                        .map(|key| Command::SubmitJob {
                            idempotency_key: key
                                .map(|key| IdempotencyKey::new("ns", format!("key-{key}"))),
                            spec: spec("job"),
                        })
                        .collect();
                    self.propose(commands);
                }
                Step::Cancel(pick) => {
                    let ids: Vec<JobId> = self.state.jobs().map(|job| job.id).collect();
                    if let Some(job) = ids.get(usize::from(pick) % ids.len().max(1)) {
                        let job = *job;
                        self.propose(vec![Command::CancelJob {
                            job,
                            fence_token: None,
                        }]);
                    }
                }
                Step::Expire => {
                    let ttl_ms = self.state.globals().config.idempotency_ttl_ms;
                    self.now_ms = self.now_ms.saturating_add(ttl_ms).saturating_add(1);
                    self.propose(vec![Command::ExpireIdempotency]);
                }
                Step::Write => self.write_and_check(),
            }
        }

        fn write_and_check(&mut self) {
            let touched = std::mem::take(&mut self.unwritten);
            let batch = self
                .view
                .encode_applied(&self.state, &touched, &RaftMeta::default())
                .unwrap();
            self.view.write(batch).unwrap();
            let (loaded, _) = self.view.load().unwrap().unwrap();
            assert_eq!(state_hash(&loaded), state_hash(&self.state));
        }
    }

    #[test]
    fn error_key_names_are_text_or_prefix_and_hex() {
        assert_eq!(key_name(KEY_GLOBALS), "m/globals");
        assert_eq!(
            key_name(&keyed(PREFIX_WORKER, &[0, 0, 1, 255])),
            "w/000001ff"
        );
    }

    #[test]
    fn a_page_with_a_corrupted_length_or_body_is_an_error_naming_its_key() {
        let page = PageOut::default();
        let good = encode_page(&page).unwrap();
        let key = PageId {
            number: 7,
            ordinal: 0,
        }
        .key();
        assert!(decompress_page(&good, &key).is_ok());
        for bad in [
            vec![1, 2],
            [u32::MAX.to_le_bytes().as_slice(), &good[4..]].concat(),
            [1_000u32.to_le_bytes().as_slice(), &good[4..]].concat(),
        ] {
            let err = decompress_page(&bad, &key).unwrap_err().to_string();
            assert!(
                err.contains("decompress view key p/000000000000000700000000"),
                "{err}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn view_loads_back_the_state(steps in proptest::collection::vec(step(), 1..60)) {
            let mut run = Run::new();
            for step in steps {
                run.step(step);
            }
            run.write_and_check();
            let rebuilt = Run::new();
            rebuilt.view.replace_all(&run.state, &RaftMeta::default()).unwrap();
            let (loaded, _) = rebuilt.view.load().unwrap().unwrap();
            prop_assert_eq!(state_hash(&loaded), state_hash(&run.state));
        }
    }
}
