//! The `foca` crate (version 2) as a simulated node, driven through its own `Runtime` trait,
//! with a tiny hand-written codec. Two configurations: [`matched_config`] gives foca the same
//! budgets as ours (the fair comparison), [`lan_defaults`] is foca's `Config::new_lan(n)`.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU32, NonZeroU8, NonZeroUsize};
use std::time::Duration;

use bytes::{Buf, BufMut};
use foca::{
    Codec, Config, Foca, Header, Identity, Member, Message, NoCustomBroadcast, Notification,
    PeriodicParams, Runtime, State, Timer,
};
use rand_foca::rngs::SmallRng;
use rand_foca::SeedableRng;

use super::{Obs, Out, SimNode, View};

/// foca's own LAN defaults for a cluster of `n` (memberlist's LAN profile): 1 s probes, 500 ms
/// probe timeout, 3 indirect probes, and a fixed suspicion of `4 × max(1, log10 n)` probe
/// periods, shorter than our minimum (`suspicion_mult` 5).
pub fn lan_defaults(n: usize) -> Config {
    Config::new_lan(NonZeroU32::new(n.max(1) as u32).unwrap_or(NonZeroU32::MIN))
}

/// foca with the same budgets as `ours` in a cluster of `n`: probe period, probe timeout and
/// indirect probes; a suspicion of `suspicion_mult × max(1, log10 n)` probe periods, which is
/// our plain SWIM's fixed timeout and the floor of our Lifeguard timeout; as many
/// retransmissions per update as ours (`λ·ceil(log10(n + 1))`, more than foca's
/// `floor(4·log10(n + 1))`); our gossip round, and a periodic announce at our push-pull
/// interval. foca has no Lifeguard, so nothing stretches its suspicion: this is plain SWIM
/// with our numbers.
pub fn matched_config(ours: &steward_membership::Config, n: usize) -> Config {
    let size = n.max(1);
    let suspicion_ms =
        steward_membership::suspicion_base_ms(ours.suspicion_mult, size, ours.probe_interval_ms);
    let retransmits = ours.retransmit_mult * ((size as f64 + 1.0).log10().ceil().max(1.0) as u32);
    let members = |count: usize| NonZeroUsize::new(count).unwrap_or(NonZeroUsize::MIN);
    Config {
        probe_period: Duration::from_millis(ours.probe_interval_ms),
        probe_rtt: Duration::from_millis(ours.probe_timeout_ms),
        num_indirect_probes: members(ours.indirect_probes),
        max_transmissions: NonZeroU8::new(u8::try_from(retransmits).unwrap_or(u8::MAX))
            .unwrap_or(NonZeroU8::MIN),
        suspect_to_down_after: Duration::from_millis(suspicion_ms.round() as u64),
        periodic_gossip: Some(PeriodicParams {
            frequency: Duration::from_millis(ours.gossip_interval_ms),
            num_members: members(ours.gossip_fanout),
        }),
        periodic_announce: Some(PeriodicParams {
            frequency: Duration::from_millis(ours.push_pull_interval_ms),
            num_members: members(1),
        }),
        ..lan_defaults(size)
    }
}

/// Node index plus a generation that foca bumps (`renew`) to rejoin after being declared down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FocaId {
    index: u32,
    generation: u32,
}

impl Identity for FocaId {
    type Addr = u32;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            index: self.index,
            generation: self.generation.wrapping_add(1),
        })
    }

    fn addr(&self) -> u32 {
        self.index
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// Decoding error of the simulator's foca codec.
#[derive(Debug)]
pub struct CodecError(&'static str);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for CodecError {}

/// Fixed-width little-endian encoding of foca's header and member types.
pub struct SimCodec;

fn need(buf: &impl Buf, n: usize) -> Result<(), CodecError> {
    if buf.remaining() < n {
        Err(CodecError("truncated"))
    } else {
        Ok(())
    }
}

fn put_id(buf: &mut impl BufMut, id: &FocaId) {
    buf.put_u32_le(id.index);
    buf.put_u32_le(id.generation);
}

fn get_id(buf: &mut impl Buf) -> Result<FocaId, CodecError> {
    need(buf, 8)?;
    Ok(FocaId {
        index: buf.get_u32_le(),
        generation: buf.get_u32_le(),
    })
}

impl Codec<FocaId> for SimCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        header: &Header<FocaId>,
        mut buf: impl BufMut,
    ) -> Result<(), CodecError> {
        if buf.remaining_mut() < 64 {
            return Err(CodecError("buffer full"));
        }
        put_id(&mut buf, &header.src);
        buf.put_u16_le(header.src_incarnation);
        put_id(&mut buf, &header.dst);
        let (tag, extra) = match &header.message {
            Message::Ping(n) => (0u8, Some((None, *n))),
            Message::Ack(n) => (1, Some((None, *n))),
            Message::PingReq {
                target,
                probe_number,
            } => (2, Some((Some(*target), *probe_number))),
            Message::IndirectPing {
                origin,
                probe_number,
            } => (3, Some((Some(*origin), *probe_number))),
            Message::IndirectAck {
                target,
                probe_number,
            } => (4, Some((Some(*target), *probe_number))),
            Message::ForwardedAck {
                origin,
                probe_number,
            } => (5, Some((Some(*origin), *probe_number))),
            Message::Announce => (6, None),
            Message::Feed => (7, None),
            Message::Gossip => (8, None),
            Message::Broadcast => (9, None),
            Message::TurnUndead => (10, None),
        };
        buf.put_u8(tag);
        if let Some((id, probe_number)) = extra {
            if let Some(id) = id {
                put_id(&mut buf, &id);
            }
            buf.put_u8(probe_number);
        }
        Ok(())
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<FocaId>, CodecError> {
        let src = get_id(&mut buf)?;
        need(&buf, 2)?;
        let src_incarnation = buf.get_u16_le();
        let dst = get_id(&mut buf)?;
        need(&buf, 1)?;
        let tag = buf.get_u8();
        let message = match tag {
            0 | 1 => {
                need(&buf, 1)?;
                let n = buf.get_u8();
                if tag == 0 {
                    Message::Ping(n)
                } else {
                    Message::Ack(n)
                }
            }
            2..=5 => {
                let id = get_id(&mut buf)?;
                need(&buf, 1)?;
                let probe_number = buf.get_u8();
                match tag {
                    2 => Message::PingReq {
                        target: id,
                        probe_number,
                    },
                    3 => Message::IndirectPing {
                        origin: id,
                        probe_number,
                    },
                    4 => Message::IndirectAck {
                        target: id,
                        probe_number,
                    },
                    _ => Message::ForwardedAck {
                        origin: id,
                        probe_number,
                    },
                }
            }
            6 => Message::Announce,
            7 => Message::Feed,
            8 => Message::Gossip,
            9 => Message::Broadcast,
            10 => Message::TurnUndead,
            _ => return Err(CodecError("unknown message tag")),
        };
        Ok(Header {
            src,
            src_incarnation,
            dst,
            message,
        })
    }

    fn encode_member(
        &mut self,
        member: &Member<FocaId>,
        mut buf: impl BufMut,
    ) -> Result<(), CodecError> {
        if buf.remaining_mut() < 11 {
            return Err(CodecError("buffer full"));
        }
        put_id(&mut buf, member.id());
        buf.put_u16_le(member.incarnation());
        buf.put_u8(match member.state() {
            State::Alive => 0,
            State::Suspect => 1,
            State::Down => 2,
        });
        Ok(())
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<Member<FocaId>, CodecError> {
        let id = get_id(&mut buf)?;
        need(&buf, 3)?;
        let incarnation = buf.get_u16_le();
        let state = match buf.get_u8() {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Down,
            _ => return Err(CodecError("unknown member state")),
        };
        Ok(Member::new(id, incarnation, state))
    }
}

/// The `Runtime` foca calls back into: collects sends, timers and notifications for one step.
struct StepRuntime<'a> {
    now: u64,
    out: &'a mut Out,
    timers: &'a mut BTreeMap<u64, Timer<FocaId>>,
    next_token: &'a mut u64,
}

impl Runtime<FocaId> for StepRuntime<'_> {
    fn notify(&mut self, notification: Notification<'_, FocaId>) {
        match notification {
            Notification::MemberUp(id) => self.out.events.push((id.index as usize, Obs::Up)),
            Notification::MemberDown(id) => self.out.events.push((id.index as usize, Obs::Down)),
            _ => {}
        }
    }

    fn send_to(&mut self, to: FocaId, data: &[u8]) {
        self.out.sends.push((to.index as usize, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<FocaId>, after: Duration) {
        *self.next_token += 1;
        self.timers.insert(*self.next_token, event);
        let at = self.now + u64::try_from(after.as_millis()).unwrap_or(u64::MAX / 2);
        self.out.timers.push((at, *self.next_token));
    }
}

/// A node running foca.
pub struct FocaNode {
    foca: Foca<FocaId, SimCodec, SmallRng, NoCustomBroadcast>,
    timers: BTreeMap<u64, Timer<FocaId>>,
    next_token: u64,
    /// Errors foca returned (malformed packets and the like).
    pub errors: u64,
}

impl FocaNode {
    /// Node `i` with `config`.
    pub fn new(i: usize, config: Config, generation: u32, seed: u64) -> Self {
        let id = FocaId {
            index: i as u32,
            generation,
        };
        let rng = SmallRng::seed_from_u64(seed.wrapping_mul(0x100_0000_01B3) ^ i as u64);
        Self {
            foca: Foca::new(id, config, rng, SimCodec),
            timers: BTreeMap::new(),
            next_token: 0,
            errors: 0,
        }
    }

    fn step(
        &mut self,
        now: u64,
        out: &mut Out,
        f: impl FnOnce(
            &mut Foca<FocaId, SimCodec, SmallRng, NoCustomBroadcast>,
            StepRuntime<'_>,
        ) -> Result<(), foca::Error>,
    ) {
        let runtime = StepRuntime {
            now,
            out,
            timers: &mut self.timers,
            next_token: &mut self.next_token,
        };
        if f(&mut self.foca, runtime).is_err() {
            self.errors += 1;
        }
    }
}

impl SimNode for FocaNode {
    fn start(&mut self, seeds: &[usize], now: u64, out: &mut Out) {
        for seed in seeds {
            let dst = FocaId {
                index: *seed as u32,
                generation: 0,
            };
            self.step(now, out, |foca, rt| foca.announce(dst, rt));
        }
    }

    fn packet(&mut self, _from: usize, bytes: &[u8], now: u64, out: &mut Out) {
        self.step(now, out, |foca, rt| foca.handle_data(bytes, rt));
    }

    fn timer(&mut self, token: u64, now: u64, out: &mut Out) {
        if let Some(timer) = self.timers.remove(&token) {
            self.step(now, out, |foca, rt| foca.handle_timer(timer, rt));
        }
    }

    fn view(&self) -> Vec<(usize, View)> {
        self.foca
            .iter_members()
            .map(|m| (m.id().index as usize, View::Member))
            .collect()
    }
}
