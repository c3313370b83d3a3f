//! openraft's own storage test suite against the real storage: the WAL-backed log store and the
//! sled-backed state machine, in a fresh tempdir per case.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageError, StorageIOError};
use steward_log::{SyncPolicy, Wal, WalOptions};
use steward_node::raft::log_store::LogStore;
use steward_node::raft::state_machine::StateMachineStore;
use steward_node::raft::{NodeId, TypeConfig};
use tempfile::TempDir;

struct RealStorage;

fn storage_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write(AnyError::error(e.to_string())).into()
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RealStorage {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let tmp = tempfile::tempdir().map_err(storage_err)?;
        let wal_dir = tmp.path().join("wal");
        let options = WalOptions {
            // Tiny segments so purges delete whole files and leave readable leftovers.
            segment_bytes_max: steward_log::SEGMENT_BYTES_MAX_MIN,
            sync_policy: SyncPolicy::Always,
            ..WalOptions::default()
        };
        let (wal, _report) = Wal::open(&wal_dir, options).map_err(storage_err)?;
        let log = LogStore::new(Arc::new(wal), &wal_dir)
            .await
            .map_err(storage_err)?;
        let sm = StateMachineStore::open(
            &tmp.path().join("sled"),
            &tmp.path().join("snapshots"),
            None,
        )
        .map_err(storage_err)?;
        Ok((tmp, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes_on_wal_and_sled() {
    Suite::test_all(RealStorage).unwrap();
}
