//! The `Wal` handle: opening, appending with group commit, and the shared state every other
//! operation works on. Reads live in `read`, truncation and purging in `maintenance`, the vote in
//! `vote`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};
use std::time::Instant;

use crate::commit::GroupCommit;
use crate::error::{Error, Result};
use crate::format::{encode_record, frame_bytes, RECORD_PAYLOAD_BYTES_MAX, SEGMENT_HEADER_BYTES};
use crate::fs::{DirLock, FileSystem, StdFs};
use crate::metrics::{Metrics, WalMetrics};
use crate::options::{SyncPolicy, WalOptions};
use crate::record::{LogIndex, Record};
use crate::recovery::{recover, RecoveryReport};
use crate::segment::{extend_with_zeroes, Segment};
use crate::spare::{spare_path, Spare};

/// A segmented write-ahead log. `Send + Sync`; every method takes `&self` and blocks.
#[derive(Debug)]
pub struct Wal {
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) dir: PathBuf,
    pub(crate) options: WalOptions,
    /// The write lock: segments, offsets and write counters. Never held across a group-commit
    /// `fdatasync`.
    pub(crate) state: Mutex<State>,
    /// Group commit (`commit`); its lock comes after `state`.
    pub(crate) commit: GroupCommit,
    /// The first failure that left the disk state unknown; set once, never cleared.
    poison: OnceLock<String>,
    pub(crate) metrics: Metrics,
    pub(crate) vote_lock: Mutex<()>,
    /// Keeps other `Wal`s out of the directory while this one is open.
    _dir_lock: DirLock,
}

#[derive(Debug)]
pub(crate) struct State {
    /// Segments in index order; only the last one is written to. Only the last may be empty.
    pub segments: Vec<Segment>,
    /// Frame bytes written since open (a position for group commit, never decreases).
    pub written_bytes: u64,
    /// Records written since open.
    pub written_records: u64,
    /// Frames appended to the active segment but not yet written to its file (they belong at
    /// its `flushed_end`). The group's syncer writes them with one `write` just before its
    /// `fdatasync`, so a commit group costs one write and one sync, not one write per appender.
    pub pending: Vec<u8>,
    /// The next segment, being prepared in the background.
    spare: Spare,
    /// The spare is yet to be started: set by `open`, which leaves it to [`Wal::prepare_spare`]
    /// or the first write rather than zero-filling and syncing a whole segment while the
    /// caller is still recovering its own state from the log (ADR 0032).
    spare_due: bool,
}

impl State {
    /// Index the next appended record must have; `None` for a log that has never held a record
    /// (any first index is accepted).
    pub fn next_index(&self) -> Option<u64> {
        self.segments.last().map(Segment::next_index)
    }

    pub fn records(&self) -> u64 {
        self.segments.iter().map(Segment::records).sum()
    }

    pub fn first_index(&self) -> Option<u64> {
        let first = self.segments.first()?;
        (first.records() > 0).then_some(first.first_index)
    }

    /// Whether `len` more frame bytes fit in the active segment as it is (no roll, no growth).
    fn active_fits(&self, len: u64) -> bool {
        self.segments
            .last()
            .is_some_and(|seg| seg.data_end + len <= seg.file_bytes)
    }

    pub fn last_index(&self) -> Option<u64> {
        // The last segment may be empty (just rolled, or purged); earlier ones never are.
        let next = self.next_index()?;
        (self.segments.iter().any(|s| s.records() > 0)).then(|| next - 1)
    }
}

/// What [`Wal::try_write`] did.
#[derive(Debug)]
pub enum TryWrite {
    /// Written, or refused, exactly as [`Wal::write`] would have.
    Done(Result<WriteTicket>),
    /// Not attempted, because the write would have blocked; the records, untouched.
    WouldBlock(Vec<Record>),
}

/// A written batch, to wait on with `Wal::wait_durable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteTicket {
    /// Write position a sync must reach.
    position: u64,
    last_index: Option<LogIndex>,
}

impl WriteTicket {
    /// Index of the batch's last record (for an empty batch, the log's last index then).
    pub fn last_index(&self) -> Option<LogIndex> {
        self.last_index
    }
}

/// Checks a batch is contiguous and within limits; returns the bytes its frames take.
fn check_batch(records: &[Record]) -> Result<u64> {
    let first_index = records.first().map_or(0, |r| r.index.0);
    let mut total = 0;
    for (i, record) in records.iter().enumerate() {
        let expected = first_index + i as u64;
        if record.index.0 != expected {
            return Err(Error::NotContiguous {
                expected,
                got: record.index.0,
            });
        }
        let payload_bytes = record.payload.len() as u64;
        if payload_bytes > RECORD_PAYLOAD_BYTES_MAX {
            return Err(Error::RecordTooLarge {
                index: expected,
                payload_bytes,
                limit_bytes: RECORD_PAYLOAD_BYTES_MAX,
            });
        }
        total += frame_bytes(payload_bytes);
    }
    Ok(total)
}

/// Encodes a checked batch of `bytes` frame bytes into a buffer of its own.
fn encode_batch(records: &[Record], bytes: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(usize::try_from(bytes).unwrap_or(0));
    for record in records {
        encode_record(&mut out, record);
    }
    out
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a broken invariant already reported by that panic; the
    // data is still consistent for our purposes because every mutation re-checks the poison flag.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Wal {
    /// Opens (creating if needed) the log in `dir` on the real file system, running recovery.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, RecoveryReport)> {
        Self::open_with_fs(dir, options, Arc::new(StdFs))
    }

    /// Opens the log through a custom `FileSystem` (tests inject faults this way).
    ///
    /// Recovery cuts a torn tail and reports it; corruption fails with `Error::Corruption`
    /// unless `options.recovery_mode` is `Repair`.
    pub fn open_with_fs(
        dir: &Path,
        options: WalOptions,
        fs: Arc<dyn FileSystem>,
    ) -> Result<(Wal, RecoveryReport)> {
        options.validate()?;
        fs.create_dir_all(dir)
            .map_err(|e| Error::io("create directory", dir, e))?;
        let dir_lock = fs.lock_dir(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => Error::Locked {
                dir: dir.to_path_buf(),
            },
            _ => Error::io("lock directory", dir, e),
        })?;
        let (segments, report) = recover(fs.as_ref(), dir, options.recovery_mode)?;
        let segments_empty = segments.is_empty();
        let wal = Wal {
            fs,
            dir: dir.to_path_buf(),
            options,
            state: Mutex::new(State {
                segments,
                written_bytes: 0,
                written_records: 0,
                pending: Vec::new(),
                spare: Spare::default(),
                spare_due: !segments_empty,
            }),
            commit: GroupCommit::default(),
            poison: OnceLock::new(),
            metrics: Metrics::default(),
            vote_lock: Mutex::new(()),
            _dir_lock: dir_lock,
        };
        Ok((wal, report))
    }

    /// The directory this log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> WalOptions {
        self.options
    }

    /// Appends a batch of records: `write` followed by `wait_durable`.
    ///
    /// The batch must be contiguous and start at `next_index()` (any index for a log that never
    /// held a record), else `Error::NotContiguous` and nothing is written.
    ///
    /// Correctness: the batch is written with one `write` and is readable as soon as it is in the
    /// page cache; it is durable when this returns under `SyncPolicy::Always`/`Batch` (after an
    /// `fdatasync` that covers it, shared with concurrent appenders). A crash before that leaves
    /// any prefix of the batch, possibly with a torn record that recovery cuts. After an I/O
    /// error the log is poisoned.
    pub fn append(&self, records: Vec<Record>) -> Result<()> {
        let ticket = self.write(records)?;
        self.wait_durable(ticket)
    }

    /// Appends a batch built from the next index, under the write lock, and waits until it is
    /// durable. For many independent producers (each gets its own contiguous slot without an
    /// outer lock that would defeat group commit). `build` receives `next_index()`, or 1 for a
    /// log that never held a record; an empty batch is a no-op.
    pub fn append_next(&self, build: impl FnOnce(LogIndex) -> Vec<Record>) -> Result<WriteTicket> {
        let mut st = self.lock_state()?;
        let next = st.next_index().unwrap_or(1);
        let records = build(LogIndex(next));
        let bytes = check_batch(&records)?;
        // Already under the lock: encode straight into the write buffer, no copy in between.
        let ticket = self.write_locked(&mut st, &records, bytes, None)?;
        drop(st);
        self.wait_durable(ticket)?;
        Ok(ticket)
    }

    /// Writes a batch (readable at once) without waiting for it to become durable; pass the
    /// ticket to `wait_durable`. Lets a caller keep writing while earlier batches sync
    /// (pipelining). Same contiguity rules and errors as `append`.
    pub fn write(&self, records: Vec<Record>) -> Result<WriteTicket> {
        let bytes = check_batch(&records)?;
        // Encode and checksum before taking the lock, so other appenders are not held up.
        let encoded = encode_batch(&records, bytes);
        let mut st = self.lock_state()?;
        self.write_locked(&mut st, &records, bytes, Some(&encoded))
    }

    /// Writes a batch as [`Wal::write`] does, but only when that cannot block: when no other
    /// thread holds the log (a reader's `pread`, a sync's `write`) and the batch fits in the
    /// active segment (a roll seals the full one with an `fdatasync`). Otherwise it gives the
    /// records back untouched, for `write` on a thread that may block. An async caller on a
    /// busy runtime thread thus skips the hand-off to a blocking thread and back, which costs
    /// more than the copy into the write buffer that a write nearly always is.
    pub fn try_write(&self, records: Vec<Record>) -> TryWrite {
        let bytes = match check_batch(&records) {
            Ok(bytes) => bytes,
            Err(e) => return TryWrite::Done(Err(e)),
        };
        let mut st = match self.state.try_lock() {
            Ok(st) => st,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return TryWrite::WouldBlock(records),
        };
        // A roll syncs; a spare still to start spawns a thread.
        if !st.active_fits(bytes) || st.spare_due {
            return TryWrite::WouldBlock(records);
        }
        if let Err(e) = self.check_poison() {
            return TryWrite::Done(Err(e));
        }
        TryWrite::Done(self.write_locked(&mut st, &records, bytes, None))
    }

    /// Blocks until the batch behind `ticket` is durable under the sync policy (returns at once
    /// under `SyncPolicy::Never`).
    pub fn wait_durable(&self, ticket: WriteTicket) -> Result<()> {
        match self.options.sync_policy {
            SyncPolicy::Never => Ok(()),
            SyncPolicy::Always => self.wait_synced(ticket.position, None),
            SyncPolicy::Batch { max_delay } => self.wait_synced(ticket.position, Some(max_delay)),
        }
    }

    /// Writes a checked batch of `len` frame bytes under the write lock: its frames are
    /// `encoded` when given, else encoded here.
    fn write_locked(
        &self,
        st: &mut State,
        records: &[Record],
        len: u64,
        encoded: Option<&[u8]>,
    ) -> Result<WriteTicket> {
        let Some(first_index) = records.first().map(|r| r.index.0) else {
            let last_index = st.next_index().map(|n| LogIndex(n.saturating_sub(1)));
            return Ok(WriteTicket {
                position: st.written_bytes,
                last_index,
            });
        };
        if let Some(next) = st.next_index() {
            if next != first_index {
                return Err(Error::NotContiguous {
                    expected: next,
                    got: first_index,
                });
            }
        }
        self.make_room(st, first_index, len)?;
        if std::mem::take(&mut st.spare_due) {
            self.start_spare(st);
        }
        let State {
            segments, pending, ..
        } = st;
        let Some(seg) = segments.last_mut() else {
            unreachable!("make_room leaves an active segment");
        };
        let mut at = seg.data_end;
        for record in records {
            let offset = u32::try_from(at);
            assert!(offset.is_ok(), "segments are at most 1 GiB plus one record");
            seg.offsets.push(offset.unwrap_or(u32::MAX));
            at += frame_bytes(record.payload.len() as u64);
        }
        debug_assert_eq!(at - seg.data_end, len, "check_batch sized these frames");
        seg.data_end = at;
        match encoded {
            Some(bytes) => pending.extend_from_slice(bytes),
            None => records
                .iter()
                .for_each(|record| encode_record(pending, record)),
        }
        let records = records.len() as u64;
        st.written_bytes += len;
        st.written_records += records;
        if self.options.sync_policy == SyncPolicy::Never {
            // Nobody syncs under `Never`; reach the page cache now so a process crash keeps it.
            self.flush_pending(st)?;
        }
        self.metrics.record_append(records, len);
        Ok(WriteTicket {
            position: st.written_bytes,
            last_index: Some(LogIndex(first_index + records - 1)),
        })
    }

    /// Ensures the active segment has `len` free bytes: creates the first segment, grows an
    /// empty one, or syncs and seals the active one and starts the next.
    fn make_room(&self, st: &mut State, first_index: u64, len: u64) -> Result<()> {
        let needed = SEGMENT_HEADER_BYTES + len;
        let size = self.options.segment_bytes_max.max(needed);
        match st.segments.last_mut() {
            Some(seg) if seg.data_end + len <= seg.file_bytes => return Ok(()),
            Some(seg) if seg.records() == 0 => {
                let grown =
                    extend_with_zeroes(seg.file.as_ref(), &seg.path, seg.file_bytes, needed);
                grown.map_err(|e| self.poison_with(e))?;
                seg.file_bytes = needed;
                return Ok(());
            }
            Some(_) => {
                self.flush_pending(st)?;
                let Some(seg) = st.segments.last() else {
                    unreachable!("matched Some above");
                };
                // Seal: a sealed segment is always whole on disk, so recovery may treat damage
                // in one as corruption rather than a torn tail.
                let started = Instant::now();
                if let Err(e) = seg.file.sync_data() {
                    return Err(self.poison_with(Error::io("fdatasync", &seg.path, e)));
                }
                self.mark_synced(started.elapsed(), st.written_bytes, st.written_records);
            }
            None => {}
        }
        let spare = if size == self.options.segment_bytes_max {
            st.spare.take()
        } else {
            None
        };
        let created = match spare {
            Some(file) => {
                let spare_path = spare_path(&self.dir);
                Segment::from_spare(
                    self.fs.as_ref(),
                    &self.dir,
                    first_index,
                    (file, &spare_path),
                )
            }
            None => Segment::create(self.fs.as_ref(), &self.dir, first_index, size),
        };
        st.segments.push(created.map_err(|e| self.poison_with(e))?);
        self.start_spare(st);
        Ok(())
    }

    /// Starts preparing the next segment if `open` left that for later: for a caller that has
    /// finished reading its state back from the log, so that its first roll finds the spare
    /// ready instead of creating the segment under the write lock (ADR 0032). Otherwise the
    /// first write starts it.
    pub fn prepare_spare(&self) {
        let mut st = lock(&self.state);
        if std::mem::take(&mut st.spare_due) {
            self.start_spare(&mut st);
        }
    }

    fn start_spare(&self, st: &mut State) {
        if self.options.prepare_segments_in_background {
            st.spare
                .start(&self.fs, &self.dir, self.options.segment_bytes_max);
        }
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> WalMetrics {
        self.metrics.snapshot()
    }

    /// Index of the first record, `None` when the log holds no record.
    pub fn first_index(&self) -> Option<LogIndex> {
        lock(&self.state).first_index().map(LogIndex)
    }

    /// Index of the last record, `None` when the log holds no record.
    pub fn last_index(&self) -> Option<LogIndex> {
        lock(&self.state).last_index().map(LogIndex)
    }

    /// Index the next `append` must start at; `None` when any index is accepted (a log that has
    /// never held a record and was never purged).
    pub fn next_index(&self) -> Option<LogIndex> {
        lock(&self.state).next_index().map(LogIndex)
    }

    /// Locks the write state, failing if the log is poisoned.
    pub(crate) fn lock_state(&self) -> Result<MutexGuard<'_, State>> {
        self.check_poison()?;
        Ok(lock(&self.state))
    }

    pub(crate) fn check_poison(&self) -> Result<()> {
        match self.poison.get() {
            Some(reason) => Err(Error::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records `err` as the reason the log is poisoned (the first one wins), wakes every
    /// appender waiting for a sync (each then returns `Error::Poisoned`) and returns `err`.
    /// Must not be called with group commit's lock held.
    pub(crate) fn poison_with(&self, err: Error) -> Error {
        // Only the first failure is kept; a later one adds nothing the caller does not already get.
        let _ = self.poison.set(err.to_string());
        self.wake_all_waiters();
        err
    }
}

impl Drop for Wal {
    /// Waits for a spare segment being prepared and removes it, so a cleanly closed directory
    /// holds no temporary file. Nothing here touches records.
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if st.spare.take().is_some() {
            // Best effort: a leftover spare is a `*.tmp` file the next open removes anyway.
            let _ = self.fs.remove_file(&spare_path(&self.dir));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    /// Opening a log that holds records leaves the spare to the first write, so a caller
    /// folding its state from the log does not share the machine with a zero-fill and sync.
    #[test]
    fn the_spare_is_started_by_the_first_write_after_open_not_by_open() {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions {
            segment_bytes_max: 4096,
            ..WalOptions::default()
        };
        let record = |index| Record::new(index, 1, 1, vec![7u8; 16]);
        let (wal, _) = Wal::open(dir.path(), options).unwrap();
        wal.append(vec![record(1)]).unwrap();
        assert!(
            lock(&wal.state).spare.is_started(),
            "a new segment starts one"
        );
        drop(wal);

        let (wal, _) = Wal::open(dir.path(), options).unwrap();
        assert!(!lock(&wal.state).spare.is_started(), "open left it alone");
        assert!(
            matches!(wal.try_write(vec![record(2)]), TryWrite::WouldBlock(_)),
            "a write that would start it may block"
        );
        wal.append(vec![record(2)]).unwrap();
        assert!(
            lock(&wal.state).spare.is_started(),
            "the first write started it"
        );
        assert_eq!(wal.last_index(), Some(LogIndex(2)));
        drop(wal);

        let (wal, _) = Wal::open(dir.path(), options).unwrap();
        wal.prepare_spare();
        assert!(
            lock(&wal.state).spare.is_started(),
            "asked for after the fold"
        );
        assert!(matches!(
            wal.try_write(vec![record(3)]),
            TryWrite::Done(Ok(_))
        ));
    }
}
