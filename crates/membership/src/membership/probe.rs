//! The periodic rounds: the SWIM probe cycle (ping, then ping-req through `indirect_probes`
//! peers, then suspicion), relaying pings for others (with Lifeguard nacks), the gossip round
//! and the push-pull state exchange. Applying the resulting facts is `state`'s job.

use super::{Membership, OutstandingPing, ProbeRound, Purpose, TimerKind};
use crate::types::{MemberState, NodeId};
use crate::wire::{Message, UpdateKind};

/// A relay sends its nack after this share of the base (unscaled) probe timeout.
const RELAY_NACK_PERCENT: u64 = 80;

/// Suspects queued for an out-of-turn probe.
const URGENT_PROBES_MAX: usize = 4;

impl Membership {
    /// Probe timeout for `peer`: the base, scaled by LHM × latency × confidence.
    pub(super) fn probe_timeout_ms(&self, peer: NodeId) -> u64 {
        (self.config.probe_timeout_ms as f64 * self.timeout_scale(peer)).round() as u64
    }

    /// Probe interval, scaled by the local health multiplier under Lifeguard.
    fn probe_interval_ms(&self) -> u64 {
        let scale = if self.config.lifeguard {
            self.health.multiplier()
        } else {
            1.0
        };
        (self.config.probe_interval_ms as f64 * scale).round() as u64
    }

    /// Next member in the shuffled round-robin order, reshuffling after a full pass.
    fn next_probe_target(&mut self) -> Option<NodeId> {
        for _ in 0..2 {
            while self.probe_index < self.probe_order.len() {
                let id = self.probe_order[self.probe_index];
                self.probe_index += 1;
                let probeable = self
                    .members
                    .get(&id)
                    .is_some_and(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect));
                let in_flight = self.probes.values().any(|p| p.target == id);
                if probeable && !in_flight {
                    return Some(id);
                }
            }
            let mut order = self.live_peers();
            self.rng.shuffle(&mut order);
            self.probe_order = order;
            self.probe_index = 0;
        }
        None
    }

    /// Probe `id` next (Lifeguard mode): a member suspected by someone else is checked by us
    /// at once, which both confirms a real failure quickly (independent confirmations shrink
    /// the suspicion timeout) and carries the suspicion to the member so it can refute.
    /// The queue is small and deduplicated, and it takes at most every other probe, so a
    /// storm of false suspicions (heavy loss) cannot starve the round-robin.
    pub(super) fn probe_soon(&mut self, id: NodeId) {
        if !self.config.lifeguard || self.urgent.contains(&id) {
            return;
        }
        if self.urgent.len() >= URGENT_PROBES_MAX {
            self.urgent.remove(0);
        }
        self.urgent.push(id);
    }

    /// The next urgent probe target still worth probing (a member still SUSPECT).
    fn next_urgent_target(&mut self) -> Option<NodeId> {
        while !self.urgent.is_empty() {
            let id = self.urgent.remove(0);
            if self
                .members
                .get(&id)
                .is_some_and(|m| m.state == MemberState::Suspect)
            {
                return Some(id);
            }
        }
        None
    }

    /// Send a ping to `target` for `purpose`; returns its sequence number.
    pub(super) fn send_ping(&mut self, target: NodeId, purpose: Purpose) -> Option<u32> {
        let member = self.members.get(&target)?;
        let addr = member.addr;
        let suspicion = (self.config.lifeguard && member.state == MemberState::Suspect)
            .then_some(member.incarnation);
        if suspicion.is_some() {
            // Buddy system: the suspicion about the target travels first in line.
            self.broadcasts.prioritise(target);
        }
        let seq = self.next_seq();
        self.pings.insert(
            seq,
            OutstandingPing {
                target,
                sent_ms: self.now_ms,
                purpose,
            },
        );
        let coordinate = Some(self.vivaldi.coordinate().clone());
        self.send(
            addr,
            Message::Ping {
                seq,
                target,
                coordinate,
                suspicion,
            },
        );
        Some(seq)
    }

    pub(super) fn probe_tick(&mut self) {
        let interval = self.probe_interval_ms();
        let urgent = if self.last_probe_urgent {
            None
        } else {
            self.next_urgent_target()
        };
        self.last_probe_urgent = urgent.is_some();
        let Some(target) = urgent.or_else(|| self.next_probe_target()) else {
            self.set_timer_in(interval, TimerKind::ProbeTick);
            return;
        };
        let Some(seq) = self.send_ping(target, Purpose::Probe) else {
            self.set_timer_in(interval, TimerKind::ProbeTick);
            return;
        };
        self.metrics.probes_sent += 1;
        let round = ProbeRound {
            target,
            acked: false,
            expected_nacks: 0,
            nacks: 0,
        };
        self.probes.insert(seq, round);
        let timeout = self.probe_timeout_ms(target);
        // The indirect phase gets as long as the direct one (relays nack within 80% of it).
        // The next probe starts after one interval whatever this one's timeout: a distant or
        // unknown peer's long timeout must not slow the probing of everyone else.
        self.set_timer_in(timeout, TimerKind::ProbeDirectTimeout { seq });
        self.set_timer_in(
            interval.max(timeout.saturating_mul(2)),
            TimerKind::ProbeEnd { seq },
        );
        self.set_timer_in(interval, TimerKind::ProbeTick);
    }

    pub(super) fn probe_direct_timeout(&mut self, seq: u32) {
        let Some(probe) = self.probes.get(&seq).filter(|p| !p.acked) else {
            return;
        };
        let target = probe.target;
        let Some(target_addr) = self.members.get(&target).map(|m| m.addr) else {
            return;
        };
        let helpers: Vec<NodeId> = self
            .live_peers()
            .into_iter()
            .filter(|id| *id != target)
            .filter(|id| {
                self.members
                    .get(id)
                    .is_some_and(|m| m.state == MemberState::Alive)
            })
            .collect();
        let chosen = self.rng.choose(&helpers, self.config.indirect_probes);
        for helper in &chosen {
            if let Some(addr) = self.members.get(helper).map(|m| m.addr) {
                self.metrics.indirect_probes_sent += 1;
                self.send(
                    addr,
                    Message::PingReq {
                        seq,
                        target,
                        target_addr,
                    },
                );
            }
        }
        if let Some(probe) = self.probes.get_mut(&seq) {
            if self.config.lifeguard {
                probe.expected_nacks = chosen.len() as u32;
            }
        }
    }

    pub(super) fn probe_end(&mut self, seq: u32) {
        self.pings.remove(&seq);
        let Some(probe) = self.probes.remove(&seq) else {
            return;
        };
        if probe.acked {
            self.health.apply(-1);
        } else {
            self.metrics.probes_failed += 1;
            // Lifeguard: a missed nack means we (not the target) may be the slow one.
            let delta = if probe.expected_nacks > 0 {
                i64::from(probe.expected_nacks.saturating_sub(probe.nacks))
            } else {
                1
            };
            if self.config.lifeguard {
                self.health.apply(delta);
            }
            self.suspect_locally(probe.target);
        }
    }

    /// A ping-req from `origin`: ping the target ourselves and report back.
    pub(super) fn relay_ping(
        &mut self,
        origin: std::net::SocketAddr,
        origin_seq: u32,
        target: NodeId,
        target_addr: std::net::SocketAddr,
    ) {
        let seq = self.next_seq();
        self.pings.insert(
            seq,
            OutstandingPing {
                target,
                sent_ms: self.now_ms,
                purpose: Purpose::Relay { origin, origin_seq },
            },
        );
        let coordinate = Some(self.vivaldi.coordinate().clone());
        self.send(
            target_addr,
            Message::Ping {
                seq,
                target,
                coordinate,
                suspicion: None,
            },
        );
        // The nack promises the requester that we, the relay, are healthy. Its window after
        // the ping-req is at least its own scaled probe timeout, so at least the base timeout
        // (every scale factor is >= 1); we nack at 80% of the base, unscaled. Scaling it by
        // our own health multiplier would make our nack late whenever *we* are unhealthy, and
        // a healthy requester would count it as missed and raise its own score: a slow node
        // would spread its slowness to everyone it relays for.
        let nack_ms = self.config.probe_timeout_ms * RELAY_NACK_PERCENT / 100;
        self.set_timer_in(nack_ms.max(1), TimerKind::RelayNack { seq });
        // The target's ack is still awaited (and forwarded) for our full adaptive timeout, so
        // a distant or slow target that answers after the nack is still vouched for.
        let timeout = self.probe_timeout_ms(target).max(nack_ms);
        self.set_timer_in(timeout.max(1), TimerKind::RelayTimeout { seq });
    }

    /// The relayed ping is still unanswered at the nack time: tell the requester (Lifeguard).
    pub(super) fn relay_nack(&mut self, seq: u32) {
        let Some(ping) = self.pings.get(&seq) else {
            return;
        };
        if let Purpose::Relay { origin, origin_seq } = ping.purpose {
            if self.config.lifeguard {
                let target = ping.target;
                self.metrics.nacks_sent += 1;
                self.send(
                    origin,
                    Message::Nack {
                        seq: origin_seq,
                        target,
                    },
                );
            }
        }
    }

    /// The relayed ping was never answered: stop waiting for it.
    pub(super) fn relay_timeout(&mut self, seq: u32) {
        self.pings.remove(&seq);
    }

    pub(super) fn gossip_tick(&mut self) {
        if !self.broadcasts.is_empty() {
            let peers = self.live_peers();
            for id in self.rng.choose(&peers, self.config.gossip_fanout) {
                if let Some(addr) = self.members.get(&id).map(|m| m.addr) {
                    self.send(addr, Message::Gossip);
                }
            }
        }
        self.set_timer_in(self.config.gossip_interval_ms, TimerKind::Gossip);
    }

    pub(super) fn push_pull_tick(&mut self) {
        // One live member, and (reconnect) one member we believe dead but not departed: after
        // a partition heals this is how both sides learn the other is alive, each refuting the
        // death it reads in the other's state.
        for state in [MemberState::Alive, MemberState::Dead] {
            let candidates: Vec<NodeId> = self
                .members
                .values()
                .filter(|m| m.state == state)
                .map(|m| m.id)
                .collect();
            if let Some(id) = self.rng.choose(&candidates, 1).first() {
                if let Some(addr) = self.members.get(id).map(|m| m.addr) {
                    self.send_state(addr, true);
                }
            }
        }
        self.set_timer_in(self.config.push_pull_interval_ms, TimerKind::PushPull);
    }

    /// Send our state to every seed, and retry later while none has answered.
    pub(super) fn contact_seeds(&mut self) {
        let any_alive = self.members.values().any(|m| m.state == MemberState::Alive);
        if any_alive || self.seeds.is_empty() {
            return;
        }
        for seed in self.seeds.clone() {
            self.send_state(seed, true);
        }
        self.set_timer_in(self.config.join_retry_ms, TimerKind::JoinRetry);
    }

    /// Gossip a fact about ourselves.
    pub(super) fn gossip_self(&mut self, kind: UpdateKind) {
        let update = self.self_update(kind);
        self.broadcasts.push(update);
    }
}
