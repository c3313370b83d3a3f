//! The unit the log stores: an opaque payload tagged with a log index, a term and a kind byte.
//! The log never interprets `kind` or `payload`.

use std::fmt;

use bytes::Bytes;

/// A position in the log. Indices are contiguous: record `n + 1` follows record `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogIndex(pub u64);

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Delegate so width and alignment flags apply (`{:>10}` in tables).
        fmt::Display::fmt(&self.0, f)
    }
}

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its position in the log.
    pub index: LogIndex,
    /// The Raft term it was proposed in (opaque to the log).
    pub term: u64,
    /// A caller-defined kind byte (the node uses 1 = event, 2 = blank, 3 = membership).
    pub kind: u8,
    /// The opaque payload.
    pub payload: Bytes,
}

impl Record {
    /// Convenience constructor.
    pub fn new(index: u64, term: u64, kind: u8, payload: impl Into<Bytes>) -> Self {
        Record {
            index: LogIndex(index),
            term,
            kind,
            payload: payload.into(),
        }
    }
}
