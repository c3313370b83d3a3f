//! The raft-engine 0.4 peer: each append is one `LogBatch` holding one entry, written with
//! `sync = true`.
//!
//! Each appender thread is its own Raft group (region id = appender + 1, entry index = its `seq`),
//! which is how TiKV drives raft-engine and lets its write barrier group-commit concurrent
//! writers. This is raft-engine's most favourable shape; steward-log, with one log and one index
//! sequence, is compared against it. It does not read, compact or purge.

use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use protobuf::well_known_types::BytesValue;
use raft_engine::{Config, Engine, LogBatch, MessageExt};

use super::target::Target;

/// Bytes in front of the payload inside an entry: the log index and the term, as a Raft entry
/// carries them (raft-rs' `Entry` has both as protobuf fields).
const ENTRY_HEADER_BYTES: usize = 16;

/// Tells raft-engine how to find the index of an entry.
///
/// raft-engine stores protobuf 2 messages. Rather than depend on raft-proto for its `Entry`, an
/// entry here is protobuf's own `BytesValue` whose value starts with the little-endian index and
/// term, followed by the payload (see ADR 0006).
#[derive(Clone, Copy)]
pub struct BenchEntries;

impl MessageExt for BenchEntries {
    type Entry = BytesValue;

    fn index(entry: &BytesValue) -> u64 {
        // Every entry this module writes starts with its index; an entry too short to hold
        // one cannot come from here, and index 0 is never used by a writer.
        entry
            .value
            .get(..8)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }
}

/// A raft-engine instance with default configuration (128 MiB files, no compression below
/// 8 KiB batches), recovering nothing because it starts in an empty directory.
pub struct RaftEngine {
    engine: Engine,
}

impl RaftEngine {
    /// Opens raft-engine in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<RaftEngine> {
        let config = Config {
            dir: dir.display().to_string(),
            ..Config::default()
        };
        let engine = Engine::open(config)
            .with_context(|| format!("open raft-engine in {}", dir.display()))?;
        Ok(RaftEngine { engine })
    }
}

impl Target for RaftEngine {
    fn append(&self, appender: usize, seq: u64, payload: &Bytes) -> anyhow::Result<()> {
        let mut value = Vec::with_capacity(ENTRY_HEADER_BYTES + payload.len());
        value.extend_from_slice(&seq.to_le_bytes());
        // Term 1 for every entry: the benchmark never changes leader.
        value.extend_from_slice(&1u64.to_le_bytes());
        value.extend_from_slice(payload);
        let entry = BytesValue {
            value,
            ..BytesValue::default()
        };
        let region_id = appender as u64 + 1;
        let mut batch = LogBatch::with_capacity(1);
        batch
            .add_entries::<BenchEntries>(region_id, &[entry])
            .context("raft-engine add_entries")?;
        self.engine
            .write(&mut batch, true)
            .context("raft-engine write(sync = true)")?;
        Ok(())
    }

    fn durability_note(&self) -> &'static str {
        "one LogBatch per append, write(sync = true): fdatasync, group commit across regions"
    }
}
