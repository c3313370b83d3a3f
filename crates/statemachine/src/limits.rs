//! Defaults and limits of the job domain, each a named constant.
//!
//! Values that every replica must agree on at apply time live in [`StateConfig`], which is part
//! of the replicated state (and of the state hash). Intervals that only the leader's timers use
//! (how often to check timeouts) are here for the node to read; the state machine never sleeps.

use serde::{Deserialize, Serialize};

/// Jobs a single proposal may create; also the multiplier in [`crate::JobId`].
/// Default: 1000 (fixed: changing it changes job ids).
pub const JOBS_PER_PROPOSAL_MAX: u64 = 1000;

/// No workflow progress for this long makes a running job stuck.
/// Default: 120 000 ms. Minimum: [`STUCK_THRESHOLD_MS_MIN`].
pub const STUCK_THRESHOLD_MS_DEFAULT: u64 = 120_000;
/// Smallest stuck threshold a spec may ask for. Default: 100 ms.
pub const STUCK_THRESHOLD_MS_MIN: u64 = 100;
/// How often the leader proposes `CheckTimeouts`. Default: 30 000 ms. Minimum:
/// [`TIMEOUT_CHECK_INTERVAL_MS_MIN`].
pub const TIMEOUT_CHECK_INTERVAL_MS_DEFAULT: u64 = 30_000;
/// Smallest timeout check interval (tests). Default: 100 ms.
pub const TIMEOUT_CHECK_INTERVAL_MS_MIN: u64 = 100;
/// A job's overall timeout when the spec gives none. Default: 3 600 000 ms (1 h).
pub const JOB_TIMEOUT_MS_DEFAULT: u64 = 3_600_000;
/// Largest overall or workflow timeout. Default: 30 days.
pub const TIMEOUT_MS_MAX: u64 = 30 * 24 * 3_600_000;
/// Time a cancelled job's workflows get to stop before the job is declared `Cancelled` anyway.
/// Default: 30 000 ms. Minimum: 0.
pub const CANCEL_GRACE_MS_DEFAULT: u64 = 30_000;
/// Largest per-job cancel grace ([`crate::JobSpec::cancel_grace_ms`]): a cancelled job must not
/// hold its cores for long. Default: 3 600 000 ms (1 h).
pub const CANCEL_GRACE_MS_MAX: u64 = 3_600_000;
/// How long a committed idempotency key is remembered. Default: 24 h. Minimum: 1 000 ms.
pub const IDEMPOTENCY_TTL_MS_DEFAULT: u64 = 24 * 3_600_000;
/// Smallest idempotency TTL. Default: 1 000 ms.
pub const IDEMPOTENCY_TTL_MS_MIN: u64 = 1_000;
/// Live idempotency keys at most; keyed submits beyond it are refused. Default: 1 000 000.
pub const IDEMPOTENCY_LIVE_KEYS_MAX_DEFAULT: u64 = 1_000_000;
/// Keys expired by one `ExpireIdempotency` proposal at most. Default: 10 000.
pub const EXPIRIES_PER_PROPOSAL_MAX: usize = 10_000;
/// Timeout events proposed by one `CheckTimeouts` at most. Default: 10 000.
pub const TIMEOUTS_PER_PROPOSAL_MAX: usize = 10_000;
/// Per-job retries (re-dispatches after failure or loss) when the spec gives none. Default: 3.
pub const RETRY_BUDGET_DEFAULT: u32 = 3;
/// Per-workflow retries when the spec gives none. Default: 2.
pub const RETRY_BUDGET_PER_WORKFLOW_DEFAULT: u32 = 2;
/// Largest retry budget a spec may ask for (job or workflow). Default: 100.
pub const RETRY_BUDGET_MAX: u32 = 100;
/// Extension grant n is `max(EXTENSION_MIN_GRANT_MS, EXTENSION_BASE_MS / 2^n)`. Default: 30 000.
pub const EXTENSION_BASE_MS: u64 = 30_000;
/// Smallest extension grant. Default: 1 000 ms.
pub const EXTENSION_MIN_GRANT_MS: u64 = 1_000;
/// Grants per (job, worker); the next request is denied. Default: 5.
pub const EXTENSIONS_MAX: u8 = 5;
/// Consecutive denials that make a worker an eviction candidate. Default: 3.
pub const EXTENSION_DENIALS_FOR_EVICTION: u8 = 3;
/// Finished jobs kept in full; older finished jobs are compacted to a summary.
/// Default: 100 000. Minimum: 0.
pub const RETAINED_FINISHED_JOBS_DEFAULT: u64 = 100_000;
/// Timeline entries kept per job; older ones (after the first) are dropped and counted.
/// Default: 32. Minimum: 2.
pub const TIMELINE_ENTRIES_MAX_DEFAULT: u32 = 32;

/// Names (job, workflow, label keys, env keys) at most this many bytes. Default: 256.
pub const NAME_BYTES_MAX: usize = 256;
/// Label and env values, and each argv entry, at most this many bytes. Default: 4096.
pub const VALUE_BYTES_MAX: usize = 4096;
/// Workflows per job at most. Default: 256.
pub const WORKFLOWS_PER_JOB_MAX: usize = 256;
/// Argv entries per workflow at most. Default: 256.
pub const ARGV_ENTRIES_MAX: usize = 256;
/// Env entries per workflow, and labels per job, at most. Default: 128.
pub const MAP_ENTRIES_MAX: usize = 128;
/// Cores a workflow may ask for at most. Default: 1024. Minimum: 1 (a workflow needs a core).
pub const CORES_MAX: u32 = 1024;
/// Idempotency namespace at most this many bytes. Default: 128.
pub const NAMESPACE_BYTES_MAX: usize = 128;
/// Idempotency key at most this many bytes; at least 1. Default: 256.
pub const KEY_BYTES_MAX: usize = 256;
/// A worker's failure message is cut to this many bytes. Default: 1024.
pub const ERROR_BYTES_MAX: usize = 1024;
/// A worker's address at most this many bytes. Default: 256.
pub const ADDRESS_BYTES_MAX: usize = 256;

const _: () = assert!(EXTENSION_BASE_MS >> EXTENSIONS_MAX as u32 <= EXTENSION_MIN_GRANT_MS);
const _: () = assert!(TIMEOUT_CHECK_INTERVAL_MS_MIN <= TIMEOUT_CHECK_INTERVAL_MS_DEFAULT);
const _: () = assert!(STUCK_THRESHOLD_MS_MIN <= STUCK_THRESHOLD_MS_DEFAULT);
const _: () = assert!(WORKFLOWS_PER_JOB_MAX as u64 <= u32::MAX as u64);

/// Settings every replica must share, carried inside the replicated state (and its hash) so a
/// replica configured differently shows up as a hash divergence rather than silent drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Grace period for cancelled jobs. Default: [`CANCEL_GRACE_MS_DEFAULT`]. Minimum: 0.
    pub cancel_grace_ms: u64,
    /// TTL of committed idempotency keys. Default: [`IDEMPOTENCY_TTL_MS_DEFAULT`].
    /// Minimum: [`IDEMPOTENCY_TTL_MS_MIN`].
    pub idempotency_ttl_ms: u64,
    /// Bound on live idempotency keys. Default: [`IDEMPOTENCY_LIVE_KEYS_MAX_DEFAULT`].
    /// Minimum: 1.
    pub idempotency_live_keys_max: u64,
    /// Finished jobs kept in full. Default: [`RETAINED_FINISHED_JOBS_DEFAULT`]. Minimum: 0.
    pub retained_finished_jobs: u64,
    /// Timeline entries per job. Default: [`TIMELINE_ENTRIES_MAX_DEFAULT`]. Minimum: 2.
    pub timeline_entries_max: u32,
}

impl Default for StateConfig {
    fn default() -> StateConfig {
        StateConfig {
            cancel_grace_ms: CANCEL_GRACE_MS_DEFAULT,
            idempotency_ttl_ms: IDEMPOTENCY_TTL_MS_DEFAULT,
            idempotency_live_keys_max: IDEMPOTENCY_LIVE_KEYS_MAX_DEFAULT,
            retained_finished_jobs: RETAINED_FINISHED_JOBS_DEFAULT,
            timeline_entries_max: TIMELINE_ENTRIES_MAX_DEFAULT,
        }
    }
}

impl StateConfig {
    /// The same settings with unbounded timelines and no compaction: for offline replay
    /// (`steward log replay --job`), where the full history of one job matters more than memory.
    /// The state hash then differs from the cluster's, since the config is part of it.
    pub fn with_full_history(&self) -> StateConfig {
        StateConfig {
            retained_finished_jobs: u64::MAX,
            timeline_entries_max: u32::MAX,
            ..self.clone()
        }
    }

    /// Checks the minimums; the error names the field.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let field_error = |field: &'static str, reason: &str| crate::Error::InvalidConfig {
            field,
            reason: reason.to_owned(),
        };
        if self.idempotency_ttl_ms < IDEMPOTENCY_TTL_MS_MIN {
            return Err(field_error(
                "idempotency_ttl_ms",
                "below the minimum of 1000 ms",
            ));
        }
        if self.idempotency_live_keys_max == 0 {
            return Err(field_error(
                "idempotency_live_keys_max",
                "must be at least 1",
            ));
        }
        if self.timeline_entries_max < 2 {
            return Err(field_error("timeline_entries_max", "must be at least 2"));
        }
        Ok(())
    }
}

/// Extension grant number `n` (1-based) in milliseconds: `max(1 s, 30 s / 2^n)`, so 15 000,
/// 7 500, 3 750, 1 875, 1 000. `None` past [`EXTENSIONS_MAX`] or for `n = 0`.
pub fn extension_grant_ms(n: u8) -> Option<u64> {
    if n == 0 || n > EXTENSIONS_MAX {
        return None;
    }
    Some((EXTENSION_BASE_MS >> n).max(EXTENSION_MIN_GRANT_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_sequence_matches_the_brief() {
        let grants: Vec<Option<u64>> = (0..=6).map(extension_grant_ms).collect();
        assert_eq!(
            grants,
            vec![
                None,
                Some(15_000),
                Some(7_500),
                Some(3_750),
                Some(1_875),
                Some(1_000),
                None
            ]
        );
    }

    #[test]
    fn default_config_is_valid_and_minimums_are_checked() {
        assert!(StateConfig::default().validate().is_ok());
        let config = StateConfig {
            timeline_entries_max: 1,
            ..StateConfig::default()
        };
        assert!(config.validate().is_err());
        let config = StateConfig {
            idempotency_ttl_ms: 999,
            ..StateConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
