//! Rebuilding the applied state at startup from the newest snapshot and the WAL, up to the entry
//! the sled view says it applied (ADR 0015).
//!
//! Reading a million records back out of sled costs seconds; restoring a snapshot image and
//! folding the WAL entries after it costs a fraction of that, and gives the same state because
//! `apply` is deterministic. The view already holds that state and is left untouched. When the
//! WAL does not hold exactly the committed entries needed (a power loss tore entries the view
//! kept, or the log was purged past the snapshot), this says so and the caller reads the view.

use openraft::LogId;
use steward_log::Wal;
use steward_statemachine::State;

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
    let mut state = state;
    let mut entries = 0u64;
    for record in wal.iter(first_needed..upto.index + 1) {
        let record = record.map_err(|e| Error::storage(origin(), e))?;
        if record.index.0 != first_needed + entries {
            return Ok(None);
        }
        entries += 1;
        if record.kind != KIND_PROPOSAL {
            continue;
        }
        // Exactly what `apply_blocking` did with this entry: an undecodable proposal was
        // skipped there too, on every replica.
        match steward_statemachine::decode_proposal(&record.payload) {
            Ok(proposal) => {
                steward_statemachine::apply(
                    &mut state,
                    steward_statemachine::LogIndex(record.index.0),
                    &proposal,
                );
            }
            Err(e) => tracing::error!(index = record.index.0, error = %e, "undecodable proposal"),
        }
    }
    if entries != upto.index - after {
        return Ok(None);
    }
    Ok(Some(Folded { state, entries }))
}
