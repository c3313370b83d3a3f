//! The SWIM + Lifeguard state machine. Inputs are packets, timer tokens and the caller's clock;
//! outputs are [`Effect`]s. It owns its member table, its probe rotation, its gossip queue and
//! its Vivaldi coordinate, and never touches a socket or a clock.
//!
//! Layout: this file holds the struct, construction, the public entry points and the queries;
//! `probe` runs the probe cycle (ping, ping-req, nack, gossip and push-pull rounds), `receive`
//! dispatches decoded packets, `state` applies membership facts (suspicion, refutation, death,
//! leave), `confirm` handles UNCONFIRMED peers, `outbox` builds datagrams and timers.

mod confirm;
mod outbox;
mod probe;
mod receive;
mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::Config;
use crate::error::Result;
use crate::gossip::Broadcasts;
use crate::lifeguard::LocalHealth;
use crate::metrics::Metrics;
use crate::rng::Rng;
use crate::types::{Effect, Incarnation, Member, MemberState, NodeId, Role, TimerToken};
use crate::vivaldi::{Coordinate, Vivaldi};
use crate::wire::{Message, UpdateKind};

/// Why a ping we sent is outstanding.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    /// Our own periodic probe.
    Probe,
    /// A proactive confirmation of an UNCONFIRMED peer.
    Confirm,
    /// A ping on behalf of `origin` (ping-req), whose probe is `origin_seq`.
    Relay { origin: SocketAddr, origin_seq: u32 },
}

#[derive(Debug, Clone)]
struct OutstandingPing {
    target: NodeId,
    sent_ms: u64,
    purpose: Purpose,
}

/// The probe in progress.
#[derive(Debug, Clone)]
struct ProbeRound {
    target: NodeId,
    acked: bool,
    expected_nacks: u32,
    nacks: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    ProbeTick,
    ProbeDirectTimeout { seq: u32 },
    ProbeEnd { seq: u32 },
    RelayNack { seq: u32 },
    RelayTimeout { seq: u32 },
    ConfirmTimeout { seq: u32 },
    Suspicion { id: NodeId },
    Gossip,
    PushPull,
    JoinRetry,
    ConfirmAttempt { id: NodeId },
    ConfirmExpire { id: NodeId },
    Reap { id: NodeId, since_ms: u64 },
}

#[derive(Debug, Clone)]
struct Suspicion {
    incarnation: Incarnation,
    started_ms: u64,
    min_ms: f64,
    max_ms: f64,
    k: u32,
    confirmers: Vec<NodeId>,
    deadline_ms: u64,
}

/// One node's view of the cluster and its protocol state. See the crate docs for the loop.
#[derive(Debug)]
pub struct Membership {
    config: Config,
    self_id: NodeId,
    self_addr: SocketAddr,
    role: Role,
    incarnation: Incarnation,
    members: BTreeMap<NodeId, Member>,
    rng: Rng,
    vivaldi: Vivaldi,
    health: LocalHealth,
    broadcasts: Broadcasts,
    timers: BTreeMap<u64, TimerKind>,
    next_timer: u64,
    next_seq: u32,
    pings: BTreeMap<u32, OutstandingPing>,
    /// Probes in flight, by sequence number (a slow peer's long timeout must not hold up
    /// the probing of the others).
    probes: BTreeMap<u32, ProbeRound>,
    probe_order: Vec<NodeId>,
    probe_index: usize,
    /// Suspects to probe out of turn (Lifeguard mode), and whether the last probe was one.
    urgent: Vec<NodeId>,
    last_probe_urgent: bool,
    suspicions: BTreeMap<NodeId, Suspicion>,
    /// UNCONFIRMED members and the proactive attempts made so far.
    pending: BTreeMap<NodeId, u32>,
    seeds: Vec<SocketAddr>,
    last_refute_ms: Option<u64>,
    now_ms: u64,
    started: bool,
    left: bool,
    metrics: Metrics,
    effects: Vec<Effect>,
}

impl Membership {
    /// A node that knows nobody yet. Nothing happens until [`Membership::join`]. Fails only on
    /// an invalid config.
    pub fn new(
        config: Config,
        self_id: NodeId,
        self_addr: SocketAddr,
        role: Role,
        seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        // A distinct stream for Vivaldi so coordinate updates do not shift probe orders.
        let vivaldi = Vivaldi::new(config.vivaldi.clone(), seed ^ 0x5649_5641_4C44_4931);
        Ok(Self {
            health: LocalHealth::new(config.lhm_max),
            config,
            self_id,
            self_addr,
            role,
            incarnation: Incarnation(0),
            members: BTreeMap::new(),
            rng: Rng::new(seed),
            vivaldi,
            broadcasts: Broadcasts::default(),
            timers: BTreeMap::new(),
            next_timer: 0,
            next_seq: 0,
            pings: BTreeMap::new(),
            probes: BTreeMap::new(),
            probe_order: Vec::new(),
            probe_index: 0,
            urgent: Vec::new(),
            last_probe_urgent: false,
            suspicions: BTreeMap::new(),
            pending: BTreeMap::new(),
            seeds: Vec::new(),
            last_refute_ms: None,
            now_ms: 0,
            started: false,
            left: false,
            metrics: Metrics::default(),
            effects: Vec::new(),
        })
    }

    /// Start the protocol: contact `seeds` (a push-pull state exchange with each, retried
    /// until one answers) and arm the probe, gossip and push-pull timers. An empty list starts
    /// a new cluster.
    pub fn join(&mut self, seeds: &[SocketAddr], now_ms: u64) -> Vec<Effect> {
        self.now_ms = now_ms;
        if self.left {
            return Vec::new();
        }
        self.seeds = seeds
            .iter()
            .copied()
            .filter(|s| *s != self.self_addr)
            .collect();
        self.contact_seeds();
        if !self.started {
            self.started = true;
            let jitter = self.rng.below(self.config.probe_interval_ms as usize) as u64;
            self.set_timer_in(jitter, TimerKind::ProbeTick);
            if self.config.gossip_interval_ms > 0 {
                self.set_timer_in(self.config.gossip_interval_ms, TimerKind::Gossip);
            }
            if self.config.push_pull_interval_ms > 0 {
                self.set_timer_in(self.config.push_pull_interval_ms, TimerKind::PushPull);
            }
        }
        std::mem::take(&mut self.effects)
    }

    /// Leave gracefully: announce LEFT (at a higher incarnation) to every live member, then
    /// stop. Later inputs are ignored.
    pub fn leave(&mut self, now_ms: u64) -> Vec<Effect> {
        self.now_ms = now_ms;
        if self.left {
            return Vec::new();
        }
        self.incarnation = self.incarnation.next();
        let update = self.self_update(UpdateKind::Left);
        let targets: Vec<SocketAddr> = self
            .members
            .values()
            .filter(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
            .map(|m| m.addr)
            .collect();
        for to in targets {
            self.send_with(to, Message::Gossip, vec![update]);
        }
        self.left = true;
        self.timers.clear();
        std::mem::take(&mut self.effects)
    }

    /// Handle one datagram received from `from`. Malformed packets are dropped and counted.
    pub fn handle_packet(&mut self, from: SocketAddr, bytes: &[u8], now_ms: u64) -> Vec<Effect> {
        self.now_ms = now_ms;
        if !self.left {
            self.receive(from, bytes);
        }
        std::mem::take(&mut self.effects)
    }

    /// Handle a timer set earlier through [`Effect::SetTimer`]. Unknown or stale tokens are
    /// ignored.
    pub fn handle_timer(&mut self, token: TimerToken, now_ms: u64) -> Vec<Effect> {
        self.now_ms = now_ms;
        if let Some(kind) = self.timers.remove(&token.0) {
            if !self.left {
                self.fire(kind);
            }
        }
        std::mem::take(&mut self.effects)
    }

    fn fire(&mut self, kind: TimerKind) {
        match kind {
            TimerKind::ProbeTick => self.probe_tick(),
            TimerKind::ProbeDirectTimeout { seq } => self.probe_direct_timeout(seq),
            TimerKind::ProbeEnd { seq } => self.probe_end(seq),
            TimerKind::RelayNack { seq } => self.relay_nack(seq),
            TimerKind::RelayTimeout { seq } => self.relay_timeout(seq),
            TimerKind::ConfirmTimeout { seq } => {
                self.pings.remove(&seq);
            }
            TimerKind::Suspicion { id } => self.suspicion_timer(id),
            TimerKind::Gossip => self.gossip_tick(),
            TimerKind::PushPull => self.push_pull_tick(),
            TimerKind::JoinRetry => self.contact_seeds(),
            TimerKind::ConfirmAttempt { id } => self.confirm_attempt(id),
            TimerKind::ConfirmExpire { id } => self.confirm_expire(id),
            TimerKind::Reap { id, since_ms } => self.reap(id, since_ms),
        }
    }

    /// This node's identity.
    pub fn local_id(&self) -> NodeId {
        self.self_id
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// True after [`Membership::leave`].
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Every member other than ourselves, ordered by id.
    pub fn members(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    /// One member's snapshot.
    pub fn member(&self, id: NodeId) -> Option<Member> {
        self.members.get(&id).cloned()
    }

    /// Local health score, `0..=lhm_max` (timeouts are multiplied by `1 + score`).
    pub fn local_health(&self) -> u32 {
        self.health.score()
    }

    /// The local Vivaldi coordinate.
    pub fn coordinate(&self) -> &Coordinate {
        self.vivaldi.coordinate()
    }

    /// The latest coordinate heard from `peer`.
    pub fn peer_coordinate(&self, peer: NodeId) -> Option<&Coordinate> {
        self.vivaldi.peer_coordinate(peer)
    }

    /// Estimated RTT between `a` and `b` (either may be ourselves), ms; `None` if either has
    /// no coordinate yet.
    pub fn estimate_rtt(&self, a: NodeId, b: NodeId) -> Option<f64> {
        self.vivaldi.estimate_between(self.self_id, a, b)
    }

    /// Upper confidence bound of the RTT to `peer`, clamped to `[rtt_min, rtt_max]`, ms.
    pub fn rtt_ucb(&self, peer: NodeId) -> f64 {
        self.vivaldi.rtt_ucb_ms(peer)
    }

    /// Trust in the coordinate estimate to `peer`, `0..=1`, at the latest time seen.
    pub fn quality(&self, peer: NodeId) -> f64 {
        self.vivaldi.quality(peer, self.now_ms)
    }

    /// True once the local coordinate's error is below the convergence threshold.
    pub fn is_converged(&self) -> bool {
        self.vivaldi.is_converged()
    }

    /// The current metrics.
    pub fn metrics(&self) -> Metrics {
        let mut metrics = self.metrics.clone();
        let count = |state| self.members.values().filter(|m| m.state == state).count();
        metrics.members_unconfirmed = count(MemberState::Unconfirmed);
        metrics.members_alive = count(MemberState::Alive);
        metrics.members_suspect = count(MemberState::Suspect);
        metrics.members_dead = count(MemberState::Dead);
        metrics.members_left = count(MemberState::Left);
        metrics.lhm_score = self.health.score();
        metrics.coordinate_error = self.vivaldi.coordinate().error;
        metrics.coordinate_updates = self.vivaldi.updates();
        metrics
    }

    /// The timeout scale for `peer`: LHM × latency multiplier × confidence (each factor only
    /// when its feature is on).
    fn timeout_scale(&self, peer: NodeId) -> f64 {
        let mut scale = 1.0;
        if self.config.lifeguard {
            scale *= self.health.multiplier();
        }
        if self.config.adaptive_timeouts {
            let (ucb, quality) = self.peer_latency(peer);
            let latency =
                (ucb / self.config.reference_rtt_ms).clamp(1.0, self.config.latency_multiplier_max);
            let confidence = 1.0 + (1.0 - quality) * 0.5;
            scale *= latency * confidence;
        }
        scale
    }

    /// `rtt_ucb` and quality for `peer`. A peer without a coordinate gets the mean `rtt_ucb`
    /// of the peers we have coordinates for (quality 0), not the 100 ms WAN default: inside
    /// one cluster the typical peer is a better guess (ADR 0005).
    fn peer_latency(&self, peer: NodeId) -> (f64, f64) {
        if self.vivaldi.peer_coordinate(peer).is_some() {
            return (
                self.vivaldi.rtt_ucb_ms(peer),
                self.vivaldi.quality(peer, self.now_ms),
            );
        }
        let known: Vec<f64> = self
            .members
            .keys()
            .filter(|id| self.vivaldi.peer_coordinate(**id).is_some())
            .map(|id| self.vivaldi.rtt_ucb_ms(*id))
            .collect();
        if known.is_empty() {
            (self.vivaldi.rtt_ucb_ms(peer), 0.0)
        } else {
            (known.iter().sum::<f64>() / known.len() as f64, 0.0)
        }
    }

    /// Members that are not dead or gone, plus ourselves: the `n` of the SWIM formulas.
    fn cluster_size(&self) -> usize {
        1 + self
            .members
            .values()
            .filter(|m| {
                matches!(
                    m.state,
                    MemberState::Alive | MemberState::Suspect | MemberState::Unconfirmed
                )
            })
            .count()
    }

    /// Members we may probe, gossip to or ask for help: ALIVE or SUSPECT.
    fn live_peers(&self) -> Vec<NodeId> {
        self.members
            .values()
            .filter(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
            .map(|m| m.id)
            .collect()
    }

    /// A fresh probe sequence number.
    fn next_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }
}
