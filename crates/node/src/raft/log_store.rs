//! openraft's `RaftLogStorage` over `steward-log`'s WAL. ADR 0007.
//!
//! Entries map one-to-one onto WAL records at the same index (kind 1 proposal, 2 blank,
//! 3 membership; docs/ARCHITECTURE.md). The vote and `last_purged_log_id` live together in the
//! WAL's durable vote blob, because the WAL purges whole segments only and older records may stay
//! readable after a purge. The newest entries are also kept in memory (`tail_cache`, ADR 0030)
//! so that openraft's reads of what was just appended skip the WAL. This module does not apply
//! entries or build snapshots.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, OptionalSend,
    RaftLogReader, StorageError, StorageIOError, Vote,
};
use serde::{Deserialize, Serialize};
use steward_log::{LogIndex, Record, TryWrite, Wal};

use crate::raft::flusher::Flusher;
use crate::raft::tail_cache::TailCache;
use crate::raft::{NodeId, PeerNode, ProposalBytes, TypeConfig};

/// WAL record kind of a normal entry (one encoded proposal).
pub const KIND_PROPOSAL: u8 = 1;
/// WAL record kind of a blank entry (leader no-op).
pub const KIND_BLANK: u8 = 2;
/// WAL record kind of a membership entry (bincode of openraft's `Membership`).
pub const KIND_MEMBERSHIP: u8 = 3;

/// Identifies the vote blob ("STVB").
const VOTE_BLOB_MAGIC: [u8; 4] = *b"STVB";
/// Version of the vote blob layout.
const VOTE_BLOB_VERSION: u16 = 1;

/// What the log store keeps in the WAL's vote blob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct VoteBlob {
    vote: Option<Vote<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl VoteBlob {
    // Layout: magic "STVB" | version u16 LE | bincode(VoteBlob). The WAL frames the blob with
    // its own length and CRC.
    fn encode(&self) -> Result<Vec<u8>, String> {
        let mut out = VOTE_BLOB_MAGIC.to_vec();
        out.extend_from_slice(&VOTE_BLOB_VERSION.to_le_bytes());
        let body =
            bincode::serde::encode_to_vec(self, bincode_config()).map_err(|e| e.to_string())?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The blob as a restarted node must see it: the vote keeps its term and candidate but is
    /// no longer committed, so openraft does not resume leadership after a restart (ADR 0014).
    /// A leader's own WAL may have lost entries a quorum of followers made durable (a power
    /// loss before its local sync finished); resuming its term with that shorter log would
    /// overwrite committed entries. The node earns leadership again by an election, which only
    /// a node holding every committed entry can win. Refusing another candidate in the same
    /// term still holds: an uncommitted vote for `L` is incomparable with one for `X`.
    fn without_leadership(mut self) -> VoteBlob {
        if let Some(vote) = self.vote.as_mut() {
            vote.committed = false;
        }
        self
    }

    fn decode(bytes: &[u8]) -> Result<VoteBlob, String> {
        if bytes.len() < 6 || bytes[..4] != VOTE_BLOB_MAGIC {
            return Err("vote blob: bad magic".into());
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != VOTE_BLOB_VERSION {
            return Err(format!("vote blob: unsupported version {version}"));
        }
        let (blob, _) = bincode::serde::decode_from_slice(&bytes[6..], bincode_config())
            .map_err(|e| format!("vote blob: {e}"))?;
        Ok(blob)
    }
}

/// openraft's log store over the WAL. Cheap to clone; clones share the WAL.
#[derive(Clone)]
pub struct LogStore {
    wal: Arc<Wal>,
    dir: PathBuf,
    /// Serializes read-modify-write of the vote blob (vote and purge point share it).
    blob: Arc<tokio::sync::Mutex<VoteBlob>>,
    /// The committed index openraft last reported, plus one (0 = unknown). In memory only:
    /// persisting it would cost a sync per commit, and the leader re-sends it after a restart.
    committed_plus_one: Arc<std::sync::atomic::AtomicU64>,
    /// Reports written batches to openraft once durable.
    flusher: Flusher,
    /// The newest entries written to the WAL, for reads that would otherwise go to it.
    tail: Arc<Mutex<TailCache>>,
}

type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn io_err(what: String, err: impl std::fmt::Display) -> AnyError {
    AnyError::error(format!("{what}: {err}"))
}

/// Runs a blocking WAL call off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(format!("blocking WAL task failed: {e}")),
    }
}

/// Completes a purge that a crash interrupted. `purge` saves the purge point before it deletes
/// segments, so a crash in between can leave a WAL that still ends below the purge point (a
/// follower that installed the leader's snapshot past its log's end). The next append starts
/// after the purge point, and the WAL, still expecting its old next index, refused it: the
/// node's Raft core stopped on a storage error (found by the harness, seed 118 of the first
/// soak). Purging again is idempotent: after a finished purge it changes nothing.
async fn finish_purge(wal: &Arc<Wal>, dir: &Path, purged_index: u64) -> crate::Result<()> {
    let wal = wal.clone();
    blocking(move || {
        wal.purge_before(LogIndex(purged_index + 1))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| {
        crate::Error::storage(
            format!(
                "finish the purge up to {purged_index} of the WAL in {}",
                dir.display()
            ),
            e,
        )
    })
}

/// Converts an openraft entry into a WAL record.
pub fn entry_to_record(entry: &Entry<TypeConfig>) -> Result<Record, String> {
    let (kind, payload) = match &entry.payload {
        EntryPayload::Normal(ProposalBytes(bytes)) => (KIND_PROPOSAL, bytes.clone()),
        EntryPayload::Blank => (KIND_BLANK, Bytes::new()),
        EntryPayload::Membership(m) => {
            let body = bincode::serde::encode_to_vec(m, bincode_config())
                .map_err(|e| format!("encode membership at {}: {e}", entry.log_id.index))?;
            (KIND_MEMBERSHIP, Bytes::from(body))
        }
    };
    Ok(Record {
        index: LogIndex(entry.log_id.index),
        term: entry.log_id.leader_id.term,
        kind,
        payload,
    })
}

/// A membership record's payload in one line, in openraft's form (voter sets with addresses,
/// then learners), for `steward log dump --decode`.
pub fn describe_membership(payload: &[u8]) -> Result<String, String> {
    let (membership, _): (Membership<NodeId, PeerNode>, _) =
        bincode::serde::decode_from_slice(payload, bincode_config())
            .map_err(|e| format!("decode membership: {e}"))?;
    Ok(membership.to_string())
}

/// Converts a WAL record back into an openraft entry.
pub fn record_to_entry(record: Record) -> Result<Entry<TypeConfig>, String> {
    let log_id = LogId::new(CommittedLeaderId::new(record.term, 0), record.index.0);
    let payload = match record.kind {
        KIND_PROPOSAL => EntryPayload::Normal(ProposalBytes(record.payload)),
        KIND_BLANK => EntryPayload::Blank,
        KIND_MEMBERSHIP => {
            let (m, _): (Membership<NodeId, PeerNode>, _) =
                bincode::serde::decode_from_slice(&record.payload, bincode_config())
                    .map_err(|e| format!("decode membership record {}: {e}", record.index.0))?;
            EntryPayload::Membership(m)
        }
        other => {
            return Err(format!(
                "record {} has unknown kind {other}",
                record.index.0
            ))
        }
    };
    Ok(Entry { log_id, payload })
}

impl LogStore {
    /// Wraps an open WAL; reads the vote blob.
    pub async fn new(wal: Arc<Wal>, dir: &Path) -> crate::Result<LogStore> {
        let reader = wal.clone();
        let what = format!("read the vote blob in {}", dir.display());
        let blob = blocking(move || match reader.read_vote() {
            Ok(Some(bytes)) => VoteBlob::decode(&bytes),
            Ok(None) => Ok(VoteBlob::default()),
            Err(e) => Err(e.to_string()),
        })
        .await
        .map_err(|e| crate::Error::storage(what, e))?;
        let blob = blob.without_leadership();
        if let Some(purged) = blob.last_purged {
            finish_purge(&wal, dir, purged.index).await?;
        }
        let flusher = Flusher::start(&wal)
            .map_err(|e| crate::Error::storage("start the WAL flusher thread", e))?;
        Ok(LogStore {
            wal,
            dir: dir.to_path_buf(),
            blob: Arc::new(tokio::sync::Mutex::new(blob)),
            committed_plus_one: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            flusher,
            tail: Arc::new(Mutex::new(TailCache::default())),
        })
    }

    /// The id of the last entry written to the WAL (or the purge point when none is left):
    /// what a pre-vote compares a candidate's log against (ADR 0018). An entry openraft has
    /// accepted but not yet handed to the WAL is not counted.
    pub async fn last_log_id(&self) -> StoreResult<Option<LogId<NodeId>>> {
        let last_purged = self.blob.lock().await.last_purged;
        self.last_log_id_above(last_purged).await
    }

    async fn last_log_id_above(
        &self,
        last_purged: Option<LogId<NodeId>>,
    ) -> StoreResult<Option<LogId<NodeId>>> {
        let last = match self.wal.last_index() {
            Some(LogIndex(index)) if last_purged.is_none_or(|p| index > p.index) => self
                .read_range(index, index + 1)
                .await?
                .pop()
                .map(|e| e.log_id),
            _ => None,
        };
        Ok(last.or(last_purged))
    }

    /// The highest index known committed, if openraft reported one since start.
    pub fn committed_index(&self) -> Option<u64> {
        self.committed_plus_one
            .load(std::sync::atomic::Ordering::Relaxed)
            .checked_sub(1)
    }

    /// The WAL's counters.
    pub fn wal_metrics(&self) -> steward_log::WalMetrics {
        self.wal.metrics()
    }

    /// The node the stored vote is for, if any: this node itself when it was a candidate or the
    /// leader in the last term it voted in.
    pub async fn voted_for(&self) -> Option<NodeId> {
        self.blob
            .lock()
            .await
            .vote
            .and_then(|vote| vote.leader_id().voted_for())
    }

    /// The highest purged log id (entries at or below it are gone for openraft).
    pub async fn last_purged(&self) -> Option<LogId<NodeId>> {
        self.blob.lock().await.last_purged
    }

    async fn save_blob(&self, blob: &VoteBlob) -> Result<(), String> {
        let bytes = blob.encode()?;
        let wal = self.wal.clone();
        blocking(move || wal.save_vote(&bytes).map_err(|e| e.to_string())).await
    }

    /// Waits until every written batch is durable and reported, so that truncate and purge
    /// never race the flusher over the same records.
    async fn settle(&self, what: &str) -> StoreResult<()> {
        self.flusher.barrier().await.map_err(|e| {
            let what = format!("{what} in {}", self.dir.display());
            StorageIOError::write_logs(io_err(what, e)).into()
        })
    }

    fn lock_tail(&self) -> MutexGuard<'_, TailCache> {
        // Every update leaves the cache consistent, so a panic elsewhere cannot poison it into
        // a wrong answer.
        self.tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn read_range(&self, start: u64, end: u64) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let floor = self
            .blob
            .lock()
            .await
            .last_purged
            .map_or(0, |id| id.index + 1);
        let start = start.max(floor);
        if start >= end {
            return Ok(Vec::new());
        }
        if let Some(entries) = self.lock_tail().range(start, end) {
            return Ok(entries);
        }
        let wal = self.wal.clone();
        let dir = self.dir.clone();
        let read = blocking(move || {
            let records = wal.range(start..end).map_err(|e| e.to_string())?;
            records
                .into_iter()
                .map(record_to_entry)
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
        read.map_err(|e| {
            let what = format!(
                "read entries {start}..{end} from the WAL in {}",
                dir.display()
            );
            StorageIOError::read_logs(io_err(what, e)).into()
        })
    }
}

fn range_bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let (start, end) = range_bounds(&range);
        self.read_range(start, end).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let last_purged = self.blob.lock().await.last_purged;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: self.last_log_id_above(last_purged).await?,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    /// Correctness: durable on return (the WAL blob is fsynced and renamed into place).
    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        let mut blob = self.blob.lock().await;
        let next = VoteBlob {
            vote: Some(*vote),
            ..blob.clone()
        };
        self.save_blob(&next).await.map_err(|e| {
            let what = format!("save the vote in {}", self.dir.display());
            StorageIOError::write_vote(io_err(what, e))
        })?;
        *blob = next;
        Ok(())
    }

    /// Records the commit index in memory only (see `committed_plus_one`).
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        let value = committed.map_or(0, |id| id.index + 1);
        self.committed_plus_one
            .store(value, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        Ok(self.blob.lock().await.vote)
    }

    /// Correctness: the entries are written (readable) before this returns; `callback` fires
    /// only after an `fdatasync` covers them (the flusher thread, WAL group commit), so openraft
    /// never counts an entry as flushed before it is durable. A crash in between leaves a prefix
    /// of the written batches, none of which openraft counted as flushed.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Entries at or below the purge point are committed and covered by a snapshot, so
        // they are dropped rather than rewritten (the WAL continues after the purge point).
        // openraft itself never sends them; its storage suite does.
        let floor = self
            .blob
            .lock()
            .await
            .last_purged
            .map_or(0, |id| id.index + 1);
        let entries: Vec<Entry<TypeConfig>> = entries
            .into_iter()
            .filter(|e| e.log_id.index >= floor)
            .collect();
        let records = entries
            .iter()
            .map(entry_to_record)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StorageIOError::write_logs(AnyError::error(e)))?;
        let (first, count) = (records.first().map(|r| r.index.0), records.len());
        // Nearly always a copy into the WAL's write buffer, done here; on a blocking thread
        // only when it could wait (a reader holds the log, or the segment rolls).
        let written = match self.wal.try_write(records) {
            TryWrite::Done(written) => written.map_err(|e| e.to_string()),
            TryWrite::WouldBlock(records) => {
                let wal = self.wal.clone();
                blocking(move || wal.write(records).map_err(|e| e.to_string())).await
            }
        };
        match written {
            Ok(ticket) => {
                // Before the flush is requested: openraft may read an entry as soon as it is
                // reported flushed, and should find it here.
                self.lock_tail().appended(entries);
                self.flusher.flush(ticket, callback);
                Ok(())
            }
            Err(e) => {
                let what = format!(
                    "append {count} entries from {first:?} to the WAL in {}",
                    self.dir.display()
                );
                callback.log_io_completed(Err(std::io::Error::other(format!("{what}: {e}"))));
                Err(StorageIOError::write_logs(io_err(what, e)).into())
            }
        }
    }

    /// Removes entries at and after `log_id`. Truncating at or below the first index clears the
    /// log; that never happens in a running cluster (those entries are committed) but the
    /// openraft suite exercises it.
    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.settle("wait for pending syncs before truncating")
            .await?;
        let wal = self.wal.clone();
        let index = log_id.index;
        // First, so that no read is answered from entries the WAL no longer holds.
        self.lock_tail().truncate_from(index);
        let result = blocking(move || {
            let first = wal.first_index().map_or(u64::MAX, |i| i.0);
            let outcome = if index == 0 || index <= first {
                match wal.last_index() {
                    Some(last) => wal.purge_before(LogIndex(last.0 + 1)),
                    None => Ok(()),
                }
            } else {
                wal.truncate_after(LogIndex(index - 1))
            };
            outcome.map_err(|e| e.to_string())
        })
        .await;
        result.map_err(|e| {
            let what = format!("truncate the WAL in {} from {index}", self.dir.display());
            StorageIOError::write_logs(io_err(what, e)).into()
        })
    }

    /// Correctness: the purge point is saved durably first, then whole segments below it are
    /// deleted; a crash in between leaves extra readable records that `last_purged` hides.
    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        self.settle("wait for pending syncs before purging").await?;
        let mut blob = self.blob.lock().await;
        if blob.last_purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        let next = VoteBlob {
            last_purged: Some(log_id),
            ..blob.clone()
        };
        let what = format!(
            "purge the WAL in {} up to {}",
            self.dir.display(),
            log_id.index
        );
        self.save_blob(&next)
            .await
            .map_err(|e| StorageIOError::write_logs(io_err(what.clone(), e)))?;
        *blob = next;
        drop(blob);
        self.lock_tail().purge_through(log_id.index);
        let wal = self.wal.clone();
        let result = blocking(move || {
            wal.purge_before(LogIndex(log_id.index + 1))
                .map_err(|e| e.to_string())
        })
        .await;
        result.map_err(|e| StorageIOError::write_logs(io_err(what, e)).into())
    }
}
