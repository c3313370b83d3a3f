//! The crash-recovery harness: real `steward server` processes under a seeded workload and a
//! seeded nemesis (kill, pause, torn WAL tail, bit flip, partition, leader clock jump, power
//! loss), then
//! named invariant checks over the client-visible history and every node's final state.
//!
//! Layout: [`cluster`] owns processes and files, [`faults`] damages WAL files (with
//! [`page_cache`] telling what a power loss would take), [`nemesis`]
//! injects and heals faults, [`workload`] drives clients into a [`history`], [`observe`] reads
//! every node's final state (and replays its log offline), [`linearizability`] is the per-job
//! Wing–Gong checker, [`checks`] holds the invariants and [`run`] ties one seed together. It deliberately does not
//! simulate: everything runs for real on loopback, so timing is not reproducible, only choices.
#![deny(missing_docs)]

pub mod checks;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod linearizability;
pub mod nemesis;
pub mod observe;
pub mod page_cache;
pub mod run;
pub mod workload;

pub use run::{run, summary_table, Fault, RunConfig, Summary};
