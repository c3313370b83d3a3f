//! The last bytes of a child's output: a bounded buffer that keeps the newest
//! [`OUTPUT_TAIL_BYTES_MAX`] bytes of stdout and stderr interleaved in arrival order, plus a line
//! splitter that finds `STEWARD_PROGRESS <n>` lines on stdout.
//!
//! It deliberately does not keep the whole output (a workflow may print gigabytes) nor separate
//! the two streams: the tail is for a human reading why something failed.

use std::collections::VecDeque;

/// Bytes of output kept per workflow attempt. Default: 64 KiB.
pub const OUTPUT_TAIL_BYTES_MAX: usize = 64 * 1024;

/// Longest stdout line inspected for a progress marker; longer lines are only kept in the tail.
pub const PROGRESS_LINE_BYTES_MAX: usize = 256;

/// The stdout line prefix a workflow prints to report progress: `STEWARD_PROGRESS <n>`, where
/// `n` is an unsigned 64-bit counter that should grow.
pub const PROGRESS_PREFIX: &str = "STEWARD_PROGRESS ";

/// The newest bytes of a process's output.
#[derive(Debug, Clone)]
pub struct OutputTail {
    bytes: VecDeque<u8>,
    capacity_bytes: usize,
    total_bytes: u64,
}

impl OutputTail {
    /// A tail keeping at most `capacity_bytes` (at least 1).
    pub fn new(capacity_bytes: usize) -> OutputTail {
        OutputTail {
            bytes: VecDeque::new(),
            capacity_bytes: capacity_bytes.max(1),
            total_bytes: 0,
        }
    }

    /// Appends `chunk`, dropping the oldest bytes beyond the capacity.
    pub fn push(&mut self, chunk: &[u8]) {
        self.total_bytes = self.total_bytes.saturating_add(chunk.len() as u64);
        let keep = &chunk[chunk.len().saturating_sub(self.capacity_bytes)..];
        let overflow = (self.bytes.len() + keep.len()).saturating_sub(self.capacity_bytes);
        self.bytes.drain(..overflow);
        self.bytes.extend(keep);
    }

    /// Bytes seen in total, including dropped ones.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// The kept bytes as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        let (front, back) = self.bytes.as_slices();
        let mut joined = Vec::with_capacity(self.bytes.len());
        joined.extend_from_slice(front);
        joined.extend_from_slice(back);
        String::from_utf8_lossy(&joined).into_owned()
    }

    /// The last non-empty line of the kept text, cut to `bytes_max` bytes (for error messages).
    pub fn last_line(&self, bytes_max: usize) -> Option<String> {
        let text = self.text();
        let line = text.lines().rev().find(|line| !line.trim().is_empty())?;
        let mut end = line.len().min(bytes_max);
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        Some(line[..end].to_owned())
    }
}

/// Splits stdout into lines and extracts progress counters from `STEWARD_PROGRESS <n>` lines.
#[derive(Debug, Default)]
pub struct ProgressScanner {
    line: Vec<u8>,
    overlong: bool,
}

impl ProgressScanner {
    /// Feeds a chunk; returns the largest counter announced by a line completed in it.
    pub fn feed(&mut self, chunk: &[u8]) -> Option<u64> {
        let mut best = None;
        for &byte in chunk {
            if byte == b'\n' {
                if !self.overlong {
                    if let Some(value) = parse_progress(&self.line) {
                        best = Some(best.map_or(value, |b: u64| b.max(value)));
                    }
                }
                self.line.clear();
                self.overlong = false;
            } else if self.line.len() < PROGRESS_LINE_BYTES_MAX {
                self.line.push(byte);
            } else {
                self.overlong = true;
            }
        }
        best
    }
}

/// `STEWARD_PROGRESS <n>` (trailing `\r` and spaces allowed) → `n`.
pub fn parse_progress(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.strip_prefix(PROGRESS_PREFIX)?;
    rest.trim_end().trim_start_matches(' ').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_only_the_newest_bytes() {
        let mut tail = OutputTail::new(8);
        tail.push(b"hello ");
        tail.push(b"world");
        assert_eq!(tail.text(), "lo world");
        tail.push(b"0123456789abc");
        assert_eq!(tail.text(), "56789abc");
        assert_eq!(tail.total_bytes(), 24);
    }

    #[test]
    fn tail_of_64_kib_keeps_the_end_of_a_large_output() {
        let mut tail = OutputTail::new(OUTPUT_TAIL_BYTES_MAX);
        for i in 0..20_000u32 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        let text = tail.text();
        assert_eq!(text.len(), OUTPUT_TAIL_BYTES_MAX);
        assert!(text.ends_with("line 19999\n"));
        assert_eq!(tail.last_line(100).as_deref(), Some("line 19999"));
    }

    #[test]
    fn progress_lines_are_parsed_across_chunks() {
        let mut scanner = ProgressScanner::default();
        assert_eq!(scanner.feed(b"noise\nSTEWARD_PROG"), None);
        assert_eq!(scanner.feed(b"RESS 41\nSTEWARD_PROGRESS 7\r\n"), Some(41));
        assert_eq!(
            scanner.feed(b"STEWARD_PROGRESS x\nSTEWARD_PROGRESS -1\n"),
            None
        );
        assert_eq!(scanner.feed(b" STEWARD_PROGRESS 5\n"), None);
    }

    #[test]
    fn overlong_lines_are_not_progress() {
        let mut scanner = ProgressScanner::default();
        let mut line = b"STEWARD_PROGRESS 1".to_vec();
        line.extend(std::iter::repeat_n(b'0', PROGRESS_LINE_BYTES_MAX));
        line.push(b'\n');
        assert_eq!(scanner.feed(&line), None);
        assert_eq!(scanner.feed(b"STEWARD_PROGRESS 3\n"), Some(3));
    }
}
