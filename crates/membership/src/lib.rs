//! Sans-IO SWIM failure detection with Lifeguard, UNCONFIRMED peers with role-aware
//! confirmation, and Vivaldi network coordinates.
//!
//! The caller owns the socket and the clock. It feeds [`Membership`] datagrams
//! ([`Membership::handle_packet`]), expired timers ([`Membership::handle_timer`]) and the
//! current time in milliseconds, and performs the [`Effect`]s it gets back: send a datagram,
//! set a timer, report a [`MemberEvent`]. Randomness comes from a seed, so a run is
//! reproducible; the simulator in `tests/` relies on that.
//!
//! Layout: `types` (ids, states, effects), `config`, `wire` (the datagram format, ADR 0005),
//! `vivaldi` (coordinates), `lifeguard` (local health and suspicion timeout arithmetic),
//! `gossip` (the piggyback queue), `membership` (the state machine), `metrics`, `error`.
//!
//! The adapter's loop, in outline (the node's UDP task):
//!
//! ```text
//! let mut m = Membership::new(config, id, bind_addr, role, seed)?;
//! apply(m.join(&seeds, now_ms()));
//! loop {
//!     select! {
//!         (bytes, from) = socket.recv_from() => apply(m.handle_packet(from, &bytes, now_ms())),
//!         token = timers.next_expired()      => apply(m.handle_timer(token, now_ms())),
//!     }
//! }
//! // apply: Send → socket.send_to; SetTimer → timers.insert(at_ms, token) (never cancelled,
//! // stale tokens are ignored); Event → metrics, logs, WorkerLost for a dead worker.
//! ```
//!
//! Not here: sockets, tokio, HTTP endpoints: the node's UDP adapter wraps this crate.
#![deny(missing_docs)]

mod config;
mod error;
mod gossip;
mod lifeguard;
mod membership;
mod metrics;
mod rng;
mod types;
pub mod vivaldi;
pub mod wire;

pub use config::{Config, ConfirmationConfig, RoleConfirmation, DURATION_MAX_MS, PACKET_BYTES_MIN};
pub use error::{Error, Result};
pub use lifeguard::{suspicion_base_ms, suspicion_timeout_ms};
pub use membership::Membership;
pub use metrics::Metrics;
pub use types::{Effect, Incarnation, Member, MemberEvent, MemberState, NodeId, Role, TimerToken};
pub use vivaldi::{Coordinate, Vivaldi, VivaldiConfig};
