//! Group commit: the leader/follower protocol that lets concurrent appenders share one `write`
//! and one `fdatasync`. Deciding what to write (contiguity, segment rolls) is `wal`'s job; this
//! module only moves buffered frames to the file, waits for them to be durable, and wakes the
//! appenders a sync covers.
//!
//! Waking is targeted: each parked appender is on a list with the write position it waits for,
//! and a completed sync wakes exactly the appenders it covers, plus one not covered (if any) to
//! run the next sync. A shared condition variable would wake every parked appender after every
//! sync, and with 64 appenders those futile wake-ups (each a context switch) cost more CPU than
//! everything else an append does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, Thread};
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
    /// Appenders parked until a sync covers their position. Only ever joined while `syncing`
    /// is set, so whoever clears it (or poisons the log) finds and wakes them.
    waiters: Vec<Waiter>,
}

/// A parked appender and the write position it waits for.
#[derive(Debug)]
struct Waiter {
    target: u64,
    wake: Arc<WakeSlot>,
}

/// How to wake one parked thread. `woken` tells a real wake-up from a spurious return of
/// `thread::park`.
#[derive(Debug)]
struct WakeSlot {
    woken: AtomicBool,
    thread: Thread,
}

impl WakeSlot {
    fn wake(&self) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }

    /// Parks until `wake` is called (after this thread put the slot on a waiter list).
    fn park(&self) {
        while !self.woken.load(Ordering::Acquire) {
            thread::park();
        }
    }
}

thread_local! {
    /// This thread's wake slot: a thread waits on at most one sync at a time, so one slot per
    /// thread is enough and an append allocates nothing to wait.
    static WAKE_SLOT: Arc<WakeSlot> = Arc::new(WakeSlot {
        woken: AtomicBool::new(false),
        thread: thread::current(),
    });
}

impl SyncState {
    /// Takes the waiters covered by the synced position off the list.
    fn take_covered(&mut self, covered: &mut Vec<Arc<WakeSlot>>) {
        let synced = self.synced_bytes;
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].target <= synced {
                covered.push(self.waiters.swap_remove(i).wake);
            } else {
                i += 1;
            }
        }
    }

    /// Records a completed sync of everything up to `bytes` and `records` (positions only move
    /// forward); returns the number of records it made durable, `None` if nothing new.
    fn advance(&mut self, bytes: u64, records: u64) -> Option<u64> {
        if bytes <= self.synced_bytes {
            return None;
        }
        let newly = records - self.synced_records;
        self.synced_bytes = bytes;
        self.synced_records = records;
        Some(newly)
    }
}

/// What the syncer learned: the positions its `fdatasync` covered and how long it took.
struct Synced {
    bytes: u64,
    records: u64,
    latency: Duration,
}

impl Wal {
    /// Blocks until a sync covers write position `target`. The first waiter with nothing in
    /// flight becomes the syncer for everyone written so far (leader/follower group commit);
    /// the others park until a sync covers them or they are handed the next sync.
    pub(crate) fn wait_synced(&self, target: u64, delay: Option<Duration>) -> Result<()> {
        let slot = WAKE_SLOT.with(Arc::clone);
        let mut sync = lock(&self.sync);
        loop {
            self.check_poison()?;
            if sync.synced_bytes >= target {
                return Ok(());
            }
            if sync.syncing {
                slot.woken.store(false, Ordering::Relaxed);
                sync.waiters.push(Waiter {
                    target,
                    wake: Arc::clone(&slot),
                });
                drop(sync);
                slot.park();
                sync = lock(&self.sync);
                continue;
            }
            sync.syncing = true;
            drop(sync);
            if let Some(delay) = delay {
                thread::sleep(delay);
            }
            match self.sync_active() {
                Ok(synced) => self.finish_sync(&synced),
                Err(e) => {
                    // Poison before anyone else may start a sync: after a failed `fdatasync` a
                    // retry could succeed without the pages the kernel dropped.
                    let e = self.poison_with(e);
                    lock(&self.sync).syncing = false;
                    return Err(e);
                }
            }
            sync = lock(&self.sync);
        }
    }

    /// Ends the caller's turn as syncer: publishes what it synced, then wakes first one waiter
    /// it did not cover (so the next `write` + `fdatasync` starts at once), then every waiter it
    /// covered.
    fn finish_sync(&self, synced: &Synced) {
        let mut covered = Vec::new();
        let next_syncer = {
            let mut sync = lock(&self.sync);
            sync.syncing = false;
            if let Some(newly) = sync.advance(synced.bytes, synced.records) {
                self.metrics.record_sync(synced.latency, newly);
            }
            sync.take_covered(&mut covered);
            sync.waiters.pop()
        };
        if let Some(next) = next_syncer {
            next.wake.wake();
        }
        for slot in &covered {
            slot.wake();
        }
    }

    /// Writes the pending frames and runs `fdatasync` on the active segment for everything
    /// written so far.
    fn sync_active(&self) -> Result<Synced> {
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
        Ok(Synced {
            bytes,
            records,
            latency: started.elapsed(),
        })
    }

    /// Publishes a sync made outside group commit (sealing a segment) and wakes the waiters it
    /// covers.
    pub(crate) fn mark_synced(&self, latency: Duration, bytes: u64, records: u64) {
        let mut covered = Vec::new();
        {
            let mut sync = lock(&self.sync);
            if let Some(newly) = sync.advance(bytes, records) {
                self.metrics.record_sync(latency, newly);
                sync.take_covered(&mut covered);
            }
        }
        for slot in &covered {
            slot.wake();
        }
    }

    /// Wakes every parked appender (after the log was poisoned: each finds the poison and
    /// returns the error). Must not be called with `self.sync` held.
    pub(crate) fn wake_all_waiters(&self) {
        let waiters = std::mem::take(&mut lock(&self.sync).waiters);
        for waiter in &waiters {
            waiter.wake.wake();
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
