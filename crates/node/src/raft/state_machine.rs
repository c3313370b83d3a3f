//! openraft's `RaftStateMachine` over `steward-statemachine`, with the sled view and snapshot
//! files. ADR 0007.
//!
//! Committed entries are folded into the in-memory [`State`] (which the node reads); the
//! records they touched are written to sled later, many applied batches per sled batch, by the
//! view writer (ADR 0016). Snapshots are the state's records plus openraft's applied id and
//! membership, in a self-checking file that is durable before openraft may purge the WAL up to
//! it. This module does not decide commands or stamp time (the node does).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};
use std::time::Instant;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use steward_statemachine::{JobStatus, State, Touched};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::raft::background;
use crate::raft::ready::Ready;
use crate::raft::resume::{self, Folded, WalReplay};
use crate::raft::snapshot_file::{self, SnapshotDir};
use crate::raft::view::{OpeningView, RaftMeta, View};
use crate::raft::view_writer::{self, merge, Pending, Unwritten, WriterSignal};
use crate::raft::{ApplyResponse, NodeId, PeerNode, TypeConfig};

/// What a snapshot file's body holds (bincode, inside the framed file).
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotBody<'a> {
    meta: SnapshotMeta<NodeId, PeerNode>,
    removed_ids: BTreeSet<NodeId>,
    /// `steward_statemachine::snapshot` of the state (its own magic and version), borrowed from
    /// the image: a byte string (length, then the bytes), the same bytes a `Vec<u8>` gives.
    #[serde(borrow)]
    state: &'a [u8],
}

struct Applied {
    state: State,
    meta: RaftMeta,
}

/// What the node's status, readiness and metrics routes read, copied out of the applied state
/// after every applied batch so that they never wait on its lock (ADR 0019).
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// openraft's applied id, membership and removed ids.
    pub meta: RaftMeta,
    /// Jobs per status (statuses with no job are absent).
    pub jobs_by_status: BTreeMap<JobStatus, u64>,
    /// Live idempotency keys.
    pub idempotency_keys: u64,
}

impl Published {
    fn of(applied: &Applied) -> Published {
        Published {
            meta: applied.meta.clone(),
            jobs_by_status: applied.state.counts_by_status(),
            idempotency_keys: applied.state.live_idempotency_keys(),
        }
    }
}

/// State shared by the adapter, its snapshot builder and the node's readers.
pub struct Shared {
    applied: RwLock<Applied>,
    /// Replaced while `applied` is still write-locked, so it never runs ahead of the state.
    published: Mutex<Published>,
    view: View,
    snapshots: SnapshotDir,
    /// Records changed by applied batches and not yet in the view (ADR 0016).
    unwritten: Mutex<Unwritten>,
    /// Held across encoding and writing one view batch, so batches land in encoding order.
    view_writes: Mutex<()>,
    /// Wakes the view writer thread.
    writer_signal: Arc<WriterSignal>,
    /// The snapshot image read at open, handed to openraft's first `get_current_snapshot` (it
    /// asks at startup) instead of reading hundreds of MiB again.
    opened_image: Mutex<Option<(PathBuf, Vec<u8>)>>,
    applied_index: watch::Sender<u64>,
    snapshot_seq: AtomicU64,
}

impl Drop for Shared {
    /// The last owner writes what the view lacks, so a cleanly closed node reopens from a
    /// current view.
    fn drop(&mut self) {
        if let Err(e) = self.write_unwritten() {
            tracing::warn!(error = %e, "writing the sled view at close failed");
        }
    }
}

/// openraft's state machine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

type StoreResult<T> = std::result::Result<T, StorageError<NodeId>>;

/// Payload bytes of the entries `apply` folds on its runtime thread rather than a blocking one:
/// 16 KiB, about 40 keyed submits, some tens of microseconds of fold. Larger batches (under load)
/// go to a blocking thread, where the hand-off is small next to the fold.
const INLINE_APPLY_BYTES_MAX: usize = 16 * 1024;

/// Entries `apply` leaves to a blocking thread, as far as they got on the runtime thread.
enum NotNow {
    /// Too large to fold inline; decoded on the blocking thread too.
    Large(Vec<Entry<TypeConfig>>),
    /// Decoded and prepared (ADR 0023), but the state was busy.
    Busy(Vec<(LogId<NodeId>, Ready)>),
}

fn prepare(entries: Vec<Entry<TypeConfig>>) -> Vec<(LogId<NodeId>, Ready)> {
    entries
        .into_iter()
        .map(|entry| (entry.log_id, Ready::of(entry.log_id.index, entry.payload)))
        .collect()
}

fn payload_bytes(entries: &[Entry<TypeConfig>]) -> usize {
    entries
        .iter()
        .map(|entry| match &entry.payload {
            EntryPayload::Normal(bytes) => bytes.0.len(),
            EntryPayload::Blank | EntryPayload::Membership(_) => 0,
        })
        .sum()
}

fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

fn snap_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

/// The newest snapshot file of a node, read offline (for `steward log replay` and `log diff`).
#[derive(Debug)]
pub struct SnapshotOnDisk {
    /// The file.
    pub path: PathBuf,
    /// The last log index it covers (0 when it covers nothing).
    pub last_index: u64,
    /// The term of that entry.
    pub last_term: u64,
    /// The state as of `last_index`.
    pub state: State,
}

/// Reads and checks the newest finished snapshot file in `snapshot_dir` without creating or
/// removing anything. `None` when the directory is missing or holds no finished snapshot.
pub fn read_latest_snapshot(snapshot_dir: &Path) -> Result<Option<SnapshotOnDisk>> {
    if !snapshot_dir.is_dir() {
        return Ok(None);
    }
    let Some((path, image)) = SnapshotDir::open_read_only(snapshot_dir).read_latest()? else {
        return Ok(None);
    };
    let origin = path.display().to_string();
    let body = decode_body(&image, &origin)?;
    let state = steward_statemachine::restore(body.state)
        .map_err(|e| Error::storage(format!("restore state from {origin}"), e))?;
    Ok(Some(SnapshotOnDisk {
        path,
        last_index: body.meta.last_log_id.map_or(0, |id| id.index),
        last_term: body.meta.last_log_id.map_or(0, |id| id.leader_id.term),
        state,
    }))
}

fn decode_body<'a>(image: &'a [u8], origin: &str) -> Result<SnapshotBody<'a>> {
    let body = snapshot_file::decode(image, origin)?;
    bincode::serde::borrow_decode_from_slice(body, bincode::config::standard())
        .map(|(body, _)| body)
        .map_err(|e| Error::storage(format!("decode snapshot body from {origin}"), e))
}

impl Shared {
    /// Runs `f` on the applied state under the read lock, on the calling thread: for blocking
    /// threads. Async code calls [`Shared::read_async`].
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock_read().state)
    }

    /// Runs `f` on the applied state without parking a runtime worker on the lock (ADR 0019).
    ///
    /// The lock is free nearly always, and `f` then runs here. It is not when `apply` holds it
    /// or waits for it, which it does for as long as a snapshot build encodes the state; a
    /// worker thread parked there stops every task it runs, the Raft core's heartbeats
    /// included, so `f` then waits on a blocking thread instead.
    pub async fn read_async<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&State) -> R + Send + 'static,
    ) -> Result<R> {
        match self.applied.try_read() {
            Ok(applied) => return Ok(f(&applied.state)),
            Err(TryLockError::Poisoned(poisoned)) => return Ok(f(&poisoned.into_inner().state)),
            Err(TryLockError::WouldBlock) => {}
        }
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || shared.read(f))
            .await
            .map_err(|e| Error::storage("read the applied state on a blocking thread", e))
    }

    fn lock_read(&self) -> RwLockReadGuard<'_, Applied> {
        // A poisoned lock means a fold panicked mid-way, which `apply` never does on any input
        // (it refuses instead); reads then see the state as the panic left it, and the node's
        // storage error stops openraft from applying more.
        self.applied
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes what the view lacks and asks sled to write its buffers (best effort: not a
    /// durable sync on Linux, ADR 0007).
    pub fn flush(&self) {
        if let Err(e) = self.write_unwritten() {
            tracing::warn!(error = %e, "writing the sled view failed");
        }
        if let Err(e) = self.view.flush() {
            tracing::warn!(error = %e, "flushing the sled view failed");
        }
    }

    /// The last index the sled view holds (it trails the applied index by the writes in
    /// flight, ADR 0016); 0 for an empty view.
    pub fn view_applied_index(&self) -> Result<u64> {
        let meta = self.view.load_meta()?;
        Ok(meta
            .and_then(|meta| meta.last_applied)
            .map_or(0, |id| id.index))
    }

    /// openraft's applied id, membership and removed ids.
    pub fn raft_meta(&self) -> RaftMeta {
        self.published().meta
    }

    /// The copy of the applied state's meta and counts made after the last applied batch;
    /// never waits for a snapshot build or an apply.
    pub fn published(&self) -> Published {
        self.published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn publish(&self, applied: &Applied) {
        *self
            .published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Published::of(applied);
    }

    /// Notified with the last applied index after every applied batch.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied_index.subscribe()
    }

    /// Applies `entries` on the calling runtime thread when that cannot block (ADR 0026): when
    /// they are small (a fold of at most `INLINE_APPLY_BYTES_MAX` of payload) and nobody holds
    /// the state (a reader, the view writer, a snapshot build). Otherwise gives them back for
    /// [`Shared::fold_blocking`].
    fn try_apply_now(&self, entries: Vec<Entry<TypeConfig>>) -> Result<Vec<ApplyResponse>, NotNow> {
        if payload_bytes(&entries) > INLINE_APPLY_BYTES_MAX {
            return Err(NotNow::Large(entries));
        }
        let entries = prepare(entries);
        match self.applied.try_write() {
            Ok(guard) => Ok(self.fold(guard, entries)),
            Err(TryLockError::Poisoned(poisoned)) => Ok(self.fold(poisoned.into_inner(), entries)),
            Err(TryLockError::WouldBlock) => Err(NotNow::Busy(entries)),
        }
    }

    /// Applies what `try_apply_now` declined, waiting for the state's lock: on a blocking
    /// thread.
    fn fold_blocking(&self, not_now: NotNow) -> Vec<ApplyResponse> {
        let entries = match not_now {
            NotNow::Large(entries) => prepare(entries),
            NotNow::Busy(entries) => entries,
        };
        let guard = self
            .applied
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.fold(guard, entries)
    }

    fn fold(
        &self,
        mut guard: RwLockWriteGuard<'_, Applied>,
        entries: Vec<(LogId<NodeId>, Ready)>,
    ) -> Vec<ApplyResponse> {
        let applied = &mut *guard;
        let mut touched = Touched::default();
        let mut responses = Vec::with_capacity(entries.len());
        for (log_id, ready) in entries {
            let index = log_id.index;
            applied.meta.last_applied = Some(log_id);
            let mut response = ApplyResponse {
                index,
                outcomes: Vec::new(),
            };
            match ready {
                Ready::Nothing => {}
                Ready::Proposal(mut prepared) => {
                    let report = steward_statemachine::apply_prepared(
                        &mut applied.state,
                        steward_statemachine::LogIndex(index),
                        &mut prepared,
                    );
                    merge(&mut touched, report.touched);
                    response.outcomes = report.outcomes;
                }
                Ready::Membership(membership) => {
                    let old = applied.meta.membership.membership();
                    let new_ids: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
                    let removed = old
                        .nodes()
                        .map(|(id, _)| *id)
                        .filter(|id| !new_ids.contains(id));
                    let removed: Vec<NodeId> = removed.collect();
                    applied.meta.removed_ids.extend(removed);
                    applied.meta.membership = StoredMembership::new(Some(log_id), membership);
                }
            }
            responses.push(response);
        }
        // The view is written behind, by the writer thread (ADR 0016); taken while the state is
        // still locked, so a writer that sees this state also sees these records.
        self.lock_unwritten().add(touched);
        let last = applied.meta.last_applied.map_or(0, |id| id.index);
        self.publish(applied);
        drop(guard);
        self.writer_signal.wake();
        self.applied_index.send_replace(last);
        responses
    }

    fn lock_unwritten(&self) -> MutexGuard<'_, Unwritten> {
        self.unwritten
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes every record changed since the last view write, with the meta of the state they
    /// were read from, in one sled batch. Lock order: `view_writes`, then the state, then
    /// `unwritten` (as `fold` and `install_blocking`).
    pub(crate) fn write_unwritten(&self) -> Result<()> {
        let _serial = self
            .view_writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (batch, touched) = {
            let applied = self.lock_read();
            let unwritten = std::mem::take(&mut *self.lock_unwritten());
            let touched = match unwritten.into_pending() {
                Pending::Nothing => return Ok(()),
                Pending::Records(touched) => touched,
                Pending::Everything => {
                    // Under the read lock for the whole rewrite: apply waits, reads and the Raft
                    // core do not (ADR 0018).
                    return self
                        .view
                        .replace_all(&applied.state, &applied.meta)
                        .inspect_err(|_| *self.lock_unwritten() = Unwritten::everything());
                }
            };
            match self
                .view
                .encode_applied(&applied.state, &touched, &applied.meta)
            {
                Ok(batch) => (batch, touched),
                Err(e) => {
                    self.lock_unwritten().add(touched);
                    return Err(e);
                }
            }
        };
        if let Err(e) = self.view.write(batch) {
            // Kept for the next attempt: the view's meta still names the older state.
            self.lock_unwritten().add(touched);
            return Err(e);
        }
        Ok(())
    }

    /// Builds a snapshot on the calling thread, which is one of its own (`in_background`):
    /// the records are frozen at the thread's normal priority, because `apply` waits for that
    /// part, and the thread then drops to the lowest priority to encode and write them.
    fn build_snapshot_blocking(&self) -> Result<Snapshot<TypeConfig>> {
        let started = Instant::now();
        // A view at or past the snapshot is what the restart path reads fastest (ADR 0015).
        if let Err(e) = self.write_unwritten() {
            tracing::warn!(error = %e, "writing the sled view before a snapshot failed");
        }
        let view_ms = millis_since(started);
        // The read lock is held only to freeze the records, which shares the jobs instead of
        // copying them: `apply` waits for it meanwhile, and every write's answer waits for
        // `apply` (ADR 0019, ADR 0020). Encoding, the body and the file image come after.
        let (meta, removed_ids, frozen, locked_ms) = {
            let applied = self.lock_read();
            let locked = Instant::now();
            let last = applied.meta.last_applied;
            let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
            let snapshot_id = match last {
                Some(id) => format!("{}-{}-{seq}", id.leader_id.term, id.index),
                None => format!("0-0-{seq}"),
            };
            let meta = SnapshotMeta {
                last_log_id: last,
                last_membership: applied.meta.membership.clone(),
                snapshot_id,
            };
            let frozen = applied.state.freeze();
            (
                meta,
                applied.meta.removed_ids.clone(),
                frozen,
                millis_since(locked),
            )
        };
        // Nobody waits for the rest: it competes for the cores with `apply`, the WAL and the
        // transport, whose latency every write sees (ADR 0020).
        background::lower_this_threads_priority("snapshot build");
        let encoding = Instant::now();
        let state = steward_statemachine::snapshot_frozen(&frozen)
            .map_err(|e| Error::storage("encode the state for a snapshot", e))?;
        drop(frozen);
        let body = SnapshotBody {
            meta: meta.clone(),
            removed_ids,
            state: &state,
        };
        let body = bincode::serde::encode_to_vec(&body, bincode::config::standard())
            .map_err(|e| Error::storage("encode snapshot body", e))?;
        drop(state);
        let image = snapshot_file::encode(&body);
        drop(body);
        let encode_ms = millis_since(encoding);
        let writing = Instant::now();
        let last_index = meta.last_log_id.map_or(0, |id| id.index);
        self.snapshots
            .write(last_index, &meta.snapshot_id, &image)?;
        tracing::info!(
            snapshot = %meta.snapshot_id,
            bytes = image.len(),
            view_ms,
            locked_ms,
            encode_ms,
            write_ms = millis_since(writing),
            elapsed_ms = millis_since(started),
            "snapshot built"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(image)),
        })
    }

    fn install_blocking(
        &self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        image: Vec<u8>,
    ) -> Result<()> {
        let body = decode_body(
            &image,
            &format!("snapshot {} from the leader", meta.snapshot_id),
        )?;
        if body.meta.last_log_id != meta.last_log_id {
            return Err(Error::storage(
                format!("install snapshot {}", meta.snapshot_id),
                format!(
                    "body covers {:?}, meta says {:?}",
                    body.meta.last_log_id, meta.last_log_id
                ),
            ));
        }
        let state = steward_statemachine::restore(body.state)
            .map_err(|e| Error::storage(format!("restore state from {}", meta.snapshot_id), e))?;
        let last_index = meta.last_log_id.map_or(0, |id| id.index);
        self.snapshots
            .write(last_index, &meta.snapshot_id, &image)?;
        let raft_meta = RaftMeta {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            removed_ids: body.removed_ids,
        };
        // The lock order of `write_unwritten`: no batch encoded from the old state may land
        // after the state is replaced.
        let _serial = self
            .view_writes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut applied = self
            .applied
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The view is rewritten by the writer thread, not here: openraft answers no vote until
        // the install returns (ADR 0018). Until the rewrite lands the view names its older
        // applied id, behind the snapshot file just written, and a restart restores from that
        // file (ADR 0007); a rewrite cut short leaves no format key and is redone (ADR 0017).
        *self.lock_unwritten() = Unwritten::everything();
        *applied = Applied {
            state,
            meta: raft_meta,
        };
        self.publish(&applied);
        drop(applied);
        self.applied_index.send_replace(last_index);
        self.writer_signal.wake();
        Ok(())
    }

    fn current_snapshot_blocking(&self) -> Result<Option<Snapshot<TypeConfig>>> {
        let opened = self
            .opened_image
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let latest = match opened {
            Some((path, image)) if self.snapshots.latest_path()?.as_ref() == Some(&path) => {
                Some((path, image))
            }
            _ => self.snapshots.read_latest()?,
        };
        let Some((path, image)) = latest else {
            return Ok(None);
        };
        let body = decode_body(&image, &path.display().to_string())?;
        Ok(Some(Snapshot {
            meta: body.meta,
            snapshot: Box::new(Cursor::new(image)),
        }))
    }
}

impl StateMachineStore {
    /// Opens the view in `sled_dir` and the snapshots in `snapshot_dir` and rebuilds the applied
    /// state (ADR 0007, ADR 0015): from the newest snapshot when the view is behind it (the view
    /// is then rewritten); else from that snapshot plus the entries of `wal` up to the one the
    /// view applied last; else (no `wal`, or it lacks those entries) by reading the whole view.
    pub fn open(
        sled_dir: &Path,
        snapshot_dir: &Path,
        wal: Option<WalReplay<'_>>,
    ) -> Result<StateMachineStore> {
        StateMachineStore::open_with(View::open_in_background(sled_dir)?, snapshot_dir, wal)
    }

    /// Starts opening the sled view in `sled_dir` on a thread of its own, for
    /// [`StateMachineStore::open_with`].
    pub fn open_view_in_background(sled_dir: &Path) -> Result<OpeningView> {
        View::open_in_background(sled_dir)
    }

    /// [`StateMachineStore::open`] with the view already being opened, so that the caller can
    /// open the WAL meanwhile (ADR 0023). The newest snapshot is read and restored while sled
    /// recovers; the restored state goes unused only when the view is empty (a first start) or
    /// nothing but the view can rebuild the state.
    pub fn open_with(
        opening: OpeningView,
        snapshot_dir: &Path,
        wal: Option<WalReplay<'_>>,
    ) -> Result<StateMachineStore> {
        let started = Instant::now();
        let snapshots = SnapshotDir::open(snapshot_dir)?;
        let latest = snapshots.read_latest()?;
        let snapshot = match &latest {
            Some((path, image)) => {
                let origin = path.display().to_string();
                let body = decode_body(image, &origin)?;
                let restored = steward_statemachine::restore(body.state)
                    .map_err(|e| Error::storage(format!("restore state from {origin}"), e));
                Some((body, restored))
            }
            None => None,
        };
        let (view, view_open) = opening.finish()?;
        let view_meta = view.load_meta()?;
        let view_applied = view_meta.as_ref().and_then(|meta| meta.last_applied);
        let snapshot_applied = snapshot
            .as_ref()
            .and_then(|(body, _)| body.meta.last_log_id);
        let mut replayed = 0;
        let (state, meta, source) = match (view_meta, snapshot) {
            (view_meta, Some((body, restored))) if snapshot_applied > view_applied => {
                tracing::info!(
                    ?snapshot_applied,
                    ?view_applied,
                    "the sled view is behind the snapshot; restoring from the snapshot"
                );
                let state = restored?;
                let meta = RaftMeta {
                    last_applied: body.meta.last_log_id,
                    membership: body.meta.last_membership,
                    removed_ids: body.removed_ids,
                };
                view.replace_all(&state, &meta)?;
                drop(view_meta);
                (state, meta, "snapshot")
            }
            (None, _) => {
                // Clears whatever an older layout left, and marks the view as this layout.
                let (state, meta) = (State::default(), RaftMeta::default());
                view.replace_all(&state, &meta)?;
                (state, meta, "empty")
            }
            (Some(view_meta), snapshot) => {
                let from_snapshot = snapshot.is_some();
                let folded = match (wal, view_applied) {
                    (Some(wal), Some(upto)) => {
                        let (base, after) = match snapshot {
                            Some((_, restored)) => {
                                (restored?, snapshot_applied.map_or(0, |id| id.index))
                            }
                            None => (State::default(), 0),
                        };
                        resume::fold_wal(base, wal, after, upto)?
                    }
                    (_, None) => Some(Folded {
                        state: State::default(),
                        entries: 0,
                    }),
                    (None, Some(_)) => None,
                };
                match folded {
                    Some(folded) => {
                        replayed = folded.entries;
                        let source = if from_snapshot {
                            "snapshot and WAL"
                        } else {
                            "WAL"
                        };
                        (folded.state, view_meta, source)
                    }
                    None => {
                        let (state, meta) = view.load()?.unwrap_or_default();
                        (state, meta, "sled view")
                    }
                }
            }
        };
        tracing::info!(
            source,
            applied = ?meta.last_applied,
            replayed_entries = replayed,
            jobs = state.parts().jobs().len(),
            view_open_ms = u64::try_from(view_open.as_millis()).unwrap_or(u64::MAX),
            elapsed_ms = millis_since(started),
            "state machine opened"
        );
        let last = meta.last_applied.map_or(0, |id| id.index);
        let (applied_index, _) = watch::channel(last);
        let writer_signal = Arc::new(WriterSignal::default());
        let applied = Applied { state, meta };
        let shared = Arc::new(Shared {
            published: Mutex::new(Published::of(&applied)),
            applied: RwLock::new(applied),
            view,
            snapshots,
            unwritten: Mutex::new(Unwritten::default()),
            view_writes: Mutex::new(()),
            writer_signal: writer_signal.clone(),
            opened_image: Mutex::new(latest),
            applied_index,
            snapshot_seq: AtomicU64::new(0),
        });
        view_writer::spawn(Arc::downgrade(&shared), writer_signal)?;
        Ok(StateMachineStore { shared })
    }

    /// The shared state, for the node's reads and waits.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(Error::storage("run a blocking state-machine task", e)),
    }
}

fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Runs `f` on a thread of its own, for a snapshot build: the build lowers the thread's
/// priority part-way (`background::lower_this_threads_priority`), and a pooled thread could not get its
/// priority back afterwards (raising it needs a privilege).
async fn in_background<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("snapshot-build".into())
        .spawn(move || {
            // The receiver is gone only if openraft dropped the build; nothing to tell then.
            let _ = sender.send(f());
        })
        .map_err(|e| Error::storage("start the snapshot-build thread", e))?;
    receiver
        .await
        .map_err(|e| Error::storage("wait for the snapshot-build thread", e))?
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    /// Correctness: the snapshot file is fdatasynced and its directory fsynced before this
    /// returns, so openraft's purge of the WAL that follows never outruns it.
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let shared = self.shared.clone();
        in_background(move || shared.build_snapshot_blocking())
            .await
            .map_err(snap_err)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, PeerNode>)> {
        let meta = self.shared.raft_meta();
        Ok((meta.last_applied, meta.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<ApplyResponse>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        match self.shared.try_apply_now(entries) {
            Ok(responses) => Ok(responses),
            Err(not_now) => {
                let shared = self.shared.clone();
                blocking(move || Ok(shared.fold_blocking(not_now)))
                    .await
                    .map_err(sm_err)
            }
        }
    }

    async fn get_snapshot_builder(&mut self) -> StateMachineStore {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Correctness: the received image is checked (magic, version, CRC) and written durably as
    /// this node's snapshot file before the view is replaced; openraft purges the WAL only after
    /// this returns.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeerNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StoreResult<()> {
        let shared = self.shared.clone();
        let meta = meta.clone();
        let image = snapshot.into_inner();
        blocking(move || shared.install_blocking(&meta, image))
            .await
            .map_err(snap_err)
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let shared = self.shared.clone();
        blocking(move || shared.current_snapshot_blocking())
            .await
            .map_err(snap_err)
    }
}
