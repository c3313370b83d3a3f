//! Where `log replay` and `log diff` read from, and how they fold: a WAL directory or a node
//! data directory (`wal/` and `snapshots/` below it, as `steward-node` lays them out), the
//! state to start from (empty when the WAL is whole, else the newest durable snapshot)
//! and a folder that feeds records through `steward_statemachine::Replayer`.
//!
//! Read-only: nothing here creates, removes or repairs files. The WAL may hold entries past the
//! cluster's commit point (the commit index is not persisted); they are folded like the rest.

use std::iter::Peekable;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use steward_log::{read_dir_records, DirRecord, DirRecords};
use steward_node::raft::state_machine::read_latest_snapshot;
use steward_statemachine::{LogIndex, Prepared, Replayer, State, StateConfig, StopAt};

use super::decode::{decode, Decoded};

/// A replica's files.
#[derive(Debug)]
pub(super) struct Source {
    /// The WAL directory.
    pub wal_dir: PathBuf,
    /// The snapshot directory, when the WAL sits in a node data directory.
    pub snapshot_dir: Option<PathBuf>,
}

impl Source {
    /// Accepts a node data directory (with `wal/`) or a WAL directory itself.
    pub fn locate(dir: &Path) -> anyhow::Result<Source> {
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        let (wal_dir, data_dir) = if dir.join("wal").is_dir() {
            (dir.join("wal"), Some(dir.to_path_buf()))
        } else {
            let parent = dir.parent().filter(|_| dir.ends_with("wal"));
            (dir.to_path_buf(), parent.map(Path::to_path_buf))
        };
        let snapshot_dir = data_dir
            .map(|data| data.join("snapshots"))
            .filter(|snapshots| snapshots.is_dir());
        Ok(Source {
            wal_dir,
            snapshot_dir,
        })
    }

    /// The WAL's records in index order, with a look at the next one.
    pub fn records(&self) -> anyhow::Result<Peekable<DirRecords>> {
        let records = read_dir_records(&self.wal_dir, 0..u64::MAX)
            .with_context(|| format!("cannot read log directory {}", self.wal_dir.display()))?;
        Ok(records.peekable())
    }
}

/// The state folding starts from.
#[derive(Debug)]
pub(super) struct Start {
    /// The state.
    pub state: State,
    /// Entries up to this index are already in `state` (0: none).
    pub index: u64,
    /// The snapshot file it came from, if any.
    pub snapshot: Option<PathBuf>,
}

/// Picks the start: empty when the WAL begins at index 0 or 1 (or there is nothing at all), else
/// the newest snapshot, which must reach the WAL's first index. `full_history` keeps every
/// timeline entry of an empty start (the state hash then differs from the cluster's).
pub(super) fn start(
    source: &Source,
    first_wal_index: Option<u64>,
    full_history: bool,
) -> anyhow::Result<Start> {
    let empty = || -> anyhow::Result<Start> {
        let config = StateConfig::default();
        let config = if full_history {
            config.with_full_history()
        } else {
            config
        };
        Ok(Start {
            state: State::new(config)?,
            index: 0,
            snapshot: None,
        })
    };
    // openraft writes the initial membership at index 0; a log that begins at 0 or 1 is whole.
    if matches!(first_wal_index, Some(0 | 1)) {
        return empty();
    }
    let snapshot = match &source.snapshot_dir {
        Some(dir) => read_latest_snapshot(dir)
            .with_context(|| format!("cannot read the snapshot in {}", dir.display()))?,
        None => None,
    };
    match (first_wal_index, snapshot) {
        (None, None) => empty(),
        (Some(first), Some(snapshot)) if snapshot.last_index + 1 < first => bail!(
            "{} starts at index {first} and the newest snapshot {} ends at {}: entries {}..={} \
             are missing",
            source.wal_dir.display(),
            snapshot.path.display(),
            snapshot.last_index,
            snapshot.last_index + 1,
            first - 1
        ),
        (_, Some(snapshot)) => Ok(Start {
            state: snapshot.state,
            index: snapshot.last_index,
            snapshot: Some(snapshot.path),
        }),
        (Some(first), None) => bail!(
            "{} starts at index {first} (purged) and no snapshot was found{}; pass the node's \
             data directory so the snapshot in its snapshots/ can be used",
            source.wal_dir.display(),
            source
                .snapshot_dir
                .as_ref()
                .map(|dir| format!(" in {}", dir.display()))
                .unwrap_or_default()
        ),
    }
}

/// What a fold went through.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FoldStats {
    /// Proposal entries applied.
    pub proposals: u64,
    /// Events in them.
    pub events: u64,
    /// Blank entries passed.
    pub blanks: u64,
    /// Membership entries passed.
    pub memberships: u64,
    /// Entries that did not decode (skipped, as the node skips them).
    pub undecodable: u64,
    /// The first of those.
    pub first_undecodable: Option<u64>,
    /// The last index folded (any kind), or the start's index.
    pub last_index: u64,
}

/// A record made ready to fold: decoded, and a proposal's spec-only work done (ADR 0023), by
/// whichever thread reads the log.
pub(super) enum Ready {
    /// A proposal, prepared.
    Proposal(Prepared),
    /// A leader's no-op entry.
    Blank,
    /// A membership change.
    Membership,
    /// A payload that does not decode, or an unknown kind (skipped, as the node skips it).
    Undecodable,
}

impl Ready {
    /// Decodes `record` and prepares its proposal.
    pub fn of(record: &DirRecord) -> Ready {
        match decode(record) {
            Decoded::Proposal(proposal) => Ready::Proposal(Prepared::new(proposal)),
            Decoded::Blank => Ready::Blank,
            Decoded::Membership(_) => Ready::Membership,
            Decoded::Undecodable(_) => Ready::Undecodable,
        }
    }
}

/// Feeds records to a [`Replayer`] until the stop point.
#[derive(Debug)]
pub(super) struct Folder {
    replayer: Replayer,
    stop: StopAt,
    start_index: u64,
    stats: FoldStats,
}

impl Folder {
    /// Starts folding from `start`.
    pub fn new(start: Start, stop: StopAt) -> Folder {
        let stats = FoldStats {
            last_index: start.index,
            ..FoldStats::default()
        };
        Folder {
            replayer: Replayer::new(start.state, stop),
            stop,
            start_index: start.index,
            stats,
        }
    }

    /// Folds `record` unless it is already in the start state; false once past the stop point
    /// (this record is then not folded).
    pub fn feed(&mut self, record: &DirRecord) -> bool {
        let index = record.index.0;
        if index <= self.start_index {
            return true;
        }
        self.feed_ready(index, Ready::of(record))
    }

    /// [`Folder::feed`] for the record at `index`, already made ready. A record at or before
    /// the start state's index need not be made ready: it is not folded.
    pub fn feed_ready(&mut self, index: u64, ready: Ready) -> bool {
        if index <= self.start_index {
            return true;
        }
        if matches!(self.stop, StopAt::Index(LogIndex(last)) if index > last)
            || self.replayer.is_stopped()
        {
            return false;
        }
        match ready {
            Ready::Proposal(mut prepared) => {
                let events = prepared.proposal().events.len() as u64;
                if self
                    .replayer
                    .feed_prepared(LogIndex(index), &mut prepared)
                    .is_none()
                {
                    return false;
                }
                self.stats.proposals += 1;
                self.stats.events += events;
            }
            Ready::Blank => self.stats.blanks += 1,
            Ready::Membership => self.stats.memberships += 1,
            Ready::Undecodable => {
                self.stats.undecodable += 1;
                self.stats.first_undecodable.get_or_insert(index);
            }
        }
        self.stats.last_index = index;
        true
    }

    /// The counts so far.
    pub fn stats(&self) -> FoldStats {
        self.stats
    }

    /// The replayer (state and fences).
    pub fn replayer(&self) -> &Replayer {
        &self.replayer
    }
}
