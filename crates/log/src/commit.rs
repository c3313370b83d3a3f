//! Group commit: the leader/follower protocol that lets concurrent appenders share one `write`
//! and one `fdatasync`. Deciding what to write (contiguity, segment rolls) is `wal`'s job; this
//! module only moves buffered frames to the file, waits for them to be durable, and wakes the
//! appenders a sync covers.
//!
//! Syncs are numbered (generations). An appender that finds a sync in flight parks for either
//! that sync, if its records are in the sync's `write`, or the next one, on one of two futex
//! words chosen by the parity of the generation it waits for. A completed sync wakes the whole
//! group parked on its word with one `futex` call and hands the next sync to one waiter of the
//! next group. Compared with a condition variable shared by everyone, no appender wakes for a
//! sync that does not cover it and no woken appender takes a lock to find out it is done: with
//! 64 appenders those futile wake-ups and lock hand-offs cost more CPU than everything else an
//! append does.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::thread::futex;

use crate::error::{Error, Result};
use crate::fs::write_all_at;
use crate::wal::{lock, State, Wal};

/// Group commit's shared state.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    control: Mutex<Control>,
    /// `State::written_bytes` covered by the last completed sync; only grows. Written under
    /// `control`, read without it by woken appenders.
    synced_bytes: AtomicU64,
    /// The futex words appenders park on: index `generation % 2` for the appenders waiting for
    /// sync `generation`. Each is bumped under `control` and then woken: when that sync
    /// completes (all its waiters), when the next sync is handed to one of its waiters (one),
    /// and when a segment seal or a failure may concern anyone (all).
    wake_words: [AtomicU32; 2],
}

/// Who syncs, and who waits for which sync (behind `GroupCommit::control`).
///
/// Lock order: `Wal::state` before `control` (the syncer publishes what its `write` covered
/// while still holding the write lock); nothing takes `Wal::state` while holding `control`.
#[derive(Debug, Default)]
struct Control {
    synced_records: u64,
    /// An appender is running a group sync right now.
    syncing: bool,
    /// Number of group syncs started; the one in flight, if `syncing`, is this one.
    generation: u64,
    /// Write position the sync in flight covers, once its syncer has written the buffer;
    /// `None` before that, when everything already written will be in its `write`.
    inflight_bytes: Option<u64>,
    /// Appenders that parked for the sync in flight, and for the one after it. Upper bounds
    /// (one that wakes early and parks again counts twice, which costs at most a futile
    /// wake-up); they spare a `futex` call when nobody waits, as with a single appender.
    waiting: u32,
    next_waiting: u32,
}

impl Control {
    /// Records a completed sync of everything up to `bytes` and `records` (positions only move
    /// forward); returns the number of records it made durable, `None` if nothing new.
    fn advance(&mut self, synced_bytes: &AtomicU64, bytes: u64, records: u64) -> Option<u64> {
        if bytes <= synced_bytes.load(Ordering::Relaxed) {
            return None;
        }
        let newly = records - self.synced_records;
        self.synced_records = records;
        synced_bytes.store(bytes, Ordering::Release);
        Some(newly)
    }
}

impl GroupCommit {
    fn word(&self, generation: u64) -> &AtomicU32 {
        &self.wake_words[(generation % 2) as usize]
    }

    fn is_synced(&self, target: u64) -> bool {
        self.synced_bytes.load(Ordering::Acquire) >= target
    }
}

/// Bumps `word` so that an appender about to park on its old value returns at once instead of
/// missing the wake-up. Called with `control` held.
fn bump(word: &AtomicU32) {
    word.fetch_add(1, Ordering::Release);
}

/// Wakes up to `count` appenders parked on `word`.
fn wake(word: &AtomicU32, count: u32) {
    // Fails only for an invalid address, which a reference cannot be; nothing to do then.
    let _ = futex::wake(word, futex::Flags::PRIVATE, count);
}

/// Wakes every appender parked on `word`.
fn wake_all(word: &AtomicU32) {
    wake(word, i32::MAX as u32);
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
    /// the others park until the sync covering them completes, or until they are handed the
    /// next sync.
    pub(crate) fn wait_synced(&self, target: u64, delay: Option<Duration>) -> Result<()> {
        let gc = &self.commit;
        if gc.is_synced(target) {
            return Ok(());
        }
        let mut control = lock(&gc.control);
        loop {
            self.check_poison()?;
            if gc.is_synced(target) {
                return Ok(());
            }
            if !control.syncing {
                control.syncing = true;
                control.generation += 1;
                control.inflight_bytes = None;
                control.waiting = std::mem::take(&mut control.next_waiting);
                let generation = control.generation;
                drop(control);
                if let Some(delay) = delay {
                    std::thread::sleep(delay);
                }
                match self.sync_active() {
                    Ok(synced) => self.finish_sync(generation, &synced),
                    Err(e) => {
                        // Poison before anyone else may start a sync: after a failed
                        // `fdatasync` a retry could succeed without the pages the kernel dropped.
                        let e = self.poison_with(e);
                        lock(&gc.control).syncing = false;
                        return Err(e);
                    }
                }
                control = lock(&gc.control);
                continue;
            }
            // Records written before the syncer's `write` are in it: all of them while it has
            // not published what it covers (it does so under the write lock, which our own
            // write needed), else those up to `inflight_bytes`.
            let in_flight_covers = control.inflight_bytes.is_none_or(|bytes| target <= bytes);
            let generation = if in_flight_covers {
                control.waiting = control.waiting.saturating_add(1);
                control.generation
            } else {
                control.next_waiting = control.next_waiting.saturating_add(1);
                control.generation + 1
            };
            let word = gc.word(generation);
            let seen = word.load(Ordering::Acquire);
            drop(control);
            // Returns when woken, at once if the word moved on since `seen`, or on a signal;
            // every case is re-checked below, so the result carries nothing more.
            let _ = futex::wait(word, futex::Flags::PRIVATE, seen, None);
            if gc.is_synced(target) {
                return Ok(());
            }
            control = lock(&gc.control);
        }
    }

    /// Ends the caller's turn as syncer: publishes what it synced, hands the next sync to one
    /// appender waiting for it (first, so the next `write` + `fdatasync` starts at once), then
    /// wakes every appender that waited for this one.
    fn finish_sync(&self, generation: u64, synced: &Synced) {
        let gc = &self.commit;
        let (wake_group, hand_off) = {
            let mut control = lock(&gc.control);
            if let Some(newly) = control.advance(&gc.synced_bytes, synced.bytes, synced.records) {
                self.metrics.record_sync(synced.latency, newly);
            }
            control.syncing = false;
            let wake_group = control.waiting > 0;
            let hand_off = control.next_waiting > 0;
            if wake_group {
                bump(gc.word(generation));
            }
            if hand_off {
                bump(gc.word(generation + 1));
            }
            (wake_group, hand_off)
        };
        if hand_off {
            wake(gc.word(generation + 1), 1);
        }
        if wake_group {
            wake_all(gc.word(generation));
        }
    }

    /// Writes the pending frames and runs `fdatasync` on the active segment for everything
    /// written so far.
    fn sync_active(&self) -> Result<Synced> {
        let (active, bytes, records) = {
            let mut st = lock(&self.state);
            self.flush_pending(&mut st)?;
            lock(&self.commit.control).inflight_bytes = Some(st.written_bytes);
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

    /// Publishes a sync made outside group commit (sealing a segment) and wakes every parked
    /// appender: the ones it covers return, the others park again. Once per segment.
    pub(crate) fn mark_synced(&self, latency: Duration, bytes: u64, records: u64) {
        let gc = &self.commit;
        {
            let mut control = lock(&gc.control);
            let Some(newly) = control.advance(&gc.synced_bytes, bytes, records) else {
                return;
            };
            self.metrics.record_sync(latency, newly);
            gc.wake_words.iter().for_each(bump);
        }
        gc.wake_words.iter().for_each(wake_all);
    }

    /// Wakes every parked appender (after the log was poisoned: each finds the poison and
    /// returns the error). Must not be called with `control` held.
    pub(crate) fn wake_all_waiters(&self) {
        let gc = &self.commit;
        {
            let _control = lock(&gc.control);
            gc.wake_words.iter().for_each(bump);
        }
        gc.wake_words.iter().for_each(wake_all);
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
