//! `steward cluster members` and `steward cluster rtt A [B]`: the gossip view of one node and
//! Vivaldi RTT estimates between two nodes (like `consul members` / `consul rtt`).
//!
//! It computes nothing but the distance between two coordinates the node returned; a node
//! without a coordinate yet is refused with a message, never guessed.

use std::fmt::Write as _;

use serde::Serialize;
use steward_node::client::Client;
use steward_node::gossip::{CoordinatesResponse, MembersResponse};

use crate::output::{Failure, EXIT_NOT_FOUND};

/// `cluster rtt --output json`.
#[derive(Debug, Serialize)]
pub struct RttReport {
    /// First node.
    pub from: u64,
    /// Second node (the answering node when not given).
    pub to: u64,
    /// Estimated round-trip time, ms.
    pub rtt_ms: f64,
    /// The node whose coordinates were used.
    pub source_node: u64,
}

/// Fetches the members view.
pub async fn members(client: &Client) -> Result<MembersResponse, Failure> {
    Ok(client.cluster_members().await?)
}

/// Renders the members view as a table.
pub fn render_members(view: &MembersResponse) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail (here and below).
    let _ = writeln!(out, "view of node {}", view.node_id);
    let _ = writeln!(
        out,
        "{:>6}  {:<7}  {:<11}  {:>11}  {:<21}  {:>8}  {:>7}",
        "ID", "ROLE", "STATE", "INCARNATION", "ADDRESS", "RTT", "QUALITY"
    );
    for m in &view.members {
        let rtt = m
            .rtt_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}ms"));
        let _ = writeln!(
            out,
            "{:>6}  {:<7}  {:<11}  {:>11}  {:<21}  {:>8}  {:>7.2}",
            m.id,
            m.role,
            m.state,
            m.incarnation,
            m.addr.to_string(),
            rtt,
            m.quality
        );
    }
    out
}

/// Estimated RTT between `a` and `b` (default: the answering node) from its coordinates.
pub async fn rtt(client: &Client, a: u64, b: Option<u64>) -> Result<RttReport, Failure> {
    let view = client.cluster_coordinates().await?;
    let b = b.unwrap_or(view.node_id);
    let rtt_ms = distance(&view, a, b)?;
    Ok(RttReport {
        from: a,
        to: b,
        rtt_ms,
        source_node: view.node_id,
    })
}

fn distance(view: &CoordinatesResponse, a: u64, b: u64) -> Result<f64, Failure> {
    let coordinate = |id: u64| {
        view.get(id).ok_or_else(|| Failure {
            code: EXIT_NOT_FOUND,
            error: anyhow::anyhow!(
                "node {id} has no network coordinate yet at node {} (unknown, or not probed \
                 yet: coordinates ride on gossip probes; retry in a few seconds)",
                view.node_id
            ),
        })
    };
    let (ca, cb) = (coordinate(a)?, coordinate(b)?);
    Ok(ca.distance_ms(cb))
}

/// Renders an RTT estimate like `consul rtt`.
pub fn render_rtt(report: &RttReport) -> String {
    format!(
        "estimated node {} <-> node {} rtt: {:.3} ms (using coordinates from node {})\n",
        report.from, report.to, report.rtt_ms, report.source_node
    )
}

#[cfg(test)]
mod tests {
    use steward_node::gossip::{Coordinate, CoordinateEntry};

    use super::*;

    fn at(id: u64, x: f64) -> CoordinateEntry {
        CoordinateEntry {
            id,
            coordinate: Coordinate {
                vec: vec![x, 0.0],
                height_ms: 0.0,
                adjustment_ms: 0.0,
                error: 0.2,
                samples: 10,
            },
        }
    }

    #[test]
    fn distance_between_known_nodes_and_refusal_of_unknown_ones() {
        let view = CoordinatesResponse {
            node_id: 1,
            coordinates: vec![at(1, 0.0), at(2, 3.0)],
        };
        assert!((distance(&view, 1, 2).unwrap() - 3.0).abs() < 1e-9);
        let refused = distance(&view, 9, 1).unwrap_err();
        assert_eq!(refused.code, EXIT_NOT_FOUND);
        assert!(refused
            .error
            .to_string()
            .contains("node 9 has no network coordinate"));
    }
}
