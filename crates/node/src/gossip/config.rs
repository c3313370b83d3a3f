//! Gossip settings of a node: where the UDP socket binds, whom to contact first, and the few
//! protocol timings worth changing per deployment (tests shorten them).
//!
//! Everything else keeps `steward_membership::Config::default()`: the protocol constants are
//! normative (ADR 0005) and not a per-node choice. This module does not bind anything.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use steward_membership::Config as MembershipConfig;

/// The gossip (SWIM) settings of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GossipConfig {
    /// Run membership at all. Default: true.
    pub enabled: bool,
    /// UDP listen address. Default: unset, meaning the Raft transport's address (same IP, same
    /// port number) over UDP: TCP and UDP ports are separate, so one port per manager carries
    /// both Raft (TCP) and gossip (UDP), as Consul's serf port does.
    pub addr: Option<SocketAddr>,
    /// Gossip addresses contacted on start. Default: empty, meaning every other initial
    /// member's `raft_addr` (their default gossip address, see `addr`).
    pub seeds: Vec<SocketAddr>,
    /// Time between two probes. Default: 1000. Minimum: 10.
    pub probe_interval_ms: u64,
    /// Wait for a direct ack before indirect probes. Default: 500. Minimum: 1; below
    /// `probe_interval_ms`.
    pub probe_timeout_ms: u64,
    /// Suspicion base in probe intervals (`× max(1, log10 n)`). Default: 5. Minimum: 1.
    pub suspicion_mult: u32,
    /// Interval of the extra gossip round. Default: 200. 0 disables it.
    pub gossip_interval_ms: u64,
    /// Interval of the full state exchange with one random member. Default: 30000. 0 disables
    /// it.
    pub push_pull_interval_ms: u64,
}

impl Default for GossipConfig {
    fn default() -> Self {
        let base = MembershipConfig::default();
        GossipConfig {
            enabled: true,
            addr: None,
            seeds: Vec::new(),
            probe_interval_ms: base.probe_interval_ms,
            probe_timeout_ms: base.probe_timeout_ms,
            suspicion_mult: base.suspicion_mult,
            gossip_interval_ms: base.gossip_interval_ms,
            push_pull_interval_ms: base.push_pull_interval_ms,
        }
    }
}

impl GossipConfig {
    /// The membership configuration: the defaults with this config's timings. Validated by
    /// `Membership::new`.
    pub fn membership_config(&self) -> MembershipConfig {
        MembershipConfig {
            probe_interval_ms: self.probe_interval_ms,
            probe_timeout_ms: self.probe_timeout_ms,
            suspicion_mult: self.suspicion_mult,
            gossip_interval_ms: self.gossip_interval_ms,
            push_pull_interval_ms: self.push_pull_interval_ms,
            ..MembershipConfig::default()
        }
    }

    /// Settings for tests on loopback: 100 ms probes, 50 ms probe timeout, suspicion of
    /// 3 probe intervals (plus Lifeguard's stretch while few confirm), so a stopped node is
    /// declared dead within a few seconds.
    pub fn fast_for_tests() -> Self {
        GossipConfig {
            probe_interval_ms: 100,
            probe_timeout_ms: 50,
            suspicion_mult: 3,
            gossip_interval_ms: 50,
            push_pull_interval_ms: 2_000,
            ..GossipConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_membership_defaults() {
        let config = GossipConfig::default();
        assert_eq!(config.membership_config(), MembershipConfig::default());
        assert!(config.membership_config().validate().is_ok());
        assert!(GossipConfig::fast_for_tests()
            .membership_config()
            .validate()
            .is_ok());
    }

    #[test]
    fn round_trips_through_serde_with_defaults_for_missing_fields() {
        let config: GossipConfig = serde_json::from_str(r#"{"probe_interval_ms": 200}"#).unwrap();
        assert_eq!(config.probe_interval_ms, 200);
        assert_eq!(config.probe_timeout_ms, 500);
        let back: GossipConfig =
            serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
        assert_eq!(back, config);
    }
}
