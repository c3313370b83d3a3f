//! The crate's error type. Decoding errors are returned to the caller of `wire::decode`; the
//! state machine itself never fails on input: it drops and counts what it cannot use.

use thiserror::Error;

/// Everything that can go wrong in this crate.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The packet is shorter than the fixed header. Nothing was changed.
    #[error("packet of {len} bytes is shorter than the {header} byte header")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes the header needs.
        header: usize,
    },
    /// The first bytes are not the membership magic: another protocol on this port.
    #[error("bad magic {found:02x?} at offset 0 (expected {expected:02x?})")]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
        /// The magic this crate speaks.
        expected: [u8; 4],
    },
    /// The peer speaks another version of the protocol. Nothing was changed.
    #[error("membership protocol version {found} at offset 4 is not supported (this node speaks {supported})")]
    UnsupportedVersion {
        /// The version found in the header.
        found: u8,
        /// The version this crate speaks.
        supported: u8,
    },
    /// The body after the header did not decode. Nothing was changed.
    #[error("malformed packet body at offset {offset}: {reason}")]
    Malformed {
        /// Offset of the body in the packet.
        offset: usize,
        /// What the decoder said.
        reason: String,
    },
    /// The packet is larger than the configured maximum.
    #[error("packet of {len} bytes exceeds the {max} byte limit")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// A configuration field is out of range; the caller must fix the config.
    #[error("invalid membership config field `{field}`: {reason}")]
    InvalidConfig {
        /// Field name.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
}

/// Result with this crate's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
