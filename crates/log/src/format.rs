//! The on-disk byte layout: segment header, record frame, vote file, and every constant that
//! shapes them. Pure encoding and decoding only; no I/O and no policy about what a bad frame
//! means (that is `scan`'s job).

use crate::record::Record;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"STEWWAL\0";
/// First bytes of the vote file.
pub const VOTE_MAGIC: [u8; 8] = *b"STEWVOTE";
/// Version of the segment and vote formats. An unknown version is corruption, never a guess.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header.
pub const SEGMENT_HEADER_BYTES: u64 = 32;
/// Size of a record frame's header (everything before the payload).
pub const RECORD_HEADER_BYTES: u64 = 32;
/// Every frame starts at a multiple of this, so a scan for stray valid frames only probes
/// aligned offsets.
pub const RECORD_ALIGN_BYTES: u64 = 8;
/// Largest accepted record payload. Default: 16 MiB (a fixed format limit, not configurable).
pub const RECORD_PAYLOAD_BYTES_MAX: u64 = 16 << 20;
/// Size of the vote file's header.
pub const VOTE_HEADER_BYTES: u64 = 24;
/// Largest accepted vote. Default: 64 KiB.
pub const VOTE_BYTES_MAX: u64 = 64 << 10;
/// File name of the vote.
pub const VOTE_FILE_NAME: &str = "vote";
/// Extension of segment files (`{first_index:020}.wal`).
pub const SEGMENT_EXTENSION: &str = "wal";
/// Suffix of files being created (removed on open if a crash left one behind).
pub const TEMP_SUFFIX: &str = ".tmp";
/// Suffix of files moved aside by repair.
pub const BROKEN_SUFFIX: &str = ".broken";

const _: () = assert!(SEGMENT_HEADER_BYTES % RECORD_ALIGN_BYTES == 0);
const _: () = assert!(RECORD_HEADER_BYTES % RECORD_ALIGN_BYTES == 0);
const _: () = assert!(RECORD_PAYLOAD_BYTES_MAX <= u32::MAX as u64);

/// The segment file name for a segment whose first record has index `first_index`.
pub fn segment_file_name(first_index: u64) -> String {
    format!("{first_index:020}.{SEGMENT_EXTENSION}")
}

/// Parses `{first_index:020}.wal`; `None` for any other name.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

// Segment header (32 bytes), as drawn in docs/format.md:
//
//   0        8        12       16                24       28       32
//   +--------+--------+--------+-----------------+--------+--------+
//   | magic  |version | zero   |   first_index   | crc32  | zero   |
//   |8 bytes |  u32   |  u32   |       u64       |  u32   |  u32   |
//   +--------+--------+--------+-----------------+--------+--------+
//   magic       = "STEWWAL\0"  (53 54 45 57 57 41 4C 00)
//   version     = 1
//   first_index = index of the segment's first record; equals the file name
//   crc32       = CRC32 (IEEE) of bytes 0..24

/// Encodes the header of a segment whose first record will have index `first_index`.
pub fn encode_segment_header(first_index: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES as usize];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32fast::hash(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes a segment header, returning its first index, or why it is not one.
pub fn decode_segment_header(bytes: &[u8]) -> Result<u64, String> {
    if (bytes.len() as u64) < SEGMENT_HEADER_BYTES {
        return Err(format!(
            "file is {} bytes, shorter than a segment header",
            bytes.len()
        ));
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err("bad segment magic".to_string());
    }
    let version = read_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(format!("unknown segment format version {version}"));
    }
    if read_u32(bytes, 24) != crc32fast::hash(&bytes[0..24]) {
        return Err("segment header CRC mismatch".to_string());
    }
    if read_u32(bytes, 12) != 0 || read_u32(bytes, 28) != 0 {
        return Err("non-zero reserved bytes in segment header".to_string());
    }
    Ok(read_u64(bytes, 16))
}

// Record frame (32-byte header + payload + padding), as drawn in docs/format.md:
//
//   0       4       8    9               16              24              32
//   +-------+-------+----+---------------+---------------+---------------+-----------+-------+
//   |  len  | crc32 |kind| zero (7 bytes)|     index     |     term      |  payload  |  pad  |
//   |  u32  |  u32  | u8 |               |      u64      |      u64      | len bytes | 0 - 7 |
//   +-------+-------+----+---------------+---------------+---------------+-----------+-------+
//   len    = payload length in bytes (at most 16 MiB)
//   crc32  = CRC32 (IEEE) of bytes 0..4 and 8..32 of the header, then the payload
//   kind   = opaque to the log; the node writes 1 = event, 2 = blank, 3 = membership
//   index  = the record's log index (contiguous: each frame's index is the previous one + 1)
//   term   = the Raft term it was proposed in
//   pad    = zeroes up to the next multiple of 8 (not covered by the CRC, must be zero)
//   frame size = 32 + len rounded up to a multiple of 8

/// Total on-disk size of a frame with a payload of `payload_bytes`.
pub fn frame_bytes(payload_bytes: u64) -> u64 {
    (RECORD_HEADER_BYTES + payload_bytes).div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES
}

/// The frame size a record header declares, `None` when `header` is shorter than a record
/// header or the length exceeds the limit (`decode_frame` then says what is wrong).
pub fn declared_frame_bytes(header: &[u8]) -> Option<u64> {
    if (header.len() as u64) < RECORD_HEADER_BYTES {
        return None;
    }
    let len = u64::from(read_u32(header, 0));
    (len <= RECORD_PAYLOAD_BYTES_MAX).then(|| frame_bytes(len))
}

/// Appends the frame of `record` to `out`. The payload must not exceed
/// `RECORD_PAYLOAD_BYTES_MAX` (checked by the caller, which owns the error).
pub fn encode_record(out: &mut Vec<u8>, record: &Record) {
    let start = out.len();
    let len = record.payload.len() as u64;
    assert!(
        len <= RECORD_PAYLOAD_BYTES_MAX,
        "caller checks the payload limit"
    );
    let mut h = [0u8; RECORD_HEADER_BYTES as usize];
    h[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    h[8] = record.kind;
    h[16..24].copy_from_slice(&record.index.0.to_le_bytes());
    h[24..32].copy_from_slice(&record.term.to_le_bytes());
    let crc = frame_crc(&h, &record.payload);
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&record.payload);
    out.resize(start + frame_bytes(len) as usize, 0);
}

fn frame_crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[0..4]);
    hasher.update(&header[8..RECORD_HEADER_BYTES as usize]);
    hasher.update(payload);
    hasher.finalize()
}

/// A frame that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameView {
    /// Record index.
    pub index: u64,
    /// Record term.
    pub term: u64,
    /// Record kind.
    pub kind: u8,
    /// Stored CRC32.
    pub crc: u32,
    /// Payload length.
    pub payload_bytes: u64,
    /// Whole frame length including padding.
    pub frame_bytes: u64,
}

/// The outcome of decoding the bytes at a frame position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameDecode {
    /// A whole, checksummed frame.
    Valid(FrameView),
    /// Fewer than a header's worth of bytes, or a header of zeroes: nothing was written here.
    Empty,
    /// Something is here but it is not a valid frame.
    Invalid(String),
}

/// Decodes the frame at the start of `bytes` (which runs to the end of the file).
pub fn decode_frame(bytes: &[u8]) -> FrameDecode {
    let header_len = RECORD_HEADER_BYTES as usize;
    if bytes.len() < header_len {
        return if bytes.iter().all(|&b| b == 0) {
            FrameDecode::Empty
        } else {
            FrameDecode::Invalid("partial record header".to_string())
        };
    }
    let header = &bytes[..header_len];
    if header.iter().all(|&b| b == 0) {
        return FrameDecode::Empty;
    }
    let len = u64::from(read_u32(header, 0));
    if len > RECORD_PAYLOAD_BYTES_MAX {
        return FrameDecode::Invalid(format!("record length {len} exceeds the limit"));
    }
    let total = frame_bytes(len);
    if total > bytes.len() as u64 {
        return FrameDecode::Invalid(format!("record of {total} bytes runs past the end of file"));
    }
    let payload = &bytes[header_len..header_len + len as usize];
    let crc = read_u32(header, 4);
    if crc != frame_crc(header, payload) {
        return FrameDecode::Invalid("record CRC mismatch".to_string());
    }
    if header[9..16].iter().any(|&b| b != 0) {
        return FrameDecode::Invalid("non-zero reserved bytes in record header".to_string());
    }
    if bytes[header_len + len as usize..total as usize]
        .iter()
        .any(|&b| b != 0)
    {
        return FrameDecode::Invalid("non-zero record padding".to_string());
    }
    FrameDecode::Valid(FrameView {
        index: read_u64(header, 16),
        term: read_u64(header, 24),
        kind: header[8],
        crc,
        payload_bytes: len,
        frame_bytes: total,
    })
}

// Vote file, as drawn in docs/format.md:
//
//   0        8        12       16       20       24
//   +--------+--------+--------+--------+--------+--------------+
//   | magic  |version |  len   | crc32  |  zero  |  vote bytes  |
//   |8 bytes |  u32   |  u32   |  u32   |  u32   |  len bytes   |
//   +--------+--------+--------+--------+--------+--------------+
//   magic = "STEWVOTE", version = 1, len <= 64 KiB
//   crc32 = CRC32 (IEEE) of bytes 8..16, then the vote bytes

/// Encodes the vote file for `vote` (at most `VOTE_BYTES_MAX`, checked by the caller).
pub fn encode_vote(vote: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; VOTE_HEADER_BYTES as usize];
    out[0..8].copy_from_slice(&VOTE_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&(vote.len() as u32).to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[8..16]);
    hasher.update(vote);
    out[16..20].copy_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(vote);
    out
}

/// Decodes a vote file, returning the vote bytes or why the file is not valid.
pub fn decode_vote(bytes: &[u8]) -> Result<&[u8], String> {
    let header_len = VOTE_HEADER_BYTES as usize;
    if bytes.len() < header_len {
        return Err("vote file shorter than its header".to_string());
    }
    if bytes[0..8] != VOTE_MAGIC {
        return Err("bad vote magic".to_string());
    }
    let version = read_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(format!("unknown vote format version {version}"));
    }
    let len = read_u32(bytes, 12) as usize;
    if bytes.len() != header_len + len {
        return Err(format!(
            "vote length {len} does not match the file size {}",
            bytes.len()
        ));
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&bytes[8..16]);
    hasher.update(&bytes[header_len..]);
    if hasher.finalize() != read_u32(bytes, 16) {
        return Err("vote CRC mismatch".to_string());
    }
    Ok(&bytes[header_len..])
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_is_aligned() {
        for len in [0usize, 1, 7, 8, 9, 300] {
            let rec = Record::new(42, 7, 3, vec![0xAB; len]);
            let mut buf = Vec::new();
            encode_record(&mut buf, &rec);
            assert_eq!(buf.len() as u64 % RECORD_ALIGN_BYTES, 0);
            assert_eq!(buf.len() as u64, frame_bytes(len as u64));
            let FrameDecode::Valid(view) = decode_frame(&buf) else {
                panic!("frame of {len} bytes did not decode");
            };
            assert_eq!((view.index, view.term, view.kind), (42, 7, 3));
            assert_eq!(view.payload_bytes, len as u64);
        }
    }

    #[test]
    fn every_single_bit_flip_in_a_frame_is_detected() {
        let rec = Record::new(5, 2, 1, b"hello, log".to_vec());
        let mut buf = Vec::new();
        encode_record(&mut buf, &rec);
        for bit in 0..buf.len() * 8 {
            let mut copy = buf.clone();
            copy[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(decode_frame(&copy), FrameDecode::Valid(_)),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn zeroes_are_empty_not_invalid() {
        assert_eq!(decode_frame(&[0u8; 64]), FrameDecode::Empty);
        assert_eq!(decode_frame(&[0u8; 5]), FrameDecode::Empty);
        assert!(matches!(decode_frame(&[1u8; 5]), FrameDecode::Invalid(_)));
    }

    #[test]
    fn segment_header_round_trips_and_rejects_damage() {
        let h = encode_segment_header(1234);
        assert_eq!(decode_segment_header(&h), Ok(1234));
        let mut bad = h;
        bad[17] ^= 1;
        assert!(decode_segment_header(&bad).is_err());
        let mut future = h;
        future[8] = 9;
        assert!(decode_segment_header(&future)
            .unwrap_err()
            .contains("version"));
    }

    #[test]
    fn segment_names_are_zero_padded() {
        assert_eq!(segment_file_name(17), "00000000000000000017.wal");
        assert_eq!(
            parse_segment_file_name("00000000000000000017.wal"),
            Some(17)
        );
        assert_eq!(parse_segment_file_name("17.wal"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000017.wal.tmp"),
            None
        );
    }

    #[test]
    fn vote_round_trips_and_rejects_damage() {
        let v = encode_vote(b"term=3,node=2");
        assert_eq!(decode_vote(&v), Ok(&b"term=3,node=2"[..]));
        let mut bad = v.clone();
        bad[30] ^= 4;
        assert!(decode_vote(&bad).is_err());
        assert!(decode_vote(&v[..v.len() - 1]).is_err());
    }
}
