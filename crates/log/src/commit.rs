//! Group commit: the leader/follower protocol that lets concurrent appenders share one `write`
//! and one `fdatasync`. Deciding what to write (contiguity, segment rolls) is `wal`'s job; this
//! module only moves buffered frames to the file and waits for them to be durable.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fs::write_all_at;
use crate::wal::{lock, State, Wal};

/// Where group commit stands (behind `Wal::sync`).
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    /// `State::written_bytes` covered by the last completed sync.
    pub synced_bytes: u64,
    pub synced_records: u64,
    /// An appender is running `fdatasync` for the group right now.
    pub syncing: bool,
}

impl Wal {
    /// Blocks until a sync covers write position `target`. The first waiter with nothing in
    /// flight becomes the syncer for everyone written so far (leader/follower group commit).
    pub(crate) fn wait_synced(&self, target: u64, delay: Option<Duration>) -> Result<()> {
        let mut sync = lock(&self.sync);
        loop {
            self.check_poison()?;
            if sync.synced_bytes >= target {
                return Ok(());
            }
            if sync.syncing {
                sync = self
                    .synced
                    .wait(sync)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            sync.syncing = true;
            drop(sync);
            if let Some(delay) = delay {
                std::thread::sleep(delay);
            }
            let result = self.sync_active();
            sync = lock(&self.sync);
            sync.syncing = false;
            self.synced.notify_all();
            if let Err(e) = result {
                return Err(self.poison_with(e));
            }
        }
    }

    /// Runs `fdatasync` on the active segment for everything written so far.
    fn sync_active(&self) -> Result<()> {
        let (active, bytes, records) = {
            let mut st = lock(&self.state);
            self.flush_pending(&mut st)?;
            let active = st
                .segments
                .last()
                .map(|s| (Arc::clone(&s.file), s.path.clone()));
            (active, st.written_bytes, st.written_records)
        };
        let started = Instant::now();
        if let Some((file, path)) = active {
            file.sync_data()
                .map_err(|e| Error::io("fdatasync", &path, e))?;
        }
        self.mark_synced(started.elapsed(), bytes, records);
        Ok(())
    }

    pub(crate) fn mark_synced(&self, latency: Duration, bytes: u64, records: u64) {
        let mut sync = lock(&self.sync);
        if bytes > sync.synced_bytes {
            self.metrics
                .record_sync(latency, records - sync.synced_records);
            sync.synced_bytes = bytes;
            sync.synced_records = records;
            self.synced.notify_all();
        }
    }

    /// Writes the buffered frames to the active segment's file (one `write`). Every path that
    /// reads or changes the file calls this first.
    pub(crate) fn flush_pending(&self, st: &mut State) -> Result<()> {
        if st.pending.is_empty() {
            return Ok(());
        }
        // After a failure the file's state is unknown; never write over it again.
        self.check_poison()?;
        let Some(seg) = st.segments.last_mut() else {
            unreachable!("pending frames belong to the active segment");
        };
        if let Err(e) = write_all_at(seg.file.as_ref(), &st.pending, seg.flushed_end) {
            return Err(self.poison_with(Error::io("write segment", &seg.path, e)));
        }
        seg.flushed_end = seg.data_end;
        st.pending.clear();
        Ok(())
    }
}
