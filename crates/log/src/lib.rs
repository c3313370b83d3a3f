//! steward's segmented write-ahead log: CRC-framed records, group commit, torn-tail recovery.
//!
//! A [`Wal`] stores [`Record`]s (index, term, kind byte, opaque payload) in segment files named
//! by their first index, preallocated and appended to with one write per batch. Concurrent
//! appenders share one `fdatasync` (group commit); `append` returns once the batch is durable
//! under the [`SyncPolicy`]. `open` rebuilds the index, cuts a torn tail and reports it in a
//! [`RecoveryReport`]; damage that a crash cannot explain is [`Error::Corruption`] unless the
//! log is opened with [`RecoveryMode::Repair`]. The offline functions ([`scan_dir`],
//! [`read_dir_records`], [`repair_dir`]) serve `steward log …`. The log knows nothing of Raft,
//! jobs or tokio; every method blocks.
//!
//! Layout: `format` (byte layout and constants), `fs` (the file-system trait and the real
//! implementation), `scan` (classifying a segment's bytes), `dir` (reading a directory),
//! `recovery` (what `open` does), `segment` (one open segment), `spare` (the next segment,
//! prepared in the background), `wal` (append), `commit` (group commit),
//! `read`, `maintenance` (truncate and purge), `vote`, `metrics`, `offline`, and `testing`
//! (a fault-injecting file system). The format is described in `docs/format.md` and ADR 0002.
#![deny(missing_docs)]

mod commit;
mod dir;
mod error;
pub mod format;
pub mod fs;
mod maintenance;
mod metrics;
mod offline;
mod options;
mod read;
mod record;
mod recovery;
mod scan;
mod segment;
mod spare;
mod stream_scan;
pub mod testing;
mod vote;
mod wal;

pub use error::{Error, Result};
pub use metrics::{LatencyHistogram, WalMetrics};
pub use offline::{
    read_dir_records, repair_dir, scan_dir, scan_dir_with_progress, DirRecord, DirRecords,
    DirReport, LogProblem, ProblemKind, SegmentInfo, SegmentState, VoteState,
};
pub use options::{
    RecoveryMode, SyncPolicy, WalOptions, SEGMENT_BYTES_MAX_DEFAULT, SEGMENT_BYTES_MAX_MAX,
    SEGMENT_BYTES_MAX_MIN,
};
pub use read::{Iter, ITER_CHUNK_RECORDS};
pub use record::{LogIndex, Record};
pub use recovery::{RecoveryReport, RepairAction, RepairReport, TornTailCut};
pub use wal::{TryWrite, Wal, WriteTicket};
