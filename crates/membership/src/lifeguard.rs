//! Lifeguard's two local mechanisms: the local health multiplier (LHM), which slows our own
//! probing when we are the slow one, and the dynamic suspicion timeout, which starts long and
//! shrinks as independent members confirm a suspicion. Pure arithmetic; no timers here.

/// Local health score `0..=max`; timeouts are multiplied by `1 + score`.
#[derive(Debug, Clone)]
pub(crate) struct LocalHealth {
    score: u32,
    max: u32,
}

impl LocalHealth {
    pub(crate) fn new(max: u32) -> Self {
        Self { score: 0, max }
    }

    /// Raise (missed ack, missed nack, refuting a suspicion of ourselves) or lower (successful
    /// probe) the score, saturating at both ends.
    pub(crate) fn apply(&mut self, delta: i64) {
        let next = (i64::from(self.score) + delta).clamp(0, i64::from(self.max));
        self.score = u32::try_from(next).unwrap_or(self.max);
    }

    pub(crate) fn score(&self) -> u32 {
        self.score
    }

    /// `1 + score`.
    pub(crate) fn multiplier(&self) -> f64 {
        f64::from(self.score) + 1.0
    }
}

/// Lifeguard's suspicion timeout after `confirmations` independent confirmations, with `k`
/// expected: `max(min, max − (max − min)·ln(C + 1)/ln(K + 1))`. With `k == 0` it is `min`.
pub fn suspicion_timeout_ms(min_ms: f64, max_ms: f64, k: u32, confirmations: u32) -> f64 {
    if k == 0 || max_ms <= min_ms {
        return min_ms;
    }
    let fraction = f64::from(confirmations + 1).ln() / f64::from(k + 1).ln();
    (max_ms - (max_ms - min_ms) * fraction).max(min_ms)
}

/// The suspicion base `mult × max(1, log10 n) × probe_interval`, ms.
pub fn suspicion_base_ms(suspicion_mult: u32, cluster_size: usize, probe_interval_ms: u64) -> f64 {
    let scale = (cluster_size.max(1) as f64).log10().max(1.0);
    f64::from(suspicion_mult) * scale * probe_interval_ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn health_saturates() {
        let mut health = LocalHealth::new(8);
        health.apply(-1);
        assert_eq!(health.score(), 0);
        health.apply(20);
        assert_eq!(health.score(), 8);
        assert_eq!(health.multiplier(), 9.0);
    }

    #[test]
    fn timeout_starts_at_max_and_reaches_min_at_k() {
        assert_eq!(suspicion_timeout_ms(5000.0, 30_000.0, 3, 0), 30_000.0);
        assert!((suspicion_timeout_ms(5000.0, 30_000.0, 3, 3) - 5000.0).abs() < 1e-6);
        assert_eq!(suspicion_timeout_ms(5000.0, 30_000.0, 3, 10), 5000.0);
        assert_eq!(suspicion_timeout_ms(5000.0, 30_000.0, 0, 0), 5000.0);
    }

    #[test]
    fn base_grows_with_log_n() {
        assert_eq!(suspicion_base_ms(5, 3, 1000), 5000.0);
        assert_eq!(suspicion_base_ms(5, 10, 1000), 5000.0);
        assert!((suspicion_base_ms(5, 100, 1000) - 10_000.0).abs() < 1e-6);
    }

    proptest! {
        #[test]
        fn timeout_is_monotone_and_bounded(k in 0u32..10, c in 0u32..20) {
            let now = suspicion_timeout_ms(5000.0, 30_000.0, k, c);
            let next = suspicion_timeout_ms(5000.0, 30_000.0, k, c + 1);
            prop_assert!(next <= now);
            prop_assert!((5000.0..=30_000.0).contains(&now));
        }
    }
}
