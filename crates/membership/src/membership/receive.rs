//! Incoming datagrams: decode (dropping and counting what does not), learn from the sender's
//! own header, merge piggybacked updates, then act on the message.

use std::net::SocketAddr;

use super::{Membership, Purpose};
use crate::error::Error;
use crate::types::{MemberState, NodeId};
use crate::vivaldi::Coordinate;
use crate::wire::{self, Message, Packet, Update, UpdateKind};

/// A measured RTT of 0 ms means "below the clock's resolution"; count it as half a tick.
const SUB_RESOLUTION_RTT_MS: f64 = 0.5;

impl Membership {
    pub(super) fn receive(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.metrics.packets_received += 1;
        let packet = match wire::decode(bytes, self.config.packet_bytes_max) {
            Ok(packet) => packet,
            Err(Error::UnsupportedVersion { .. }) => {
                self.metrics.version_mismatches += 1;
                return;
            }
            Err(_) => {
                self.metrics.malformed_packets_dropped += 1;
                return;
            }
        };
        if packet.sender == self.self_id {
            return;
        }
        self.direct_contact(&packet);
        let push_pull = matches!(packet.message, Message::PushPull { .. });
        for update in &packet.updates {
            self.apply_update(update, push_pull);
        }
        self.dispatch(from, packet);
    }

    /// The sender's header is an authoritative ALIVE claim about itself, and proof that it can
    /// reach us: it confirms an UNCONFIRMED sender and introduces an unknown one.
    fn direct_contact(&mut self, packet: &Packet) {
        let claim = Update {
            id: packet.sender,
            addr: packet.sender_addr,
            role: packet.sender_role,
            incarnation: packet.sender_incarnation,
            kind: UpdateKind::Alive,
        };
        self.apply_alive(&claim, true);
        // A member we hold DEAD is talking to us without having refuted: make sure our reply
        // carries its death, so it refutes (with a higher incarnation) right away.
        if let Some(member) = self.members.get(&packet.sender) {
            if member.state == MemberState::Dead {
                let update = Self::member_update(member, UpdateKind::Dead { from: self.self_id });
                // A fresh entry goes first in line.
                self.broadcasts.push(update);
            }
        }
    }

    fn dispatch(&mut self, from: SocketAddr, packet: Packet) {
        let sender = packet.sender;
        match packet.message {
            Message::Ping {
                seq,
                target,
                coordinate,
                suspicion,
            } => {
                if target != self.self_id {
                    return;
                }
                if let Some(incarnation) = suspicion {
                    self.refute(incarnation);
                }
                if let Some(coordinate) = coordinate {
                    self.vivaldi.record_peer(sender, &coordinate, self.now_ms);
                }
                let coordinate = Some(self.vivaldi.coordinate().clone());
                self.send(from, Message::Ack { seq, coordinate });
            }
            Message::Ack { seq, coordinate } => self.on_ack(sender, seq, coordinate),
            Message::PingReq {
                seq,
                target,
                target_addr,
            } => {
                if target != self.self_id {
                    self.relay_ping(from, seq, target, target_addr);
                }
            }
            Message::IndirectAck { seq, target } => {
                if let Some(probe) = self.probes.get_mut(&seq) {
                    if probe.target == target {
                        probe.acked = true;
                    }
                }
            }
            Message::Nack { seq, .. } => {
                if let Some(probe) = self.probes.get_mut(&seq) {
                    probe.nacks += 1;
                    self.metrics.nacks_received += 1;
                }
            }
            Message::Gossip => {}
            Message::PushPull { reply } => {
                if reply {
                    self.send_state(from, false);
                }
            }
        }
    }

    fn on_ack(&mut self, sender: NodeId, seq: u32, coordinate: Option<Coordinate>) {
        let Some(ping) = self.pings.get(&seq).cloned() else {
            return;
        };
        if ping.target != sender {
            return;
        }
        if let Some(coordinate) = coordinate {
            let elapsed_ms = self.now_ms.saturating_sub(ping.sent_ms);
            let rtt_ms = if elapsed_ms == 0 {
                SUB_RESOLUTION_RTT_MS
            } else {
                elapsed_ms as f64
            };
            if self
                .vivaldi
                .observe(sender, &coordinate, rtt_ms, self.now_ms)
                .is_err()
            {
                self.metrics.rtt_samples_rejected += 1;
            }
        }
        match ping.purpose {
            Purpose::Probe => {
                if let Some(probe) = self.probes.get_mut(&seq) {
                    probe.acked = true;
                }
            }
            Purpose::Confirm => {
                self.pings.remove(&seq);
            }
            Purpose::Relay { origin, origin_seq } => {
                self.pings.remove(&seq);
                self.send(
                    origin,
                    Message::IndirectAck {
                        seq: origin_seq,
                        target: sender,
                    },
                );
            }
        }
        if self
            .members
            .get(&sender)
            .is_some_and(|m| m.state == MemberState::Unconfirmed)
        {
            self.confirm(sender);
        }
    }
}
