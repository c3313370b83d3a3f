//! Tunables of the protocol, each with its default and minimum. `Config::default()` is the
//! production setting; the simulator and tests change fields explicitly. Validation happens
//! once, in `Membership::new`.

use crate::error::{Error, Result};
use crate::types::Role;
use crate::vivaldi::VivaldiConfig;

/// Confirmation policy for UNCONFIRMED peers of one role (reference AD-35, section 12.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleConfirmation {
    /// An UNCONFIRMED peer of this role that has not answered within this time is removed.
    pub passive_timeout_ms: u64,
    /// Proactive confirmation pings spread over the passive timeout; 0 means passive only
    /// (the peer is never probed just to confirm it).
    pub attempts: u32,
}

/// Per-role confirmation policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmationConfig {
    /// Gates. Default: 120 s with 5 proactive attempts.
    pub gate: RoleConfirmation,
    /// Managers. Default: 90 s with 3 proactive attempts.
    pub manager: RoleConfirmation,
    /// Workers. Default: 180 s, passive only.
    pub worker: RoleConfirmation,
}

impl ConfirmationConfig {
    /// The policy for `role`.
    pub fn for_role(&self, role: Role) -> RoleConfirmation {
        match role {
            Role::Gate => self.gate,
            Role::Manager => self.manager,
            Role::Worker => self.worker,
        }
    }
}

impl Default for ConfirmationConfig {
    fn default() -> Self {
        Self {
            gate: RoleConfirmation {
                passive_timeout_ms: 120_000,
                attempts: 5,
            },
            manager: RoleConfirmation {
                passive_timeout_ms: 90_000,
                attempts: 3,
            },
            worker: RoleConfirmation {
                passive_timeout_ms: 180_000,
                attempts: 0,
            },
        }
    }
}

/// Membership protocol configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Time between two probes. Default: 1000 ms. Minimum: 10 ms.
    pub probe_interval_ms: u64,
    /// Base wait for a direct ack before asking `indirect_probes` peers. Default: 500 ms.
    /// Minimum: 1 ms; must be below `probe_interval_ms`.
    pub probe_timeout_ms: u64,
    /// Peers asked to ping a silent member on our behalf (ping-req). Default: 3.
    pub indirect_probes: usize,
    /// Suspicion base: `suspicion_mult × max(1, log10 n) × probe_interval`. Default: 5 (5 s
    /// for n ≤ 10 at 1 s probes). Minimum: 1.
    pub suspicion_mult: u32,
    /// Upper suspicion timeout as a multiple of the base (Lifeguard). Default: 6 (30 s for
    /// n ≤ 10). Minimum: 1.
    pub suspicion_max_mult: u32,
    /// λ: a gossiped update is piggybacked `λ·ceil(log10(n + 1))` times. Default: 4. Minimum: 1.
    pub retransmit_mult: u32,
    /// Interval of the extra gossip round that pushes pending updates. Default: 200 ms.
    /// 0 disables it.
    pub gossip_interval_ms: u64,
    /// Members sent to on each gossip round. Default: 3.
    pub gossip_fanout: usize,
    /// Interval of the full state exchange with one random member. Default: 30 000 ms.
    /// 0 disables it.
    pub push_pull_interval_ms: u64,
    /// Largest datagram produced or accepted. Default: 1400 bytes (fits an Ethernet MTU with
    /// IP/UDP headers). Minimum: 512.
    pub packet_bytes_max: usize,
    /// Highest local health score (multiplier `1 + score`). Default: 8.
    pub lhm_max: u32,
    /// Lifeguard on: local health multiplier, dynamic suspicion timeout, nacks and the buddy
    /// system. Off gives plain SWIM (the comparison baseline). Default: true.
    pub lifeguard: bool,
    /// Scale probe and suspicion timeouts by the Vivaldi latency multiplier and confidence.
    /// Default: true.
    pub adaptive_timeouts: bool,
    /// RTT for which the latency multiplier is 1. Default: 10 ms.
    pub reference_rtt_ms: f64,
    /// Ceiling of the latency multiplier. Default: 10.
    pub latency_multiplier_max: f64,
    /// How long DEAD and LEFT members stay in the table (so stale gossip cannot revive them)
    /// before `Removed`. Default: 300 000 ms.
    pub dead_retention_ms: u64,
    /// Minimum time between two refutations of a suspicion about ourselves. Default: 1000 ms.
    pub refute_interval_ms: u64,
    /// Interval of join retries while no seed has answered. Default: 2000 ms.
    pub join_retry_ms: u64,
    /// Role-aware confirmation of UNCONFIRMED peers.
    pub confirmation: ConfirmationConfig,
    /// Vivaldi coordinates.
    pub vivaldi: VivaldiConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            probe_interval_ms: 1000,
            probe_timeout_ms: 500,
            indirect_probes: 3,
            suspicion_mult: 5,
            suspicion_max_mult: 6,
            retransmit_mult: 4,
            gossip_interval_ms: 200,
            gossip_fanout: 3,
            push_pull_interval_ms: 30_000,
            packet_bytes_max: 1400,
            lhm_max: 8,
            lifeguard: true,
            adaptive_timeouts: true,
            reference_rtt_ms: 10.0,
            latency_multiplier_max: 10.0,
            dead_retention_ms: 300_000,
            refute_interval_ms: 1000,
            join_retry_ms: 2000,
            confirmation: ConfirmationConfig::default(),
            vivaldi: VivaldiConfig::default(),
        }
    }
}

/// Smallest accepted `packet_bytes_max`: room for a header, a coordinate and a few updates.
pub const PACKET_BYTES_MIN: usize = 512;

/// Longest accepted duration field (a week): keeps every deadline computation far from
/// overflow whatever the scaling factors.
pub const DURATION_MAX_MS: u64 = 7 * 24 * 3600 * 1000;

impl Config {
    /// Plain SWIM: Lifeguard and Vivaldi-adaptive timeouts off (the comparison baseline).
    pub fn plain_swim() -> Self {
        Self {
            lifeguard: false,
            adaptive_timeouts: false,
            ..Self::default()
        }
    }

    /// Check every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: &str| {
            Err(Error::InvalidConfig {
                field,
                reason: reason.to_string(),
            })
        };
        if self.probe_interval_ms < 10 {
            return bad("probe_interval_ms", "must be at least 10");
        }
        if self.probe_timeout_ms == 0 || self.probe_timeout_ms >= self.probe_interval_ms {
            return bad("probe_timeout_ms", "must be in 1..probe_interval_ms");
        }
        if self.suspicion_mult == 0 || self.suspicion_max_mult == 0 {
            return bad("suspicion_mult", "multipliers must be at least 1");
        }
        if self.retransmit_mult == 0 {
            return bad("retransmit_mult", "must be at least 1");
        }
        if self.packet_bytes_max < PACKET_BYTES_MIN {
            return bad("packet_bytes_max", "must be at least 512");
        }
        let durations = [
            ("probe_interval_ms", self.probe_interval_ms),
            ("gossip_interval_ms", self.gossip_interval_ms),
            ("push_pull_interval_ms", self.push_pull_interval_ms),
            ("dead_retention_ms", self.dead_retention_ms),
            ("refute_interval_ms", self.refute_interval_ms),
            ("join_retry_ms", self.join_retry_ms),
            (
                "confirmation.gate.passive_timeout_ms",
                self.confirmation.gate.passive_timeout_ms,
            ),
            (
                "confirmation.manager.passive_timeout_ms",
                self.confirmation.manager.passive_timeout_ms,
            ),
            (
                "confirmation.worker.passive_timeout_ms",
                self.confirmation.worker.passive_timeout_ms,
            ),
        ];
        for (field, value) in durations {
            if value > DURATION_MAX_MS {
                return bad(field, "must be at most a week (604 800 000 ms)");
            }
        }
        if self.join_retry_ms == 0 {
            return bad("join_retry_ms", "must be at least 1");
        }
        if !(self.reference_rtt_ms > 0.0 && self.reference_rtt_ms.is_finite()) {
            return bad("reference_rtt_ms", "must be a positive number");
        }
        if !(self.latency_multiplier_max >= 1.0 && self.latency_multiplier_max.is_finite()) {
            return bad("latency_multiplier_max", "must be at least 1");
        }
        self.vivaldi.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_brief() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config.confirmation.gate.attempts, 5);
        assert_eq!(config.confirmation.manager.passive_timeout_ms, 90_000);
        assert_eq!(config.confirmation.worker.attempts, 0);
        assert_eq!(
            config.suspicion_mult as u64 * config.probe_interval_ms,
            5_000
        );
    }

    #[test]
    fn out_of_range_fields_are_named() {
        let config = Config {
            probe_timeout_ms: 2000,
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidConfig {
                field: "probe_timeout_ms",
                ..
            }
        ));
    }
}
