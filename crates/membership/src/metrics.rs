//! Counters and gauges the state machine keeps about itself, for the node's metrics endpoint.
//! Plain numbers; exporting them is the node's job.

use serde::Serialize;

/// A snapshot of the membership metrics (serde so the node can serve it as JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Members per state (excluding ourselves).
    pub members_unconfirmed: usize,
    /// ALIVE members.
    pub members_alive: usize,
    /// SUSPECT members.
    pub members_suspect: usize,
    /// DEAD members still retained.
    pub members_dead: usize,
    /// LEFT members still retained.
    pub members_left: usize,
    /// Direct probes sent.
    pub probes_sent: u64,
    /// Probes that got no ack, direct or indirect.
    pub probes_failed: u64,
    /// Ping-req messages sent.
    pub indirect_probes_sent: u64,
    /// Nacks sent on behalf of others.
    pub nacks_sent: u64,
    /// Nacks received for our probes.
    pub nacks_received: u64,
    /// Suspicions started (locally or from gossip).
    pub suspicions: u64,
    /// Times we refuted a suspicion about ourselves.
    pub refutations: u64,
    /// Members we declared dead ourselves (suspicion timer expired here).
    pub dead_declared: u64,
    /// UNCONFIRMED members confirmed.
    pub confirmations: u64,
    /// Proactive confirmation pings sent.
    pub confirmation_attempts: u64,
    /// UNCONFIRMED members removed without confirmation: gates, managers, workers.
    pub unconfirmed_removed: [u64; 3],
    /// Local health score (0..=lhm_max).
    pub lhm_score: u32,
    /// Local coordinate error.
    pub coordinate_error: f64,
    /// Accepted Vivaldi updates.
    pub coordinate_updates: u64,
    /// RTT samples rejected by Vivaldi.
    pub rtt_samples_rejected: u64,
    /// Datagrams received.
    pub packets_received: u64,
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Datagrams dropped because they did not decode (bad magic, truncated, malformed).
    pub malformed_packets_dropped: u64,
    /// Datagrams dropped because the peer speaks another protocol version.
    pub version_mismatches: u64,
}
