//! The Raft transport's frame: a fixed header (magic, version, kind, request id, body length)
//! followed by a bincode body. ADR 0008.
//!
//! This module only encodes and checks frames; it does not own sockets or decide what to do
//! with a refused frame (the connection code counts it and closes or answers).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Identifies a steward Raft transport frame ("STRP").
pub const FRAME_MAGIC: [u8; 4] = *b"STRP";
/// The protocol version this build speaks. A frame with another version is refused.
pub const PROTOCOL_VERSION: u16 = 1;
/// Header length in bytes.
pub const HEADER_BYTES: usize = 20;
/// Largest accepted body. Snapshot chunks (openraft default 3 MiB) and append batches fit well
/// below it; anything larger is refused before allocating. Default: 64 MiB.
pub const FRAME_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

const _: () = assert!(FRAME_BODY_BYTES_MAX <= u32::MAX as usize);

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A request; the body is a `RaftRpc`.
    Request = 1,
    /// The answer to the request with the same id; the body is a `RaftReply`.
    Response = 2,
    /// The peer refused the connection (e.g. another protocol version); the body is UTF-8 text.
    Refusal = 3,
}

/// A parsed, checked frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the body is.
    pub kind: FrameKind,
    /// Pairs a response with its request on a pipelined connection.
    pub request_id: u64,
    /// Body length in bytes (at most [`FRAME_BODY_BYTES_MAX`]).
    pub body_bytes: usize,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The first four bytes are not [`FRAME_MAGIC`]: not a steward peer, or a desynchronized
    /// stream.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {found} (this node speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion {
        /// The version in the frame.
        found: u16,
    },
    /// Unknown frame kind byte.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The announced body is larger than [`FRAME_BODY_BYTES_MAX`].
    #[error("frame body of {0} bytes exceeds the limit of {FRAME_BODY_BYTES_MAX}")]
    TooLarge(u64),
    /// The body did not decode as the expected message.
    #[error("undecodable body: {0}")]
    Body(String),
}

// Header layout (little-endian):
//
//   0       4         6      7          8              16           20
//   +-------+---------+------+----------+--------------+------------+---------
//   | magic | version | kind | reserved | request id   | body bytes | body ...
//   | STRP  | u16     | u8   | u8 = 0   | u64          | u32        | bincode
//   +-------+---------+------+----------+--------------+------------+---------

/// Encodes a whole frame (header and body) into one buffer.
pub fn encode_frame(kind: FrameKind, request_id: u64, body: &[u8]) -> Result<Vec<u8>, FrameError> {
    if body.len() > FRAME_BODY_BYTES_MAX {
        return Err(FrameError::TooLarge(body.len() as u64));
    }
    let mut frame = Vec::with_capacity(HEADER_BYTES + body.len());
    frame.extend_from_slice(&FRAME_MAGIC);
    frame.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    frame.push(kind as u8);
    frame.push(0);
    frame.extend_from_slice(&request_id.to_le_bytes());
    // Checked against FRAME_BODY_BYTES_MAX above, which fits in a u32 (const assert).
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(body);
    Ok(frame)
}

/// Parses and checks a frame header.
pub fn decode_header(header: &[u8; HEADER_BYTES]) -> Result<FrameHeader, FrameError> {
    let magic = [header[0], header[1], header[2], header[3]];
    if magic != FRAME_MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion { found: version });
    }
    let kind = match header[6] {
        1 => FrameKind::Request,
        2 => FrameKind::Response,
        3 => FrameKind::Refusal,
        other => return Err(FrameError::UnknownKind(other)),
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[8..16]);
    let body_bytes = u32::from_le_bytes([header[16], header[17], header[18], header[19]]) as usize;
    if body_bytes > FRAME_BODY_BYTES_MAX {
        return Err(FrameError::TooLarge(body_bytes as u64));
    }
    Ok(FrameHeader {
        kind,
        request_id: u64::from_le_bytes(id),
        body_bytes,
    })
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<FRAME_BODY_BYTES_MAX>()
}

/// Encodes a message body with bincode (standard configuration, ADR 0003).
pub fn encode_body<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    bincode::serde::encode_to_vec(value, bincode_config())
        .map_err(|e| FrameError::Body(e.to_string()))
}

/// Decodes a message body; trailing bytes are an error (a body is exactly one message).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (value, used) = bincode::serde::decode_from_slice(body, bincode_config())
        .map_err(|e| FrameError::Body(e.to_string()))?;
    if used != body.len() {
        return Err(FrameError::Body(format!(
            "{} trailing bytes",
            body.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn header_of(frame: &[u8]) -> [u8; HEADER_BYTES] {
        let mut header = [0u8; HEADER_BYTES];
        header.copy_from_slice(&frame[..HEADER_BYTES]);
        header
    }

    #[test]
    fn round_trip() {
        let frame = encode_frame(FrameKind::Response, 42, b"abc").unwrap();
        let header = decode_header(&header_of(&frame)).unwrap();
        assert_eq!(
            header,
            FrameHeader {
                kind: FrameKind::Response,
                request_id: 42,
                body_bytes: 3
            }
        );
        assert_eq!(&frame[HEADER_BYTES..], b"abc");
    }

    #[test]
    fn wrong_magic_version_kind_and_size_are_refused() {
        let good = encode_frame(FrameKind::Request, 1, b"").unwrap();
        let mut bad = header_of(&good);
        bad[0] = b'X';
        assert!(matches!(decode_header(&bad), Err(FrameError::BadMagic(_))));
        let mut bad = header_of(&good);
        bad[4] = 2;
        assert_eq!(
            decode_header(&bad),
            Err(FrameError::UnsupportedVersion { found: 2 })
        );
        let mut bad = header_of(&good);
        bad[6] = 9;
        assert_eq!(decode_header(&bad), Err(FrameError::UnknownKind(9)));
        let mut bad = header_of(&good);
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_header(&bad), Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn trailing_body_bytes_are_refused() {
        let mut body = encode_body(&7u64).unwrap();
        body.push(0);
        assert!(matches!(
            decode_body::<u64>(&body),
            Err(FrameError::Body(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic(bytes in proptest::array::uniform20(any::<u8>())) {
            if let Ok(header) = decode_header(&bytes) {
                prop_assert!(header.body_bytes <= FRAME_BODY_BYTES_MAX);
            }
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            // Only the absence of a panic matters here; most random bodies are refused.
            let _ignored: Result<crate::transport::message::RaftRpc, _> = decode_body(&body);
        }
    }
}
