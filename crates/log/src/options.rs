//! How a `Wal` is opened: segment size, sync policy, recovery mode. Validation only; the policies
//! themselves are implemented in `wal`.

use std::time::Duration;

use crate::error::{Error, Result};

/// Default segment size: 64 MiB.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 << 20;
/// Smallest accepted `segment_bytes_max`: 4 KiB (tests use tiny segments to exercise rolling).
pub const SEGMENT_BYTES_MAX_MIN: u64 = 4 << 10;
/// Largest accepted `segment_bytes_max`: 1 GiB (record offsets are kept as `u32`).
pub const SEGMENT_BYTES_MAX_MAX: u64 = 1 << 30;

/// When an `append` counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncPolicy {
    /// `append` returns after an `fdatasync` that covers the batch. Concurrent appenders share
    /// one `fdatasync` (group commit). Default.
    #[default]
    Always,
    /// Like `Always`, but the appender that performs the shared `fdatasync` first waits up to
    /// `max_delay` so more appenders can join it: more throughput, more latency, still durable
    /// when `append` returns.
    Batch {
        /// How long the syncing appender waits before syncing.
        max_delay: Duration,
    },
    /// Never `fdatasync` appends. UNSAFE: a crash of the machine (not just the process) loses
    /// acknowledged records. For tests and benchmarks only.
    Never,
}

/// What `open` does about corruption (a torn tail is always cut and reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Refuse to open: return `Error::Corruption`. Default.
    #[default]
    Strict,
    /// Copy the damaged segment aside (`*.broken`), move later segments aside, and cut the log
    /// at the damage. Loses every record from the damage on; for explicit operator use.
    Repair,
}

/// Options for `Wal::open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// Size segments are preallocated to; a new segment starts when a batch does not fit.
    /// Default: 64 MiB. Minimum: 4 KiB. Maximum: 1 GiB.
    pub segment_bytes_max: u64,
    /// When `append` returns. Default: `SyncPolicy::Always`.
    pub sync_policy: SyncPolicy,
    /// What `open` does about corruption. Default: `RecoveryMode::Strict`.
    pub recovery_mode: RecoveryMode,
    /// Prepare the next segment (zero-filled, fsynced) on a background thread while the active
    /// one fills, so a segment roll does not stall appenders. Tests that count written bytes
    /// to inject a crash turn it off to stay deterministic. Default: `true`.
    pub prepare_segments_in_background: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            sync_policy: SyncPolicy::default(),
            recovery_mode: RecoveryMode::default(),
            prepare_segments_in_background: true,
        }
    }
}

impl WalOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(SEGMENT_BYTES_MAX_MIN..=SEGMENT_BYTES_MAX_MAX).contains(&self.segment_bytes_max) {
            return Err(Error::InvalidOption {
                field: "segment_bytes_max",
                reason: format!(
                    "{} is outside {SEGMENT_BYTES_MAX_MIN}..={SEGMENT_BYTES_MAX_MAX}",
                    self.segment_bytes_max
                ),
            });
        }
        Ok(())
    }
}
