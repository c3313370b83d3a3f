//! Counters and a sync-latency histogram, kept with atomics on the hot path and handed out as a
//! plain struct. No exporter here: the node turns `WalMetrics` into whatever it serves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Number of histogram buckets: upper bounds 2^3 … 2^25 µs, then one overflow bucket.
const BUCKETS: usize = 24;
/// Upper bound of the first bucket, as a power of two in microseconds (8 µs).
const FIRST_BUCKET_LOG2: u32 = 3;

/// A snapshot of the log's counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WalMetrics {
    /// `append` calls that wrote at least one record.
    pub appends: u64,
    /// Records appended.
    pub records: u64,
    /// Frame bytes written by appends (headers, payloads and padding).
    pub bytes: u64,
    /// `fdatasync` calls made for appends (group commits and segment rolls).
    pub syncs: u64,
    /// Records made durable by those syncs; `records_synced / syncs` is records per sync.
    pub records_synced: u64,
    /// Latency of those syncs.
    pub sync_latency: LatencyHistogram,
}

impl WalMetrics {
    /// Average number of records each sync made durable (0 before the first sync).
    pub fn records_per_sync(&self) -> f64 {
        if self.syncs == 0 {
            0.0
        } else {
            self.records_synced as f64 / self.syncs as f64
        }
    }
}

/// A log2-bucketed latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LatencyHistogram {
    /// Inclusive upper bound of each bucket in microseconds; the last is `u64::MAX`.
    pub bucket_upper_bounds_us: Vec<u64>,
    /// Samples per bucket.
    pub counts: Vec<u64>,
    /// Sum of all samples in microseconds.
    pub sum_us: u64,
    /// Largest sample in microseconds.
    pub max_us: u64,
}

impl LatencyHistogram {
    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Upper bound (µs) of the bucket holding quantile `q` (0.0 ..= 1.0), capped at the largest
    /// sample; 0 when empty.
    pub fn percentile_us(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bound, count) in self.bucket_upper_bounds_us.iter().zip(&self.counts) {
            seen += count;
            if seen >= rank {
                return (*bound).min(self.max_us);
            }
        }
        self.max_us
    }

    /// Mean sample in microseconds; 0 when empty.
    pub fn mean_us(&self) -> u64 {
        self.sum_us.checked_div(self.count()).unwrap_or(0)
    }
}

/// The live counters inside a `Wal`.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    appends: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
    records_synced: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Metrics {
    pub(crate) fn record_append(&self, records: u64, bytes: u64) {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn record_sync(&self, latency: Duration, records: u64) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.records_synced.fetch_add(records, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> WalMetrics {
        let bounds = (0..BUCKETS)
            .map(|i| {
                if i + 1 == BUCKETS {
                    u64::MAX
                } else {
                    1u64 << (FIRST_BUCKET_LOG2 + i as u32)
                }
            })
            .collect();
        WalMetrics {
            appends: self.appends.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            records_synced: self.records_synced.load(Ordering::Relaxed),
            sync_latency: LatencyHistogram {
                bucket_upper_bounds_us: bounds,
                counts: self
                    .buckets
                    .iter()
                    .map(|b| b.load(Ordering::Relaxed))
                    .collect(),
                sum_us: self.sum_us.load(Ordering::Relaxed),
                max_us: self.max_us.load(Ordering::Relaxed),
            },
        }
    }
}

fn bucket_of(us: u64) -> usize {
    // Bucket i holds samples in (2^(i+2), 2^(i+3)] µs; bucket 0 everything up to 8 µs.
    let log2_ceil = 64 - us.saturating_sub(1).leading_zeros();
    (log2_ceil.saturating_sub(FIRST_BUCKET_LOG2) as usize).min(BUCKETS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_bounds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(8), 0);
        assert_eq!(bucket_of(9), 1);
        assert_eq!(bucket_of(16), 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_come_from_buckets() {
        let m = Metrics::default();
        for _ in 0..99 {
            m.record_sync(Duration::from_micros(150), 2);
        }
        m.record_sync(Duration::from_micros(5000), 2);
        let s = m.snapshot();
        assert_eq!(s.syncs, 100);
        assert_eq!(s.records_per_sync(), 2.0);
        assert_eq!(s.sync_latency.percentile_us(0.5), 256);
        assert_eq!(s.sync_latency.percentile_us(0.99), 256);
        assert_eq!(s.sync_latency.percentile_us(1.0), 5000);
    }
}
