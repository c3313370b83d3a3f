//! steward's runtime: openraft glue, the Raft TCP transport, leader duties and (from the api
//! helper) the HTTP API.
//!
//! Layout: [`config`] is what a manager needs to start; `node.rs` wires storage, openraft, the
//! transport and the duties into [`Node`]; `raft/` holds the openraft type configuration and the
//! two storage adapters (log store over `steward-log`, state machine over
//! `steward-statemachine` + sled); [`transport`] is the framed TCP protocol between managers;
//! `duties/` runs what only the leader does. This crate is the only one that sees tokio,
//! openraft, sled and sockets.
#![deny(missing_docs)]

pub mod api;
pub mod client;
pub mod config;
mod duties;
mod error;
pub mod gossip;
mod node;
pub mod raft;
pub mod transport;
pub mod worker;

pub use config::{NodeConfig, PeerConfig, SyncPolicyConfig};
pub use error::{Error, Result};
pub use node::{Consistency, Node};
pub use raft::status::{ClusterStatus, MemberStatus, NodeMetrics, TransferReport};
