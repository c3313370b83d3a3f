//! The state machine through its public API, one exchange at a time: bad datagrams are
//! dropped and counted, pings are acked with a coordinate, a suspicion carried by a ping is
//! refuted at once (buddy system), a relay's nack does not wait on the relay's own health, a
//! graceful leave is seen as LEFT, stale timers are no-ops.

use std::net::SocketAddr;

use steward_membership::wire::{decode, encode, Message, Packet, UpdateKind};
use steward_membership::{
    Config, Effect, Incarnation, MemberEvent, MemberState, Membership, NodeId, Role, TimerToken,
};

fn addr(id: u64) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 30_000 + id as u16))
}

fn node(id: u64) -> Membership {
    Membership::new(Config::default(), NodeId(id), addr(id), Role::Manager, id)
        .unwrap_or_else(|e| panic!("default config rejected: {e}"))
}

fn sends(effects: &[Effect]) -> Vec<(SocketAddr, Packet)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to, bytes } => Some((
                *to,
                decode(bytes, 1400).unwrap_or_else(|e| panic!("sent garbage: {e}")),
            )),
            _ => None,
        })
        .collect()
}

fn ping(from: u64, to: u64, suspicion: Option<Incarnation>) -> Vec<u8> {
    encode(&Packet {
        sender: NodeId(from),
        sender_addr: addr(from),
        sender_role: Role::Manager,
        sender_incarnation: Incarnation(0),
        message: Message::Ping {
            seq: 9,
            target: NodeId(to),
            coordinate: None,
            suspicion,
        },
        updates: Vec::new(),
    })
    .unwrap_or_else(|e| panic!("encode: {e}"))
}

#[test]
fn malformed_and_foreign_version_packets_are_dropped_and_counted() {
    let mut a = node(1);
    assert!(a
        .handle_packet(addr(2), b"GET / HTTP/1.1\r\n", 0)
        .is_empty());
    assert!(a.handle_packet(addr(2), &[], 0).is_empty());
    let mut future = ping(2, 1, None);
    future[4] = 9;
    assert!(a.handle_packet(addr(2), &future, 0).is_empty());
    let metrics = a.metrics();
    assert_eq!(metrics.malformed_packets_dropped, 2);
    assert_eq!(metrics.version_mismatches, 1);
    assert!(a.members().is_empty());
}

#[test]
fn a_ping_is_acked_with_our_coordinate_and_introduces_the_sender() {
    let mut a = node(1);
    let effects = a.handle_packet(addr(2), &ping(2, 1, None), 5);
    let sent = sends(&effects);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, addr(2));
    assert!(matches!(
        sent[0].1.message,
        Message::Ack {
            seq: 9,
            coordinate: Some(_)
        }
    ));
    assert_eq!(a.member(NodeId(2)).unwrap().state, MemberState::Alive);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Event(MemberEvent::Joined(_)))));
}

#[test]
fn a_ping_for_another_node_is_not_acked() {
    let mut a = node(1);
    assert!(sends(&a.handle_packet(addr(2), &ping(2, 3, None), 5)).is_empty());
}

#[test]
fn a_suspicion_carried_by_a_ping_is_refuted_at_once() {
    let mut a = node(1);
    let effects = a.handle_packet(addr(2), &ping(2, 1, Some(Incarnation(0))), 5);
    assert_eq!(a.incarnation(), Incarnation(1));
    assert_eq!(a.metrics().refutations, 1);
    let (_, ack) = &sends(&effects)[0];
    assert_eq!(ack.sender_incarnation, Incarnation(1));
    assert!(ack
        .updates
        .iter()
        .any(|u| u.id == NodeId(1) && u.kind == UpdateKind::Alive && u.incarnation.0 == 1));
}

fn packet_from(from: u64, message: Message) -> Vec<u8> {
    encode(&Packet {
        sender: NodeId(from),
        sender_addr: addr(from),
        sender_role: Role::Manager,
        sender_incarnation: Incarnation(0),
        message,
        updates: Vec::new(),
    })
    .unwrap_or_else(|e| panic!("encode: {e}"))
}

fn timers(effects: &[Effect]) -> Vec<(u64, TimerToken)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SetTimer { token, at_ms } => Some((*at_ms, *token)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_unhealthy_relay_still_nacks_within_the_requesters_window_and_forwards_a_late_ack() {
    // The relay refutes five suspicions about itself: its local health score rises to 5
    // (timeouts × 6).
    let config = Config {
        refute_interval_ms: 0,
        ..Config::default()
    };
    let mut relay = Membership::new(config.clone(), NodeId(1), addr(1), Role::Manager, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    for claim in 0..5 {
        relay.handle_packet(addr(2), &ping(2, 1, Some(Incarnation(claim))), 0);
    }
    assert_eq!(relay.local_health(), 5);
    let start = 1_000;
    let request = Message::PingReq {
        seq: 77,
        target: NodeId(3),
        target_addr: addr(3),
    };
    let effects = relay.handle_packet(addr(2), &packet_from(2, request), start);
    let relayed_seq = sends(&effects)
        .into_iter()
        .find_map(|(to, p)| match p.message {
            Message::Ping { seq, .. } if to == addr(3) => Some(seq),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the relay did not ping the target"));
    // The requester's indirect window is at least the base probe timeout (500 ms); the nack
    // comes at 80% of it, not 80% of the relay's own scaled timeout (2 400 ms).
    let mut pending = timers(&effects);
    pending.sort();
    let (nack_at, nack_token) = pending[0];
    assert_eq!(nack_at - start, config.probe_timeout_ms * 8 / 10);
    let nack = relay.handle_timer(nack_token, nack_at);
    assert!(sends(&nack).iter().any(|(to, p)| *to == addr(2)
        && matches!(p.message, Message::Nack { seq: 77, target } if target == NodeId(3))));
    // The target answers after the nack but within the relay's own timeout: still vouched for.
    let ack = Message::Ack {
        seq: relayed_seq,
        coordinate: None,
    };
    let late = relay.handle_packet(addr(3), &packet_from(3, ack), nack_at + 300);
    assert!(sends(&late).iter().any(|(to, p)| *to == addr(2)
        && matches!(p.message, Message::IndirectAck { seq: 77, target } if target == NodeId(3))));
}

#[test]
fn a_graceful_leave_is_seen_as_left_not_dead() {
    let mut a = node(1);
    let mut b = node(2);
    a.handle_packet(addr(2), &ping(2, 1, None), 0);
    let effects = a.leave(10);
    let leave = effects
        .iter()
        .find_map(|e| match e {
            Effect::Send { to, bytes } if *to == addr(2) => Some(bytes.clone()),
            _ => None,
        })
        .unwrap();
    b.handle_packet(addr(3), &ping(3, 2, None), 0);
    let events = b.handle_packet(addr(1), &leave, 11);
    assert!(events
        .iter()
        .any(|e| matches!(e, Effect::Event(MemberEvent::Left(m)) if m.id == NodeId(1))));
    assert!(!events
        .iter()
        .any(|e| matches!(e, Effect::Event(MemberEvent::Dead(_)))));
    assert_eq!(b.member(NodeId(1)).unwrap().state, MemberState::Left);
    assert!(a.has_left());
    assert!(a.handle_packet(addr(2), &ping(2, 1, None), 12).is_empty());
}

#[test]
fn unknown_timer_tokens_are_ignored() {
    let mut a = node(1);
    assert!(a.handle_timer(TimerToken(12_345), 0).is_empty());
}

#[test]
fn join_contacts_seeds_and_arms_timers() {
    let mut a = node(1);
    let effects = a.join(&[addr(2)], 0);
    let sent = sends(&effects);
    assert!(matches!(
        sent[0].1.message,
        Message::PushPull { reply: true }
    ));
    let timers = effects
        .iter()
        .filter(|e| matches!(e, Effect::SetTimer { .. }))
        .count();
    assert!(
        timers >= 3,
        "probe, gossip, push-pull and join retry timers: {timers}"
    );
}

#[test]
fn an_invalid_config_is_refused() {
    let config = Config {
        packet_bytes_max: 100,
        ..Config::default()
    };
    assert!(Membership::new(config, NodeId(1), addr(1), Role::Worker, 1).is_err());
}

mod fuzz {
    //! Random but well-formed datagrams and timer firings: the state machine never panics and
    //! never lists itself as a member.

    use super::*;
    use proptest::prelude::*;
    use steward_membership::wire::{Update, UpdateKind};

    fn id() -> impl Strategy<Value = u64> {
        0u64..6
    }

    fn update() -> impl Strategy<Value = Update> {
        (id(), 0u64..5, 0u8..4, id(), 0u8..3).prop_map(|(i, inc, k, from, role)| Update {
            id: NodeId(i),
            addr: addr(i),
            role: [Role::Gate, Role::Manager, Role::Worker][role as usize],
            incarnation: Incarnation(inc),
            kind: match k {
                0 => UpdateKind::Alive,
                1 => UpdateKind::Suspect { from: NodeId(from) },
                2 => UpdateKind::Dead { from: NodeId(from) },
                _ => UpdateKind::Left,
            },
        })
    }

    fn message() -> impl Strategy<Value = Message> {
        (0u8..7, 0u32..20, id(), any::<bool>()).prop_map(|(k, seq, target, flag)| match k {
            0 => Message::Ping {
                seq,
                target: NodeId(target),
                coordinate: None,
                suspicion: flag.then_some(Incarnation(u64::from(seq % 3))),
            },
            1 => Message::Ack {
                seq,
                coordinate: None,
            },
            2 => Message::PingReq {
                seq,
                target: NodeId(target),
                target_addr: addr(target),
            },
            3 => Message::IndirectAck {
                seq,
                target: NodeId(target),
            },
            4 => Message::Nack {
                seq,
                target: NodeId(target),
            },
            5 => Message::Gossip,
            _ => Message::PushPull { reply: flag },
        })
    }

    #[derive(Debug, Clone)]
    enum Step {
        Packet {
            sender: u64,
            incarnation: u64,
            message: Message,
            updates: Vec<Update>,
        },
        Timer(usize),
        Leave,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (id(), 0u64..5, message(), proptest::collection::vec(update(), 0..4)).prop_map(
                |(sender, incarnation, message, updates)| Step::Packet {
                    sender,
                    incarnation,
                    message,
                    updates
                }
            ),
            4 => (0usize..64).prop_map(Step::Timer),
            1 => Just(Step::Leave),
        ]
    }

    proptest! {
        #[test]
        fn random_traffic_never_panics(steps in proptest::collection::vec(step(), 1..60)) {
            let mut node = node(0);
            let mut timers: Vec<TimerToken> = Vec::new();
            let mut now = 0u64;
            let collect = |effects: Vec<Effect>, timers: &mut Vec<TimerToken>| {
                for effect in effects {
                    if let Effect::SetTimer { token, .. } = effect {
                        timers.push(token);
                    }
                }
            };
            collect(node.join(&[addr(1)], now), &mut timers);
            for step in steps {
                now += 137;
                match step {
                    Step::Packet { sender, incarnation, message, updates } => {
                        let bytes = encode(&Packet {
                            sender: NodeId(sender),
                            sender_addr: addr(sender),
                            sender_role: Role::Manager,
                            sender_incarnation: Incarnation(incarnation),
                            message,
                            updates,
                        })
                        .unwrap_or_else(|e| panic!("encode: {e}"));
                        collect(node.handle_packet(addr(sender), &bytes, now), &mut timers);
                    }
                    Step::Timer(i) => {
                        if !timers.is_empty() {
                            let token = timers.remove(i % timers.len());
                            collect(node.handle_timer(token, now), &mut timers);
                        }
                    }
                    Step::Leave => collect(node.leave(now), &mut timers),
                }
                prop_assert!(node.member(NodeId(0)).is_none(), "listed itself");
            }
        }
    }
}
