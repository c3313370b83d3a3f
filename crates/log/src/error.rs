//! The log's error type. Every variant names what failed and where; none of them is a panic.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A segment or the vote file failed validation at a place where a torn tail is impossible
    /// (a bad record followed by a valid one, a damaged sealed segment, a gap between segments).
    /// Nothing was changed on disk; open the log with `RecoveryMode::Repair` (or run
    /// `steward log repair`) to copy the damaged file aside and cut the log there.
    #[error("corruption in {} at offset {offset}: {reason}", segment.display())]
    Corruption {
        /// The damaged file.
        segment: PathBuf,
        /// Byte offset of the first bad byte range inside `segment`.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A file-system call failed. For `append`, `truncate_after` and `purge_before` the log is
    /// poisoned afterwards (see [`Error::Poisoned`]); for reads nothing changed.
    #[error("I/O error: {op} {}: {source}", path.display())]
    Io {
        /// The operation, as a verb phrase ("write segment", "fdatasync").
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An appended batch does not continue the log (or is not contiguous itself). Nothing was
    /// written.
    #[error("records not contiguous: expected index {expected}, got {got}")]
    NotContiguous {
        /// The index the record should have had.
        expected: u64,
        /// The index it had.
        got: u64,
    },
    /// A record payload is larger than `RECORD_PAYLOAD_BYTES_MAX`. Nothing was written.
    #[error("record {index}: payload of {payload_bytes} bytes exceeds the limit of {limit_bytes}")]
    RecordTooLarge {
        /// Index of the offending record.
        index: u64,
        /// Its payload size.
        payload_bytes: u64,
        /// The limit.
        limit_bytes: u64,
    },
    /// `truncate_after` was asked to cut below the first record still in the log (those records
    /// were purged). Nothing changed.
    #[error("cannot truncate after index {index}: the log starts at index {first}")]
    TruncateBeforeFirst {
        /// The requested index.
        index: u64,
        /// The first index present.
        first: u64,
    },
    /// The vote is larger than `VOTE_BYTES_MAX`. Nothing changed.
    #[error("vote of {vote_bytes} bytes exceeds the limit of {limit_bytes}")]
    VoteTooLarge {
        /// Size of the vote passed in.
        vote_bytes: u64,
        /// The limit.
        limit_bytes: u64,
    },
    /// Another `Wal` (in this or another process) has the directory open. Nothing changed.
    #[error("log directory {} is in use by another process or handle", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A `WalOptions` field is out of range. Nothing was opened.
    #[error("invalid option {field}: {reason}")]
    InvalidOption {
        /// The field name.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// An earlier write, sync or truncation failed, so the state of the active segment on disk is
    /// unknown (after a failed `fdatasync` the page cache may have dropped the data). Every later
    /// mutating call fails with this error; reopen the log to recover from what is on disk.
    #[error("log poisoned by an earlier failure ({reason}); reopen to recover")]
    Poisoned {
        /// The first failure.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corruption(
        segment: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corruption {
            segment: segment.into(),
            offset,
            reason: reason.into(),
        }
    }
}
