//! The leader's clock: wall-clock milliseconds made monotonic (`max(now, last stamp)`), with a
//! test-only offset so crash tests can jump one leader's clock.
//!
//! It does not decide anything with time; `decide` and `apply` do, with the stamp.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Stamps proposals.
#[derive(Debug, Default)]
pub struct LeaderClock {
    last_stamp_ms: AtomicU64,
    offset_ms: AtomicI64,
}

impl LeaderClock {
    /// The wall clock in ms since the Unix epoch, plus the test offset.
    fn now_ms(&self) -> u64 {
        // A clock before 1970 reads as 0; the monotonic max below keeps stamps ordered anyway.
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        wall.saturating_add_signed(self.offset_ms.load(Ordering::Relaxed))
    }

    /// The next stamp: `max(now, last stamp, floor_ms)`, where `floor_ms` is the last stamp the
    /// replicated state has applied (a new leader never stamps behind its predecessor).
    pub fn stamp(&self, floor_ms: u64) -> u64 {
        let candidate = self.now_ms().max(floor_ms);
        let previous = self.last_stamp_ms.fetch_max(candidate, Ordering::AcqRel);
        previous.max(candidate)
    }

    /// Test only: shifts this node's clock by `offset_ms` (may be negative).
    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_never_go_back_even_when_the_clock_does() {
        let clock = LeaderClock::default();
        let first = clock.stamp(0);
        clock.set_offset_ms(-3_600_000);
        let second = clock.stamp(0);
        assert!(second >= first);
        assert!(
            clock.stamp(second + 10_000) >= second + 10_000,
            "the floor wins"
        );
        clock.set_offset_ms(3_600_000);
        assert!(clock.stamp(0) >= first + 3_500_000, "a jump forward shows");
    }
}
