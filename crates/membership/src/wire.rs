//! The datagram format (ADR 0005): a 5-byte header, `b"STWM"` then a version byte, followed by
//! one bincode-2 (serde, standard config) encoded [`Packet`].
//!
//! ```text
//! 0      4        5
//! +------+--------+----------------------------------------------+
//! | STWM | ver=1  | bincode(Packet { sender, message, updates }) |
//! +------+--------+----------------------------------------------+
//! ```
//!
//! Decoding checks the size limit, the magic and the version before touching the body, bounds
//! bincode's allocations by the datagram size, and rejects trailing bytes. It never panics.
//! This module does not decide what a packet means; `membership` does.

use std::net::SocketAddr;

use bincode::config;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::{Incarnation, NodeId, Role};
use crate::vivaldi::Coordinate;

/// First four bytes of every membership datagram.
pub const MAGIC: [u8; 4] = *b"STWM";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Magic plus version.
pub const HEADER_BYTES: usize = 5;
/// Hard ceiling on any datagram we decode, whatever the config says (a UDP datagram's payload
/// cannot exceed it); it also bounds bincode's allocations.
pub const DATAGRAM_BYTES_MAX: usize = 65_507;

/// One datagram: who sent it, what it asks, and piggybacked membership updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Packet {
    /// Sender's identity.
    pub sender: NodeId,
    /// Where the sender listens (as it advertises itself).
    pub sender_addr: SocketAddr,
    /// Sender's role.
    pub sender_role: Role,
    /// Sender's current incarnation.
    pub sender_incarnation: Incarnation,
    /// The request or reply.
    pub message: Message,
    /// Gossip: piggybacked updates, or the full state in a push-pull exchange.
    pub updates: Vec<Update>,
}

/// The protocol messages. Variants are only ever appended (bincode encodes the index).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Are you alive? Carries the sender's coordinate and, under Lifeguard's buddy system, the
    /// incarnation at which the sender suspects the target, so it can refute at once.
    Ping {
        /// Probe sequence number, echoed in the ack.
        seq: u32,
        /// Who the sender believes it is pinging (an address may have changed hands).
        target: NodeId,
        /// Sender's Vivaldi coordinate.
        coordinate: Option<Coordinate>,
        /// Set when the sender suspects the target at this incarnation.
        suspicion: Option<Incarnation>,
    },
    /// Yes: answers a ping.
    Ack {
        /// The ping's sequence number.
        seq: u32,
        /// Responder's coordinate.
        coordinate: Option<Coordinate>,
    },
    /// Please ping `target` for me and tell me.
    PingReq {
        /// The requester's probe sequence number.
        seq: u32,
        /// Member to ping.
        target: NodeId,
        /// Its address.
        target_addr: SocketAddr,
    },
    /// `target` answered the ping you asked for.
    IndirectAck {
        /// The requester's sequence number.
        seq: u32,
        /// Member that answered.
        target: NodeId,
    },
    /// Lifeguard: I tried `target` for you and heard nothing (so I am alive and reachable).
    Nack {
        /// The requester's sequence number.
        seq: u32,
        /// Member that stayed silent.
        target: NodeId,
    },
    /// Nothing but piggybacked updates.
    Gossip,
    /// Full state exchange; `updates` holds (part of) the sender's member table.
    PushPull {
        /// The receiver should answer with its own state.
        reply: bool,
    },
}

/// What a gossiped update says about a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateKind {
    /// Alive at this incarnation.
    Alive,
    /// Suspected at this incarnation by `from`.
    Suspect {
        /// The suspecting member (independent confirmations are counted per sender).
        from: NodeId,
    },
    /// Declared dead at this incarnation by `from`.
    Dead {
        /// The declaring member.
        from: NodeId,
    },
    /// Left gracefully at this incarnation.
    Left,
}

/// One gossiped fact about a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// The member.
    pub id: NodeId,
    /// Its address.
    pub addr: SocketAddr,
    /// Its role.
    pub role: Role,
    /// The incarnation the fact is about.
    pub incarnation: Incarnation,
    /// The fact.
    pub kind: UpdateKind,
}

/// Encode `packet` with its header.
pub fn encode(packet: &Packet) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(&MAGIC);
    bytes.push(VERSION);
    let body = bincode::serde::encode_to_vec(packet, config::standard()).map_err(|e| {
        Error::Malformed {
            offset: HEADER_BYTES,
            reason: format!("encode: {e}"),
        }
    })?;
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Encoded size of one update (used to fill a datagram without overflowing it).
pub fn update_len(update: &Update) -> usize {
    bincode::serde::encode_to_vec(update, config::standard()).map_or(usize::MAX, |b| b.len())
}

/// Decode a datagram of at most `max_bytes`.
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Packet> {
    let max = max_bytes.min(DATAGRAM_BYTES_MAX);
    if bytes.len() > max {
        return Err(Error::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    if bytes.len() < HEADER_BYTES {
        return Err(Error::Truncated {
            len: bytes.len(),
            header: HEADER_BYTES,
        });
    }
    let mut found = [0u8; 4];
    found.copy_from_slice(&bytes[..4]);
    if found != MAGIC {
        return Err(Error::BadMagic {
            found,
            expected: MAGIC,
        });
    }
    if bytes[4] != VERSION {
        return Err(Error::UnsupportedVersion {
            found: bytes[4],
            supported: VERSION,
        });
    }
    let body = &bytes[HEADER_BYTES..];
    let limited = config::standard().with_limit::<DATAGRAM_BYTES_MAX>();
    let (packet, used): (Packet, usize) = bincode::serde::decode_from_slice(body, limited)
        .map_err(|e| Error::Malformed {
            offset: HEADER_BYTES,
            reason: e.to_string(),
        })?;
    if used != body.len() {
        return Err(Error::Malformed {
            offset: HEADER_BYTES + used,
            reason: format!("{} trailing bytes", body.len() - used),
        });
    }
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vivaldi::VivaldiConfig;
    use proptest::prelude::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn sample() -> Packet {
        Packet {
            sender: NodeId(7),
            sender_addr: addr(7000),
            sender_role: Role::Manager,
            sender_incarnation: Incarnation(3),
            message: Message::Ping {
                seq: 42,
                target: NodeId(8),
                coordinate: Some(Coordinate::origin(&VivaldiConfig::default())),
                suspicion: Some(Incarnation(1)),
            },
            updates: vec![Update {
                id: NodeId(9),
                addr: addr(9000),
                role: Role::Worker,
                incarnation: Incarnation(2),
                kind: UpdateKind::Suspect { from: NodeId(7) },
            }],
        }
    }

    #[test]
    fn roundtrip() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(&bytes[..4], b"STWM");
        assert_eq!(decode(&bytes, 1400).unwrap(), sample());
    }

    #[test]
    fn wrong_version_is_a_clear_error() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[4] = 2;
        assert_eq!(
            decode(&bytes, 1400),
            Err(Error::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        );
    }

    #[test]
    fn bad_magic_truncation_trailing_and_size_are_rejected() {
        let bytes = encode(&sample()).unwrap();
        assert!(matches!(
            decode(b"HTTP/1.1 200", 1400),
            Err(Error::BadMagic { .. })
        ));
        assert!(matches!(
            decode(&bytes[..3], 1400),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1], 1400),
            Err(Error::Malformed { .. })
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer, 1400),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(decode(&bytes, 10), Err(Error::TooLarge { .. })));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        ) {
            // The result is irrelevant: the property is that decoding returns at all.
            let _ignored = decode(&bytes, 1400);
        }

        #[test]
        fn decoding_mutated_packets_never_panics(
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 1..8),
        ) {
            let mut bytes = encode(&sample()).unwrap();
            for (at, value) in flips {
                let index = HEADER_BYTES + at % (bytes.len() - HEADER_BYTES);
                bytes[index] = value;
            }
            // Any outcome is fine as long as it is not a panic.
            let _ignored = decode(&bytes, 1400);
        }
    }
}
