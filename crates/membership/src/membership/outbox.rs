//! Building what leaves the state machine: datagrams (with as much piggybacked gossip as fits),
//! timers and member events. Nothing here decides protocol behaviour.

use std::net::SocketAddr;

use super::{Membership, TimerKind};
use crate::types::{Effect, Member, MemberEvent, TimerToken};
use crate::wire::{self, Message, Packet, Update, UpdateKind};

/// Bytes reserved for the growth of the updates' length prefix when updates are added.
const LENGTH_PREFIX_SLACK_BYTES: usize = 4;

impl Membership {
    /// Arm a timer for `kind` at `at_ms`.
    pub(super) fn set_timer(&mut self, at_ms: u64, kind: TimerKind) {
        self.next_timer += 1;
        let token = self.next_timer;
        self.timers.insert(token, kind);
        self.effects.push(Effect::SetTimer {
            token: TimerToken(token),
            at_ms,
        });
    }

    /// Arm a timer for `kind` in `delay_ms` (saturating: a clock near its end cannot wrap).
    pub(super) fn set_timer_in(&mut self, delay_ms: u64, kind: TimerKind) {
        self.set_timer(self.now_ms.saturating_add(delay_ms), kind);
    }

    /// Report a member event.
    pub(super) fn emit(&mut self, event: MemberEvent) {
        self.effects.push(Effect::Event(event));
    }

    /// An update describing ourselves.
    pub(super) fn self_update(&self, kind: UpdateKind) -> Update {
        Update {
            id: self.self_id,
            addr: self.self_addr,
            role: self.role,
            incarnation: self.incarnation,
            kind,
        }
    }

    /// An update describing `member` in its current state.
    pub(super) fn member_update(member: &Member, kind: UpdateKind) -> Update {
        Update {
            id: member.id,
            addr: member.addr,
            role: member.role,
            incarnation: member.incarnation,
            kind,
        }
    }

    /// How many times an update is piggybacked: `λ·ceil(log10(n + 1))`.
    pub(super) fn retransmit_limit(&self) -> u32 {
        let n = self.cluster_size() as f64;
        let scale = (n + 1.0).log10().ceil().max(1.0) as u32;
        self.config.retransmit_mult.saturating_mul(scale)
    }

    fn packet(&self, message: Message, updates: Vec<Update>) -> Packet {
        Packet {
            sender: self.self_id,
            sender_addr: self.self_addr,
            sender_role: self.role,
            sender_incarnation: self.incarnation,
            message,
            updates,
        }
    }

    /// Send `message` to `to` with as many pending gossip updates as fit.
    pub(super) fn send(&mut self, to: SocketAddr, message: Message) {
        let bare = self.packet(message, Vec::new());
        let Ok(bytes) = wire::encode(&bare) else {
            return;
        };
        let budget = self
            .config
            .packet_bytes_max
            .saturating_sub(bytes.len() + LENGTH_PREFIX_SLACK_BYTES);
        let limit = self.retransmit_limit();
        let updates = self.broadcasts.take(budget, limit);
        if updates.is_empty() {
            self.push_send(to, bytes);
        } else {
            self.send_with(to, bare.message, updates);
        }
    }

    /// Send `message` carrying exactly `updates` (the caller made sure they fit).
    pub(super) fn send_with(&mut self, to: SocketAddr, message: Message, updates: Vec<Update>) {
        let packet = self.packet(message, updates);
        if let Ok(bytes) = wire::encode(&packet) {
            self.push_send(to, bytes);
        }
    }

    fn push_send(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        self.metrics.packets_sent += 1;
        self.effects.push(Effect::Send { to, bytes });
    }

    /// Our whole table (ourselves first) as updates, split into datagram-sized chunks.
    pub(super) fn state_chunks(&self) -> Vec<Vec<Update>> {
        let mut all = vec![self.self_update(UpdateKind::Alive)];
        for member in self.members.values() {
            let kind = match member.state {
                crate::types::MemberState::Alive | crate::types::MemberState::Unconfirmed => {
                    UpdateKind::Alive
                }
                crate::types::MemberState::Suspect => UpdateKind::Suspect { from: self.self_id },
                crate::types::MemberState::Dead => UpdateKind::Dead { from: self.self_id },
                crate::types::MemberState::Left => UpdateKind::Left,
            };
            all.push(Self::member_update(member, kind));
        }
        let overhead = wire::encode(&self.packet(Message::PushPull { reply: true }, Vec::new()))
            .map_or(64, |b| b.len())
            + LENGTH_PREFIX_SLACK_BYTES;
        let budget = self.config.packet_bytes_max.saturating_sub(overhead);
        let mut chunks = Vec::new();
        let mut current = Vec::new();
        let mut used = 0;
        for update in all {
            let len = wire::update_len(&update);
            if used + len > budget && !current.is_empty() {
                chunks.push(std::mem::take(&mut current));
                used = 0;
            }
            used += len;
            current.push(update);
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        chunks
    }

    /// Send our full state to `to`; only the first chunk asks for a reply.
    pub(super) fn send_state(&mut self, to: SocketAddr, reply: bool) {
        for (index, chunk) in self.state_chunks().into_iter().enumerate() {
            self.send_with(
                to,
                Message::PushPull {
                    reply: reply && index == 0,
                },
                chunk,
            );
        }
    }
}
