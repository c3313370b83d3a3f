//! Rebuilding the applied state at startup from the newest snapshot and the WAL, up to the entry
//! the sled view says it applied (ADR 0015).
//!
//! Reading a million records back out of sled costs seconds; restoring a snapshot image and
//! folding the WAL entries after it costs a fraction of that, and gives the same state because
//! `apply` is deterministic. The view already holds that state and is left untouched. When the
//! WAL does not hold exactly the committed entries needed (a power loss tore entries the view
//! kept, or the log was purged past the snapshot), this says so and the caller reads the view.
//!
//! Two threads share the fold (ADR 0023): a reader reads the WAL, decodes each proposal and
//! does the work `apply` would do from a submit's spec alone; the caller's thread only applies.

use std::sync::mpsc;

use openraft::LogId;
use steward_log::Wal;
use steward_statemachine::{Prepared, State};

use crate::error::{Error, Result};
use crate::raft::log_store::KIND_PROPOSAL;
use crate::raft::NodeId;

/// The WAL as the state machine may replay it at startup.
#[derive(Clone, Copy)]
pub struct WalReplay<'a> {
    /// The opened log.
    pub wal: &'a Wal,
    /// Entries at or below this index are purged (0 when none): the log store hides them, and
    /// whatever of them is still readable in a whole segment may predate a snapshot install.
    pub purged_index: u64,
}

/// What [`fold_wal`] did.
pub struct Folded {
    /// The state after the last folded entry.
    pub state: State,
    /// Entries read from the WAL (proposals, blanks and membership changes).
    pub entries: u64,
}

/// Folds the proposals of entries `after + 1 ..= upto.index` into `state`, which must be the
/// state as of entry `after`. `None` when the WAL does not hold every one of those entries, or
/// holds a different entry at `upto` (the caller then reads the view instead).
///
/// Correctness: `upto` was applied, hence committed; a WAL record with its index and term is
/// that entry, and by Raft's log matching every record before it is the committed entry too.
/// Records at or below the purge point are never used.
pub fn fold_wal(
    state: State,
    replay: WalReplay<'_>,
    after: u64,
    upto: LogId<NodeId>,
) -> Result<Option<Folded>> {
    let wal = replay.wal;
    let origin = || format!("replay the WAL up to entry {}", upto.index);
    if upto.index <= after {
        return Ok(Some(Folded { state, entries: 0 }));
    }
    let first_needed = after + 1;
    let covered = wal
        .first_index()
        .is_some_and(|first| first.0 <= first_needed)
        && wal.last_index().is_some_and(|last| last.0 >= upto.index)
        && after >= replay.purged_index;
    if !covered {
        return Ok(None);
    }
    match wal.read(steward_log::LogIndex(upto.index)) {
        Ok(Some(record)) if record.term == upto.leader_id.term => {}
        Ok(_) => return Ok(None),
        Err(e) => return Err(Error::storage(origin(), e)),
    }
    let (sender, receiver) = mpsc::sync_channel::<Read>(READ_AHEAD_ENTRIES);
    let (give_back, spent) = mpsc::channel::<Prepared>();
    let mut state = state;
    let (read, applied) = std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("wal-replay".to_owned())
            .spawn_scoped(scope, move || {
                read_ahead(wal, first_needed, upto.index, &sender, &spent)
            })
            .map_err(|e| Error::storage(origin(), e))?;
        let mut applied = 0u64;
        for read in receiver {
            if let Some(mut prepared) = read.prepared {
                // The view already holds these entries: nothing to list for it.
                steward_statemachine::replay_prepared(
                    &mut state,
                    steward_statemachine::LogIndex(read.index),
                    &mut prepared,
                );
                // Freed by the reader that allocated it; once the reader is done, here.
                let _ = give_back.send(prepared);
            }
            applied += 1;
        }
        Ok::<_, Error>((reader.join(), applied))
    })?;
    match read {
        Ok(Ok(ReadEnd::Whole)) if applied == upto.index - after => {}
        Ok(Ok(_)) => return Ok(None),
        Ok(Err(e)) => return Err(Error::storage(origin(), e)),
        Err(_) => return Err(Error::storage(origin(), "the WAL reader thread panicked")),
    }
    Ok(Some(Folded {
        state,
        entries: applied,
    }))
}

/// Entries read and prepared ahead of the fold: enough to keep both threads busy, few enough
/// that a slow fold does not hold many decoded proposals.
const READ_AHEAD_ENTRIES: usize = 256;

/// One WAL entry, read and made ready for `apply`.
struct Read {
    index: u64,
    /// `None` for an entry that is not a proposal (a blank, a membership change) or that does
    /// not decode.
    prepared: Option<Prepared>,
}

/// How [`read_ahead`] ended.
enum ReadEnd {
    /// Every entry was read and handed over.
    Whole,
    /// An entry was missing, or the fold stopped listening.
    Short,
}

/// Reads entries `first..=last`, decodes and prepares each proposal and hands them over in
/// order (ADR 0023), and drops the proposals the fold has applied (`spent`): the fold's own
/// thread then only applies.
fn read_ahead(
    wal: &Wal,
    first: u64,
    last: u64,
    sender: &mpsc::SyncSender<Read>,
    spent: &mpsc::Receiver<Prepared>,
) -> steward_log::Result<ReadEnd> {
    for (expected, record) in (first..).zip(wal.iter(first..last + 1)) {
        spent.try_iter().for_each(drop);
        let record = record?;
        if record.index.0 != expected {
            return Ok(ReadEnd::Short);
        }
        let prepared = (record.kind == KIND_PROPOSAL)
            .then(|| {
                // Exactly what `apply` did with this entry: an undecodable proposal
                // was skipped there too, on every replica.
                Prepared::decode(&record.payload)
                    .inspect_err(|e| {
                        tracing::error!(index = record.index.0, error = %e, "undecodable proposal");
                    })
                    .ok()
            })
            .flatten();
        let read = Read {
            index: record.index.0,
            prepared,
        };
        if sender.send(read).is_err() {
            return Ok(ReadEnd::Short);
        }
    }
    Ok(ReadEnd::Whole)
}
