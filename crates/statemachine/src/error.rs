//! Errors of the state machine crate: decoding proposals and snapshots, rebuilding a state from
//! records, and configuration. Refusals of commands and events are not errors: they are
//! [`crate::Rejection`]s.

/// What went wrong; every variant says what was being read and where. None of them changed any
/// state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes do not start with the expected magic.
    #[error("{what}: bad magic {found:?}")]
    BadMagic {
        /// Proposal or snapshot.
        what: &'static str,
        /// The first four bytes found.
        found: [u8; 4],
    },
    /// Written by a version this build cannot read.
    #[error("{what}: unsupported version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// Proposal or snapshot.
        what: &'static str,
        /// Version found.
        found: u16,
        /// Version supported.
        supported: u16,
    },
    /// Too short to hold a header.
    #[error("{what}: truncated at {len} bytes")]
    Truncated {
        /// Proposal or snapshot.
        what: &'static str,
        /// Bytes present.
        len: usize,
    },
    /// Larger than the decoder accepts.
    #[error("{what}: {len} bytes exceed the maximum of {max}")]
    TooLarge {
        /// Proposal or snapshot.
        what: &'static str,
        /// Bytes present.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The body does not decode.
    #[error("{what}: cannot decode: {source}")]
    Decode {
        /// Proposal or snapshot.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: bincode::error::DecodeError,
    },
    /// Bytes left after the body.
    #[error("{what}: trailing bytes at offset {offset}")]
    TrailingBytes {
        /// Proposal or snapshot.
        what: &'static str,
        /// Offset of the first unread byte.
        offset: usize,
    },
    /// Encoding failed (a broken invariant of our own types).
    #[error("{what}: cannot encode: {source}")]
    Encode {
        /// Proposal or snapshot.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: bincode::error::EncodeError,
    },
    /// Records contradict each other (duplicate ids, dangling references).
    #[error("inconsistent records: {what}")]
    InconsistentRecords {
        /// What is inconsistent.
        what: String,
    },
    /// A configuration value is below its minimum.
    #[error("invalid config {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
