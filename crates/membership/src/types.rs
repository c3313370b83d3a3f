//! Identifiers, roles, member states and the effects the state machine asks its caller to
//! perform. Plain data: no behaviour beyond small helpers.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A node's stable identity in the cluster (chosen by the caller, unique per node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// A member's incarnation: only the member itself raises it, to refute suspicion or to rejoin.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Incarnation(pub u64);

impl Incarnation {
    /// The next incarnation (saturating: a member cannot outlive `u64::MAX` refutations).
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

/// What a node does in the cluster; decides how an UNCONFIRMED peer is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Routes jobs across datacenters (later tier).
    Gate,
    /// Member of the Raft manager group.
    Manager,
    /// Runs workflows; protected from confirmation probes.
    Worker,
}

/// A member's lifecycle state as seen by the local node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberState {
    /// Learned by gossip and not yet heard from directly: never suspected, never declared dead.
    Unconfirmed,
    /// Answering probes.
    Alive,
    /// Missed a probe; declared dead unless it refutes in time.
    Suspect,
    /// Declared dead; only a higher incarnation brings it back.
    Dead,
    /// Left gracefully.
    Left,
}

/// A snapshot of one member as the local node sees it (serde so the node can serve it as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Identity.
    pub id: NodeId,
    /// Where to send its packets.
    pub addr: SocketAddr,
    /// Its role.
    pub role: Role,
    /// Latest incarnation heard.
    pub incarnation: Incarnation,
    /// Current state.
    pub state: MemberState,
    /// When (caller's clock, ms) it entered this state.
    pub state_since_ms: u64,
}

/// Something that happened to a member, for the caller to act on (the node appends `WorkerLost`
/// when a worker is declared dead, for example). Each carries the member after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// A member was learned (UNCONFIRMED if by gossip, ALIVE if it spoke to us directly).
    Joined(Member),
    /// An UNCONFIRMED member answered us directly and is now ALIVE.
    Confirmed(Member),
    /// A member missed its probes and is suspected.
    Suspect(Member),
    /// A suspicion was refuted: the member is ALIVE again with a higher incarnation.
    Refuted(Member),
    /// A member was declared dead.
    Dead(Member),
    /// A member came back from DEAD or LEFT with a higher incarnation.
    Rejoined(Member),
    /// A member left gracefully.
    Left(Member),
    /// A member was dropped from the table (an UNCONFIRMED peer that never answered, or a dead
    /// or departed one after its retention time).
    Removed(Member),
}

/// Opaque handle of a timer the state machine asked for; hand it back to
/// [`crate::Membership::handle_timer`] once `at_ms` has passed. A token that no longer means
/// anything (a probe that already finished) is ignored, so timers never need cancelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerToken(pub u64);

/// What the caller must do on behalf of the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send one datagram.
    Send {
        /// Destination.
        to: SocketAddr,
        /// The encoded packet (at most `Config::packet_bytes_max`).
        bytes: Vec<u8>,
    },
    /// Call `handle_timer(token, now)` once the clock reaches `at_ms`.
    SetTimer {
        /// Token to hand back.
        token: TimerToken,
        /// Deadline on the caller's clock, in milliseconds.
        at_ms: u64,
    },
    /// A member changed state.
    Event(MemberEvent),
}
