//! Our `Membership` as a simulated node: node index `i` is `NodeId(i)` at 127.0.0.1:(10000+i)
//! (addresses are labels here; nothing is sent on a real network).

use std::net::SocketAddr;

use steward_membership::{Config, Effect, MemberEvent, MemberState, Membership, NodeId, Role};

use super::{Obs, Out, SimNode, View};

const BASE_PORT: u16 = 10_000;

/// The simulated address of node `i`.
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], BASE_PORT + i as u16))
}

fn index(addr: SocketAddr) -> usize {
    usize::from(addr.port().saturating_sub(BASE_PORT))
}

/// A node running this crate's state machine.
pub struct OurNode {
    /// The state machine, for checks that look inside.
    pub membership: Membership,
}

impl OurNode {
    /// Node `i` with `config`, `role` and a seed derived from `seed` and `i`.
    pub fn new(i: usize, config: Config, role: Role, seed: u64) -> Self {
        let membership = Membership::new(
            config,
            NodeId(i as u64),
            addr(i),
            role,
            seed.wrapping_mul(0x100_0000_01B3) ^ i as u64,
        )
        .unwrap_or_else(|e| panic!("simulator config rejected: {e}"));
        Self { membership }
    }

    fn absorb(effects: Vec<Effect>, out: &mut Out) {
        for effect in effects {
            match effect {
                Effect::Send { to, bytes } => out.sends.push((index(to), bytes)),
                Effect::SetTimer { token, at_ms } => out.timers.push((at_ms, token.0)),
                Effect::Event(event) => {
                    let (member, obs) = match event {
                        MemberEvent::Dead(m) => (m, Obs::Down),
                        MemberEvent::Suspect(m) => (m, Obs::Suspect),
                        MemberEvent::Confirmed(m)
                        | MemberEvent::Refuted(m)
                        | MemberEvent::Rejoined(m) => (m, Obs::Up),
                        MemberEvent::Joined(m) if m.state == MemberState::Alive => (m, Obs::Up),
                        MemberEvent::Removed(m) => (m, Obs::Removed),
                        _ => continue,
                    };
                    out.events.push((member.id.0 as usize, obs));
                }
            }
        }
    }
}

impl SimNode for OurNode {
    fn start(&mut self, seeds: &[usize], now: u64, out: &mut Out) {
        let seeds: Vec<SocketAddr> = seeds.iter().map(|s| addr(*s)).collect();
        Self::absorb(self.membership.join(&seeds, now), out);
    }

    fn packet(&mut self, from: usize, bytes: &[u8], now: u64, out: &mut Out) {
        Self::absorb(self.membership.handle_packet(addr(from), bytes, now), out);
    }

    fn timer(&mut self, token: u64, now: u64, out: &mut Out) {
        let token = steward_membership::TimerToken(token);
        Self::absorb(self.membership.handle_timer(token, now), out);
    }

    fn view(&self) -> Vec<(usize, View)> {
        self.membership
            .members()
            .into_iter()
            .map(|m| {
                let view = match m.state {
                    MemberState::Alive | MemberState::Suspect => View::Member,
                    MemberState::Unconfirmed => View::Unconfirmed,
                    MemberState::Dead | MemberState::Left => View::Down,
                };
                (m.id.0 as usize, view)
            })
            .collect()
    }
}
