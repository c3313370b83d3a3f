//! The sled view written behind the apply path (ADR 0016): `apply` only records which records
//! changed; one thread per state machine writes them to sled, many applied batches per sled
//! batch, so that sled's cost leaves the latency of every write and shrinks under load.
//!
//! When (ADR 0027): once applies have paused for [`VIEW_QUIET_MS`], or, under a stream of
//! applies with no such pause, once the view lacks [`VIEW_LAG_ENTRIES_MAX`] entries. A snapshot
//! build writes the view too (ADR 0016), every `snapshot_after_entries` (10 000 by default),
//! so at the defaults a loaded member writes its view only there. Each sled write slows the
//! client writes that overlap it; the view only spares a restart part of its fold, and that
//! part is bounded in entries, not in time.
//!
//! The view may lag the state by the writes not yet made. That is a state ADR 0007 already
//! allows (sled loses unflushed writes on a crash): the restart path replays the WAL up to
//! whatever the view's meta names, and openraft applies the rest. This module decides when to
//! write, not what.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use steward_statemachine::Touched;

use crate::error::{Error, Result};
use crate::raft::state_machine::Shared;

/// A pause in applies this long lets the writer write what they changed. Default: 100 ms.
pub const VIEW_QUIET_MS: u64 = 100;
/// Under a stream of applies with no pause of [`VIEW_QUIET_MS`], the writer writes once the view
/// lacks this many entries: what a restart folds beyond the view at most, about 70 ms of fold.
/// Above the default snapshot period, so that at the defaults snapshots write the view.
/// Default: 32 768.
pub const VIEW_LAG_ENTRIES_MAX: u64 = 32_768;
/// Longest sleep of an idle writer before it checks whether its state machine still exists.
/// Default: 100 ms.
const IDLE_CHECK_MS: u64 = 100;

/// Adds `from` to `into`.
pub fn merge(into: &mut Touched, from: Touched) {
    into.jobs.extend(from.jobs);
    into.idempotency_keys.extend(from.idempotency_keys);
    into.workers.extend(from.workers);
    into.outputs.extend(from.outputs);
    into.globals |= from.globals;
}

/// What applied batches changed since the last view write.
#[derive(Default)]
pub struct Unwritten {
    touched: Touched,
    /// Something was applied (even a blank entry moves openraft's applied id).
    dirty: bool,
    /// Entries applied since the last write.
    entries: u64,
    /// The state was replaced (a snapshot was installed): the whole view is rewritten.
    rewrite: bool,
}

/// What the next view write must do.
pub enum Pending {
    /// Nothing was applied since the last write.
    Nothing,
    /// Write these records, changed by this many applied entries.
    Records { touched: Touched, entries: u64 },
    /// Rewrite the whole view from the state.
    Everything,
}

impl Unwritten {
    /// Everything, after the state was replaced by an installed snapshot.
    pub fn everything() -> Self {
        Unwritten {
            rewrite: true,
            ..Unwritten::default()
        }
    }

    /// Records the changes of `entries` applied entries.
    pub fn add(&mut self, touched: Touched, entries: u64) {
        merge(&mut self.touched, touched);
        self.entries = self.entries.saturating_add(entries);
        self.dirty = true;
    }

    /// Entries applied since the last write.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// What is left to write.
    pub fn into_pending(self) -> Pending {
        if self.rewrite {
            Pending::Everything
        } else if self.dirty {
            Pending::Records {
                touched: self.touched,
                entries: self.entries,
            }
        } else {
            Pending::Nothing
        }
    }
}

/// Wakes the writer. Lives apart from [`Shared`] so that a sleeping writer does not keep its
/// state machine alive.
#[derive(Default)]
pub struct WriterSignal {
    woken: Mutex<bool>,
    wake: Condvar,
}

impl WriterSignal {
    /// Tells the writer there is something to write.
    pub fn wake(&self) {
        *self
            .woken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.wake.notify_one();
    }

    /// Whether the writer was woken since the last `wait` or `take`; clears it. Never waits.
    fn take(&self) -> bool {
        std::mem::take(
            &mut *self
                .woken
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Waits until woken or `timeout` passes; true when woken.
    fn wait(&self, timeout: Duration) -> bool {
        let woken = self
            .woken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (mut woken, _) = self
            .wake
            .wait_timeout_while(woken, timeout, |woken| !*woken)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::take(&mut *woken)
    }
}

/// Starts the writer thread of `shared`; it ends once `shared` is dropped (whose `Drop` writes
/// the rest).
pub fn spawn(shared: Weak<Shared>, signal: Arc<WriterSignal>) -> Result<()> {
    std::thread::Builder::new()
        .name("view-writer".into())
        .spawn(move || run(&shared, &signal))
        .map(drop)
        .map_err(|e| Error::storage("start the view writer thread", e))
}

fn run(shared: &Weak<Shared>, signal: &WriterSignal) {
    loop {
        let woken = signal.wait(Duration::from_millis(IDLE_CHECK_MS));
        if shared.strong_count() == 0 {
            return;
        }
        if !woken {
            continue;
        }
        let lag = || shared.upgrade().map_or(0, |s| s.unwritten_entries());
        wait_for_quiet(
            signal,
            lag,
            Duration::from_millis(VIEW_QUIET_MS),
            VIEW_LAG_ENTRIES_MAX,
        );
        let Some(strong) = shared.upgrade() else {
            return;
        };
        if let Err(e) = strong.write_unwritten() {
            tracing::error!(error = %e, "writing the sled view failed; retrying");
        }
    }
}

/// Returns once a whole `quiet` passed without a wake-up (an apply), or once `lag` (the
/// entries the view lacks; a snapshot build's view write resets it) reaches `lag_max`. Sleeps
/// rather than waits on the signal, so a stream of applies costs the writer one wake-up per
/// `quiet`, not one per apply.
fn wait_for_quiet(signal: &WriterSignal, lag: impl Fn() -> u64, quiet: Duration, lag_max: u64) {
    loop {
        std::thread::sleep(quiet);
        if !signal.take() || lag() >= lag_max {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Instant;

    use super::*;

    /// Wake-ups (applies) every millisecond for `stream`, each adding one entry to `lag`; the
    /// flag is true while it runs.
    fn stream_of_applies(
        signal: &Arc<WriterSignal>,
        lag: &Arc<AtomicU64>,
        stream: Duration,
    ) -> Arc<AtomicBool> {
        let running = Arc::new(AtomicBool::new(true));
        let (signal, lag, flag) = (signal.clone(), lag.clone(), running.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            while started.elapsed() < stream {
                lag.fetch_add(1, Ordering::SeqCst);
                signal.wake();
                std::thread::sleep(Duration::from_millis(1));
            }
            flag.store(false, Ordering::SeqCst);
        });
        running
    }

    #[test]
    fn a_pause_in_applies_ends_the_wait() {
        let signal = WriterSignal::default();
        signal.wake();
        let started = Instant::now();
        wait_for_quiet(&signal, || 1, Duration::from_millis(10), u64::MAX);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never saw the pause"
        );
    }

    #[test]
    fn a_stream_of_applies_is_written_once_the_lag_reaches_its_bound() {
        let (signal, lag) = (
            Arc::new(WriterSignal::default()),
            Arc::new(AtomicU64::new(0)),
        );
        let running = stream_of_applies(&signal, &lag, Duration::from_secs(20));
        wait_for_quiet(
            &signal,
            || lag.load(Ordering::SeqCst),
            Duration::from_millis(200),
            100,
        );
        assert!(lag.load(Ordering::SeqCst) >= 100);
        assert!(
            running.load(Ordering::SeqCst),
            "the wait outlasted the stream instead of ending at the bound"
        );
    }

    #[test]
    fn under_a_stream_below_the_bound_the_wait_goes_on() {
        let (signal, lag) = (
            Arc::new(WriterSignal::default()),
            Arc::new(AtomicU64::new(0)),
        );
        let running = stream_of_applies(&signal, &lag, Duration::from_secs(1));
        // The lag read here stays at 0, as if a snapshot build kept writing the view.
        wait_for_quiet(&signal, || 0, Duration::from_millis(200), 100);
        assert!(
            !running.load(Ordering::SeqCst),
            "returned while applies still streamed and the lag was below the bound"
        );
    }
}
