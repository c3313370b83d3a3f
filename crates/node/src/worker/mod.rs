//! Workers: the agent that runs workflows as child processes (`steward worker`), and the wire
//! protocol it speaks with the managers (JSON over HTTP, ADR 0010).
//!
//! Layout: [`process`] runs one child in its own process group and keeps its output [`tail`];
//! [`protocol`] holds the wire types and the state-derived instructions; [`agent`] registers,
//! polls and starts attempts (`attempt.rs`), talking to managers through `link.rs`, and serves
//! logs (`endpoint.rs`); [`hub`] is the leader's memory of heartbeats. The manager routes live
//! in `api/workers.rs`, the dispatch duty in `duties/dispatch.rs`.
//!
//! It deliberately does not decide anything the state machine decides (dispatch, retries,
//! timeouts): the agent only runs what the replicated state says and reports what happened.

pub mod agent;
mod attempt;
mod endpoint;
pub mod error;
pub mod hub;
mod link;
pub mod process;
pub mod protocol;
pub mod tail;

pub use agent::{run, AgentConfig};
pub use error::{Error, Result};
pub use link::base_url;
