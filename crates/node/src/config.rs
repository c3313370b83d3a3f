//! Node configuration: everything a manager needs to start, with dev-friendly defaults.
//!
//! Parsing TOML, flags and environment variables is the CLI's job; this module only defines the
//! fields, their defaults and minimums, and checks them ([`NodeConfig::validate`]).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gossip::GossipConfig;

/// Smallest accepted `timeout_check_interval_ms` and `idempotency_expiry_interval_ms`.
pub const DUTY_INTERVAL_MS_MIN: u64 = 100;
/// Smallest accepted `heartbeat_interval_ms`.
pub const HEARTBEAT_INTERVAL_MS_MIN: u64 = 10;
/// How long the leader waits for a follower to receive, check, store durably (fsync) and install
/// the last chunk of a snapshot. openraft's default (200 ms) is too short for a multi-MiB state
/// on a busy disk, which would make the follower re-receive the snapshot forever. Default: 10 s.
pub const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 10_000;
/// Smallest accepted `snapshot_after_entries`.
pub const SNAPSHOT_AFTER_ENTRIES_MIN: u64 = 10;

/// How the WAL makes appends durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicyConfig {
    /// `fdatasync` before every append returns (concurrent appends share one sync).
    #[default]
    Always,
    /// Group commit: appends wait for a shared sync issued at most every few hundred µs.
    Batch,
    /// Never sync. Test only: acknowledged writes can be lost on a crash.
    Never,
}

/// One member of the manager group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The member's node id (never reused).
    pub id: u64,
    /// Its Raft TCP transport address.
    pub raft_addr: SocketAddr,
    /// Its HTTP API address.
    pub api_addr: SocketAddr,
}

/// Everything a manager needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id; never reused after a removal. Default: 1. Minimum: 1.
    pub id: u64,
    /// Data directory; `wal/`, `sled/` and `snapshots/` live below it. Default: `./data`.
    pub data_dir: PathBuf,
    /// Raft TCP transport listen address. Default: 127.0.0.1:7001.
    pub raft_addr: SocketAddr,
    /// HTTP API listen address (bound by the API layer). Default: 127.0.0.1:8001.
    pub api_addr: SocketAddr,
    /// The bootstrap set, including this node; empty means "join an existing cluster later".
    /// Used only when the log is empty. Default: empty.
    pub initial_members: Vec<PeerConfig>,
    /// WAL sync policy. Default: always.
    pub sync_policy: SyncPolicyConfig,
    /// Leader heartbeat interval. Default: 100. Minimum: 10; must be below
    /// `election_timeout_min_ms`.
    pub heartbeat_interval_ms: u64,
    /// Lower bound of the randomized election timeout. Default: 300. Minimum: above
    /// `heartbeat_interval_ms`. Also how long a candidate waits for each vote.
    ///
    /// A member without a committed vote (a candidate, or just restarted) asks for pre-votes
    /// again after `[min, max)` of silence; a follower of an elected leader asks after
    /// `[max + min, 2 × max)`, 800–1000 ms with the defaults, or after `4 × max` while the
    /// leader's Raft port still accepts connections (a slow leader, not a dead one; ADR 0018).
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout, and openraft's leader lease: a voter
    /// refuses every vote and pre-vote until this long after it last heard from its leader.
    /// Default: 500. Minimum: above `election_timeout_min_ms`.
    pub election_timeout_max_ms: u64,
    /// How often the leader checks job timeouts. Default: 30000. Minimum: 100.
    pub timeout_check_interval_ms: u64,
    /// How often the leader proposes idempotency-key expiry. Default: 60000. Minimum: 100.
    pub idempotency_expiry_interval_ms: u64,
    /// Build a snapshot (and allow purging the WAL) once per this many applied entries, each
    /// member at its own phase so that members do not build at once (ADR 0021). Each build
    /// writes the whole state, so the period trades disk traffic under load against the WAL
    /// kept and the entries a restart folds; the default is etcd's `snapshot-count` (ADR 0028).
    /// Default: 100000. Minimum: 10.
    pub snapshot_after_entries: u64,
    /// Entries kept in the WAL behind the latest snapshot, for followers slightly behind.
    /// Default: 1000. Minimum: 0.
    pub log_entries_kept_after_snapshot: u64,
    /// Enables test-only hooks (clock offset, workflow completion endpoint). Default: false.
    pub test_mode: bool,
    /// Membership gossip (SWIM over UDP). Default: on, bound to `raft_addr`'s IP and port over
    /// UDP, seeded with the other initial members' `raft_addr`; see [`GossipConfig`].
    pub gossip: GossipConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: 1,
            data_dir: PathBuf::from("./data"),
            raft_addr: loopback(7001),
            api_addr: loopback(8001),
            initial_members: Vec::new(),
            sync_policy: SyncPolicyConfig::Always,
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 500,
            timeout_check_interval_ms: 30_000,
            idempotency_expiry_interval_ms: 60_000,
            snapshot_after_entries: 100_000,
            log_entries_kept_after_snapshot: 1_000,
            test_mode: false,
            gossip: GossipConfig::default(),
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

fn check(ok: bool, field: &'static str, message: impl Into<String>) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field,
            message: message.into(),
        })
    }
}

impl NodeConfig {
    /// Checks every field against its minimum and the relations between fields.
    pub fn validate(&self) -> Result<()> {
        check(self.id >= 1, "id", "must be at least 1")?;
        check(
            self.heartbeat_interval_ms >= HEARTBEAT_INTERVAL_MS_MIN,
            "heartbeat_interval_ms",
            format!("must be at least {HEARTBEAT_INTERVAL_MS_MIN}"),
        )?;
        check(
            self.election_timeout_min_ms > self.heartbeat_interval_ms,
            "election_timeout_min_ms",
            "must be above heartbeat_interval_ms",
        )?;
        check(
            self.election_timeout_max_ms > self.election_timeout_min_ms,
            "election_timeout_max_ms",
            "must be above election_timeout_min_ms",
        )?;
        check(
            self.timeout_check_interval_ms >= DUTY_INTERVAL_MS_MIN,
            "timeout_check_interval_ms",
            format!("must be at least {DUTY_INTERVAL_MS_MIN}"),
        )?;
        check(
            self.idempotency_expiry_interval_ms >= DUTY_INTERVAL_MS_MIN,
            "idempotency_expiry_interval_ms",
            format!("must be at least {DUTY_INTERVAL_MS_MIN}"),
        )?;
        check(
            self.snapshot_after_entries >= SNAPSHOT_AFTER_ENTRIES_MIN,
            "snapshot_after_entries",
            format!("must be at least {SNAPSHOT_AFTER_ENTRIES_MIN}"),
        )?;
        let mut seen = std::collections::BTreeSet::new();
        for peer in &self.initial_members {
            check(peer.id >= 1, "initial_members", "ids must be at least 1")?;
            check(
                seen.insert(peer.id),
                "initial_members",
                format!("id {} twice", peer.id),
            )?;
        }
        check(
            self.initial_members.is_empty() || seen.contains(&self.id),
            "initial_members",
            format!("must include this node's id {}", self.id),
        )
    }

    /// The openraft configuration derived from this node configuration (validated by openraft).
    pub fn openraft_config(&self) -> Result<openraft::Config> {
        let config = openraft::Config {
            cluster_name: "steward".to_string(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            // Builds are triggered by `raft::snapshot_schedule`, each member at its own phase
            // of `snapshot_after_entries` (ADR 0021).
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: self.log_entries_kept_after_snapshot,
            install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
            // steward starts elections itself, after a pre-vote (ADR 0018).
            enable_elect: false,
            ..Default::default()
        };
        config.validate().map_err(|e| Error::Config {
            field: "raft",
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        NodeConfig::default().validate().unwrap();
        NodeConfig::default().openraft_config().unwrap();
    }

    #[test]
    fn short_duty_interval_is_refused() {
        let config = NodeConfig {
            timeout_check_interval_ms: 99,
            ..NodeConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config {
                    field: "timeout_check_interval_ms",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn initial_members_must_include_self() {
        let peer = PeerConfig {
            id: 2,
            raft_addr: loopback(1),
            api_addr: loopback(2),
        };
        let config = NodeConfig {
            initial_members: vec![peer],
            ..NodeConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(Error::Config {
                field: "initial_members",
                ..
            })
        ));
    }

    #[test]
    fn toml_like_round_trip_through_serde() {
        let config = NodeConfig {
            sync_policy: SyncPolicyConfig::Batch,
            ..NodeConfig::default()
        };
        let text = serde_json::to_string(&config).unwrap();
        let back: NodeConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, config);
    }
}
