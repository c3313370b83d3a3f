//! Scanning a clean segment front to back through a small buffer, instead of reading the whole
//! file into memory first.
//!
//! Why: opening the log scanned every segment from a buffer as large as the segment (64 MiB),
//! one per scan thread. That buffer is fresh memory, and first-touching it (the kernel zeroes
//! every page; in a virtual machine the host may have to back each page again) was the largest
//! part of opening a log on a restart: 60-240 ms for 128 MiB on the 2-core benchmark guest
//! (ADR 0032). Almost every segment is clean (whole records, then zeroes), and a clean segment
//! needs no more than one record in memory at a time.
//!
//! This path answers only "clean": anything else (a bad header, a torn or damaged record,
//! non-zero bytes after the last record) returns `None`, and the caller scans the whole file
//! with [`crate::scan::scan_segment`], which decides what it is. For a clean segment the result
//! is the one `scan_segment` gives, because every frame is decoded from a slice that holds all
//! of the bytes `decode_frame` looks at (see [`Window::ensure`]).

use std::io;

use crate::format::{
    declared_frame_bytes, decode_frame, decode_segment_header, FrameDecode, FrameView,
    RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use crate::fs::{read_exact_at, FileHandle};
use crate::scan::{is_all_zero, SegmentEnd, SegmentScan};

/// Bytes read per refill. Default: 1 MiB (reads stay large, the buffer stays small).
pub(crate) const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// Scans segment `file` (`file_bytes` long, named for `name_index`) if it is clean: whole
/// records from the header on, then only zeroes. `on_record` sees each record's offset, as
/// with `scan_segment`; when this returns `None` it may have seen some, and the caller starts
/// over. `buf` is reused between calls and grows only for a record larger than `chunk_bytes`.
pub(crate) fn scan_clean_segment(
    file: &dyn FileHandle,
    file_bytes: u64,
    name_index: u64,
    chunk_bytes: usize,
    buf: &mut Vec<u8>,
    mut on_record: impl FnMut(u64, &FrameView),
) -> io::Result<Option<SegmentScan>> {
    let mut window = Window::new(file, file_bytes, chunk_bytes, buf);
    let header = window.ensure(0, SEGMENT_HEADER_BYTES)?;
    if decode_segment_header(header) != Ok(name_index) {
        return Ok(None);
    }
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut expected = name_index;
    loop {
        let mut bytes = window.ensure(offset, RECORD_HEADER_BYTES)?;
        if let Some(total) = declared_frame_bytes(bytes) {
            bytes = window.ensure(offset, total)?;
        }
        match decode_frame(bytes) {
            FrameDecode::Valid(view) if view.index == expected && expected != u64::MAX => {
                on_record(offset, &view);
                offset += view.frame_bytes;
                expected += 1;
            }
            FrameDecode::Empty => break,
            FrameDecode::Valid(_) | FrameDecode::Invalid(_) => return Ok(None),
        }
    }
    let mut at = offset;
    while at < file_bytes {
        let rest = window.ensure(at, window.chunk_bytes as u64)?;
        if !is_all_zero(rest) {
            return Ok(None);
        }
        at += rest.len() as u64;
    }
    Ok(Some(SegmentScan {
        first_index: name_index,
        records: expected - name_index,
        data_end: offset,
        end: SegmentEnd::Clean,
    }))
}

/// A run of the file's bytes held in `buf`: `buf[..filled]` is the file from offset `start`.
struct Window<'a> {
    file: &'a dyn FileHandle,
    file_bytes: u64,
    chunk_bytes: usize,
    buf: &'a mut Vec<u8>,
    start: u64,
    filled: usize,
}

impl<'a> Window<'a> {
    fn new(
        file: &'a dyn FileHandle,
        file_bytes: u64,
        chunk_bytes: usize,
        buf: &'a mut Vec<u8>,
    ) -> Window<'a> {
        Window {
            file,
            file_bytes,
            chunk_bytes: chunk_bytes.max(1),
            buf,
            start: 0,
            filled: 0,
        }
    }

    /// The file's bytes from `at` (never before the last call's `at`) to the end of the
    /// window, holding at least `want` bytes or, when fewer remain, every byte to the end of
    /// the file. So a slice handed to `decode_frame` ends either past the frame or at the end
    /// of the file, as the whole file's slice would for everything it reads.
    fn ensure(&mut self, at: u64, want: u64) -> io::Result<&[u8]> {
        let want_end = at.saturating_add(want).min(self.file_bytes);
        let window_end = self.start + self.filled as u64;
        if want_end > window_end {
            self.refill(at, want_end)?;
        }
        let from = usize::try_from(at - self.start).unwrap_or(usize::MAX);
        Ok(&self.buf[from.min(self.filled)..self.filled])
    }

    /// Moves the unread bytes from `at` on to the front, grows the buffer to hold at least
    /// `want_end - at` bytes (and never below `chunk_bytes`), and fills the rest of it with one
    /// read (less at the end of the file).
    fn refill(&mut self, at: u64, want_end: u64) -> io::Result<()> {
        let keep_from = usize::try_from(at.saturating_sub(self.start))
            .unwrap_or(usize::MAX)
            .min(self.filled);
        self.buf.copy_within(keep_from..self.filled, 0);
        self.filled -= keep_from;
        self.start += keep_from as u64;
        let needed = usize::try_from(want_end - self.start).unwrap_or(usize::MAX);
        let room = needed.max(self.chunk_bytes);
        if self.buf.len() < room {
            self.buf.resize(room, 0);
        }
        let read_end = (self.start + self.buf.len() as u64).min(self.file_bytes);
        let read_len = usize::try_from(read_end - self.start).unwrap_or(usize::MAX);
        let window_end = self.start + self.filled as u64;
        read_exact_at(self.file, &mut self.buf[self.filled..read_len], window_end)?;
        self.filled = read_len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::format::{encode_record, encode_segment_header};
    use crate::fs::{FileSystem, StdFs};
    use crate::record::Record;
    use crate::scan::scan_segment;

    /// What is done to a well-formed segment before it is scanned.
    #[derive(Debug, Clone)]
    enum Damage {
        None,
        /// XOR one byte (anywhere: header, a record, padding or the zeroed tail).
        Flip {
            at: usize,
            mask: u8,
        },
        /// A non-zero byte in the zeroed tail after the last record.
        TailJunk {
            at: usize,
        },
        /// Cut the file short (a torn last record, or a torn header).
        Truncate {
            to: usize,
        },
        /// Name the file for another first index than its header says.
        Misnamed,
    }

    fn segment(first: u64, payloads: &[usize], tail: usize) -> Vec<u8> {
        let mut bytes = encode_segment_header(first).to_vec();
        for (i, &len) in payloads.iter().enumerate() {
            let record = Record::new(first + i as u64, 3, 1, vec![0xA5 ^ i as u8; len]);
            encode_record(&mut bytes, &record);
        }
        bytes.resize(bytes.len() + tail, 0);
        bytes
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            3 => Just(Damage::None),
            3 => (any::<prop::sample::Index>(), 1..=255u8)
                .prop_map(|(at, mask)| Damage::Flip { at: at.index(usize::MAX), mask }),
            2 => any::<prop::sample::Index>().prop_map(|at| Damage::TailJunk { at: at.index(usize::MAX) }),
            2 => any::<prop::sample::Index>().prop_map(|to| Damage::Truncate { to: to.index(usize::MAX) }),
            1 => Just(Damage::Misnamed),
        ]
    }

    /// A record at the largest index (only a crafted file has one) is not clean for either
    /// scan, and neither overflows counting past it.
    #[test]
    fn a_record_at_the_last_index_is_not_clean() {
        let bytes = segment(u64::MAX, &[8], 64);
        let whole = scan_segment(&bytes, u64::MAX, true, |_, _, _| {});
        assert!(matches!(whole.end, SegmentEnd::Corrupt { .. }), "{whole:?}");
        assert_eq!((whole.records, whole.data_end), (0, SEGMENT_HEADER_BYTES));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        std::fs::write(&path, &bytes).unwrap();
        let file = StdFs.open_read(&path).unwrap();
        let clean = scan_clean_segment(
            file.as_ref(),
            bytes.len() as u64,
            u64::MAX,
            SCAN_CHUNK_BYTES,
            &mut Vec::new(),
            |_, _| {},
        );
        assert_eq!(clean.unwrap(), None);
    }

    proptest! {
        /// Against `scan_segment` over the whole file: "clean" exactly when it says clean, and
        /// then the same records, offsets and end, whatever the chunk size.
        #[test]
        fn agrees_with_the_whole_file_scan(
            payloads in prop::collection::vec(prop_oneof![4 => 0..200usize, 1 => 200..3000usize], 0..24),
            tail in 0..400usize,
            damage in damage(),
            chunk_bytes in prop_oneof![1..64usize, 64..4096usize],
        ) {
            let first = 40;
            let mut bytes = segment(first, &payloads, tail);
            let mut name_index = first;
            match damage.clone() {
                Damage::None => {}
                Damage::Flip { at, mask } => {
                    let at = at % bytes.len();
                    bytes[at] ^= mask;
                }
                Damage::TailJunk { at } if tail > 0 => {
                    let len = bytes.len();
                    // Right after the last record, at the very end, or anywhere between.
                    let offset = [0, tail - 1, at % tail][at % 3];
                    bytes[len - tail + offset] = 0x01;
                }
                Damage::TailJunk { .. } => {}
                Damage::Truncate { to } => bytes.truncate(to % (bytes.len() + 1)),
                Damage::Misnamed => name_index = first + 1,
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("segment");
            std::fs::write(&path, &bytes).unwrap();
            let file = StdFs.open_read(&path).unwrap();

            let mut whole_offsets = Vec::new();
            let whole = scan_segment(&bytes, name_index, false, |offset, _, _| whole_offsets.push(offset));
            let mut offsets = Vec::new();
            let mut buf = Vec::new();
            let clean = scan_clean_segment(
                file.as_ref(), bytes.len() as u64, name_index, chunk_bytes, &mut buf,
                |offset, _| offsets.push(offset),
            ).unwrap();
            prop_assert_eq!(clean.is_some(), whole.end == SegmentEnd::Clean, "{:?}", whole);
            if let Some(clean) = clean {
                prop_assert_eq!(clean, whole);
                prop_assert_eq!(offsets, whole_offsets);
            }
            // Undamaged, it never holds more than a chunk or the largest record (damage read
            // as a record length may make it read up to the end of the file, then give up).
            let largest_frame = payloads.iter().map(|&len| crate::format::frame_bytes(len as u64)).max().unwrap_or(0);
            let bound = (chunk_bytes as u64).max(largest_frame).max(SEGMENT_HEADER_BYTES);
            prop_assert!(
                !matches!(damage, Damage::None) || buf.len() as u64 <= bound,
                "the buffer grew to {} bytes", buf.len()
            );
        }
    }
}
