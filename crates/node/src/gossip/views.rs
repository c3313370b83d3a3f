//! The JSON answers of `GET /v1/cluster/members` and `GET /v1/cluster/coordinates` (documented
//! in `docs/api.md`), shared by the HTTP layer and the client. Built from a [`Snapshot`]; they
//! carry only what the routes promise, not the metrics (those are on `/metrics`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
pub use steward_membership::Coordinate;

use super::snapshot::Snapshot;

/// `GET /v1/cluster/members`: this node's gossip view, itself first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembersResponse {
    /// The answering node's id (the RTT estimates are from it).
    pub node_id: u64,
    /// This node, then every other member in id order.
    pub members: Vec<MemberEntry>,
}

/// One member in [`MembersResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberEntry {
    /// Gossip id (node id; `WorkerId` for a worker).
    pub id: u64,
    /// Gossip UDP address.
    pub addr: SocketAddr,
    /// `gate`, `manager` or `worker`.
    pub role: String,
    /// `unconfirmed`, `alive`, `suspect`, `dead` or `left`.
    pub state: String,
    /// Latest incarnation heard.
    pub incarnation: u64,
    /// Estimated RTT from the answering node, ms (0 for itself); absent without a coordinate.
    pub rtt_ms: Option<f64>,
    /// Trust in that estimate, 0..=1 (1 for itself).
    pub quality: f64,
}

/// `GET /v1/cluster/coordinates`: every coordinate the answering node knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinatesResponse {
    /// The answering node's id.
    pub node_id: u64,
    /// This node's coordinate first, then the members' in id order.
    pub coordinates: Vec<CoordinateEntry>,
}

/// One node's coordinate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinateEntry {
    /// Gossip id.
    pub id: u64,
    /// Its Vivaldi coordinate.
    pub coordinate: Coordinate,
}

impl CoordinatesResponse {
    /// The coordinate of `id`, if known.
    pub fn get(&self, id: u64) -> Option<&Coordinate> {
        self.coordinates
            .iter()
            .find(|c| c.id == id)
            .map(|c| &c.coordinate)
    }
}

impl From<&Snapshot> for MembersResponse {
    fn from(snapshot: &Snapshot) -> Self {
        let local = MemberEntry {
            id: snapshot.id,
            addr: snapshot.addr,
            role: snapshot.role.to_owned(),
            state: "alive".to_owned(),
            incarnation: snapshot.incarnation,
            rtt_ms: Some(0.0),
            quality: 1.0,
        };
        let others = snapshot.members.iter().map(|m| MemberEntry {
            id: m.id,
            addr: m.addr,
            role: m.role.to_owned(),
            state: m.state.to_owned(),
            incarnation: m.incarnation,
            rtt_ms: m.rtt_ms,
            quality: m.quality,
        });
        MembersResponse {
            node_id: snapshot.id,
            members: std::iter::once(local).chain(others).collect(),
        }
    }
}

impl From<&Snapshot> for CoordinatesResponse {
    fn from(snapshot: &Snapshot) -> Self {
        CoordinatesResponse {
            node_id: snapshot.id,
            coordinates: snapshot
                .coordinates()
                .into_iter()
                .map(|c| CoordinateEntry {
                    id: c.id,
                    coordinate: c.coordinate,
                })
                .collect(),
        }
    }
}
