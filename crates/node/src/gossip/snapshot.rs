//! What the gossip task publishes for readers: the member list with each member's RTT estimate
//! and coordinate, the local coordinate, and the metrics. Plain serde data, rebuilt by the task
//! and shared behind an `Arc`; readers never touch the `Membership` itself.
//!
//! It does not decide anything: the node and the HTTP layer read it.

use std::net::SocketAddr;

use serde::Serialize;
use steward_membership::{Coordinate, Member, MemberState, Membership, Metrics, NodeId, Role};

/// The lowercase wire name of a role (`gate`, `manager`, `worker`).
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Gate => "gate",
        Role::Manager => "manager",
        Role::Worker => "worker",
    }
}

/// The lowercase wire name of a member state.
pub fn state_name(state: MemberState) -> &'static str {
    match state {
        MemberState::Unconfirmed => "unconfirmed",
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Dead => "dead",
        MemberState::Left => "left",
    }
}

/// One member as this node sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemberView {
    /// Gossip id (the node id; for a worker, its `WorkerId`).
    pub id: u64,
    /// Gossip (UDP) address.
    pub addr: SocketAddr,
    /// `gate`, `manager` or `worker`.
    pub role: &'static str,
    /// `unconfirmed`, `alive`, `suspect`, `dead` or `left`.
    pub state: &'static str,
    /// Latest incarnation heard.
    pub incarnation: u64,
    /// When it entered this state, on this node's gossip clock (ms since the task started).
    pub state_since_ms: u64,
    /// Estimated RTT from this node, ms; `None` until it has a coordinate.
    pub rtt_ms: Option<f64>,
    /// Trust in that estimate, 0..=1.
    pub quality: f64,
    /// Its latest coordinate, if any.
    pub coordinate: Option<Coordinate>,
}

/// One node's Vivaldi coordinate, by gossip id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeCoordinate {
    /// Gossip id.
    pub id: u64,
    /// Its coordinate.
    pub coordinate: Coordinate,
}

/// Counters of the adapter on top of the protocol's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GossipMetrics {
    /// The protocol's metrics: members by state, probes, suspicions, refutations, LHM,
    /// coordinate error, malformed packets dropped.
    #[serde(flatten)]
    pub membership: Metrics,
    /// `send_to` failures (the datagram is lost; SWIM tolerates loss).
    pub send_errors: u64,
    /// `recv_from` failures.
    pub recv_errors: u64,
    /// Member events dropped because the event channel was full (the reader is too slow).
    pub events_dropped: u64,
    /// Managers declared suspect (reported only: Raft owns manager leadership).
    pub managers_suspected: u64,
    /// Managers declared dead (reported only).
    pub managers_dead: u64,
    /// Workers declared dead.
    pub workers_dead: u64,
}

/// The published view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// This node's gossip id.
    pub id: u64,
    /// The bound UDP address.
    pub addr: SocketAddr,
    /// This node's role.
    pub role: &'static str,
    /// This node's incarnation.
    pub incarnation: u64,
    /// This node's coordinate.
    pub coordinate: Coordinate,
    /// True once the local coordinate's error is below the convergence threshold.
    pub converged: bool,
    /// Every other member, ordered by id.
    pub members: Vec<MemberView>,
    /// Metrics.
    pub metrics: GossipMetrics,
    /// When this view was taken, on the gossip clock (ms).
    pub at_ms: u64,
}

impl Snapshot {
    /// Builds the view from the state machine.
    pub(crate) fn take(
        membership: &Membership,
        addr: SocketAddr,
        role: Role,
        counters: &GossipMetrics,
        at_ms: u64,
    ) -> Snapshot {
        let local = membership.local_id();
        let members = membership
            .members()
            .into_iter()
            .map(|m| view(membership, local, m))
            .collect();
        Snapshot {
            id: local.0,
            addr,
            role: role_name(role),
            incarnation: membership.incarnation().0,
            coordinate: membership.coordinate().clone(),
            converged: membership.is_converged(),
            members,
            metrics: GossipMetrics {
                membership: membership.metrics(),
                ..counters.clone()
            },
            at_ms,
        }
    }

    /// One member by id.
    pub fn member(&self, id: u64) -> Option<&MemberView> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Every known coordinate: this node's first, then the members' in id order.
    pub fn coordinates(&self) -> Vec<NodeCoordinate> {
        let local = NodeCoordinate {
            id: self.id,
            coordinate: self.coordinate.clone(),
        };
        let peers = self.members.iter().filter_map(|m| {
            m.coordinate.as_ref().map(|c| NodeCoordinate {
                id: m.id,
                coordinate: c.clone(),
            })
        });
        std::iter::once(local).chain(peers).collect()
    }

    /// The coordinate of `id` (this node's own for its id), if known.
    pub fn coordinate_of(&self, id: u64) -> Option<&Coordinate> {
        if id == self.id {
            return Some(&self.coordinate);
        }
        self.member(id).and_then(|m| m.coordinate.as_ref())
    }
}

fn view(membership: &Membership, local: NodeId, m: Member) -> MemberView {
    let coordinate = membership.peer_coordinate(m.id).cloned();
    let rtt_ms = membership.estimate_rtt(local, m.id);
    MemberView {
        id: m.id.0,
        addr: m.addr,
        role: role_name(m.role),
        state: state_name(m.state),
        incarnation: m.incarnation.0,
        state_since_ms: m.state_since_ms,
        rtt_ms,
        quality: membership.quality(m.id),
        coordinate,
    }
}
