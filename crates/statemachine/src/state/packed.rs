//! The byte-level pieces of the state's packed records (stored specs, timelines): LEB128
//! varints, length-prefixed strings, and a reader that refuses malformed input instead of
//! panicking.
//!
//! Also the serde glue that writes such a buffer as one byte string, so that a snapshot stores
//! and restores it with one copy. This module knows nothing about what the bytes mean.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Serializer;

/// Where packed bytes go: a buffer, or a counter that sizes the buffer first (so each packed
/// record is allocated once, at its exact size).
pub(crate) trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);

    /// Appends `value` as an unsigned LEB128 varint (1 to 10 bytes).
    fn varint(&mut self, mut value: u64) {
        if value < 0x80 {
            // Most values (positions, attempts, small counts) take one byte.
            self.put(&[value as u8]);
            return;
        }
        let mut buffer = [0u8; 10];
        let mut len = 0;
        loop {
            let low = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                buffer[len] = low;
                len += 1;
                break;
            }
            buffer[len] = low | 0x80;
            len += 1;
        }
        self.put(&buffer[..len]);
    }

    /// Appends a length-prefixed string.
    fn string(&mut self, text: &str) {
        self.varint(text.len() as u64);
        self.put(text.as_bytes());
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts the bytes a packing would write.
#[derive(Default)]
pub(crate) struct Counter(pub usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// Maps a signed difference onto the unsigned varint range, small magnitudes first.
pub(crate) fn zigzag(delta: i64) -> u64 {
    ((delta << 1) ^ (delta >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub(crate) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// The position of `value` in `all` as a one-byte code (every table of codes is short).
pub(crate) fn code_in<T: PartialEq>(all: &[T], value: &T) -> u8 {
    all.iter()
        .position(|candidate| candidate == value)
        .map_or(u8::MAX, |position| position as u8)
}

/// Reads packed bytes front to back; every read is `None` on malformed or missing input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if len > self.bytes.len() {
            return None;
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Some(taken)
    }

    #[inline]
    pub fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(*first)
    }

    #[inline]
    pub fn varint(&mut self) -> Option<u64> {
        match self.bytes {
            [first, rest @ ..] if *first < 0x80 => {
                self.bytes = rest;
                Some(u64::from(*first))
            }
            _ => self.varint_long(),
        }
    }

    fn varint_long(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (position, &byte) in self.bytes.iter().enumerate().take(10) {
            let low = u64::from(byte & 0x7f);
            // The tenth byte may carry only the top bit of a u64.
            if position == 9 && low > 1 {
                return None;
            }
            value |= low << (7 * position);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[position + 1..];
                return Some(value);
            }
        }
        None
    }

    /// A varint that must fit `u32`.
    #[inline]
    pub fn varint_u32(&mut self) -> Option<u32> {
        self.varint().and_then(|value| u32::try_from(value).ok())
    }

    pub fn string(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.varint()?).ok()?;
        std::str::from_utf8(self.take(len)?).ok()
    }
}

/// Serializes packed bytes as one byte string (bincode: a length and the bytes).
pub(crate) fn serialize_bytes<S: Serializer>(
    bytes: &[u8],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// Deserializes a byte string written by [`serialize_bytes`] (or, for self-describing formats,
/// a sequence of bytes).
pub(crate) fn deserialize_bytes<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<u8>, D::Error> {
    deserializer.deserialize_bytes(BytesVisitor)
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut bytes = Vec::new();
            bytes.varint(value);
            let mut counter = Counter::default();
            counter.varint(value);
            assert_eq!(counter.0, bytes.len());
            let mut reader = Reader::new(&bytes);
            assert_eq!(reader.varint(), Some(value));
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn malformed_varints_are_refused() {
        assert_eq!(Reader::new(&[0x80]).varint(), None);
        assert_eq!(Reader::new(&[0xff; 10]).varint(), None);
        let mut too_wide = vec![0xff; 9];
        too_wide.push(0x02);
        assert_eq!(Reader::new(&too_wide).varint(), None);
    }

    #[test]
    fn zigzag_round_trips() {
        for delta in [0, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(delta)), delta);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn strings_are_checked() {
        let mut bytes = Vec::new();
        bytes.string("héllo");
        assert_eq!(Reader::new(&bytes).string(), Some("héllo"));
        assert_eq!(Reader::new(&bytes[..3]).string(), None);
        assert_eq!(Reader::new(&[2, 0xc3, 0x28]).string(), None);
    }
}
