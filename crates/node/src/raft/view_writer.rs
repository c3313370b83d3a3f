//! The sled view written behind the apply path (ADR 0016): `apply` only records which records
//! changed; one thread per state machine writes them to sled, many applied batches per sled
//! batch, so that sled's cost leaves the latency of every write and shrinks under load.
//!
//! sled's part of a write and sled's own threads run at the lowest CPU priority (ADR 0031): it
//! takes milliseconds, and nothing waits for it. The writer itself keeps its priority, since it
//! reads the state under the lock `apply` needs.
//!
//! The view may lag the state by the writes in flight. That is a state ADR 0007 already
//! allows (sled loses unflushed writes on a crash): the restart path replays the WAL up to
//! whatever the view's meta names. This module decides when to write, not what.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use steward_statemachine::Touched;

use crate::error::{Error, Result};
use crate::raft::background;
use crate::raft::state_machine::Shared;

/// Shortest pause between two view writes: applied batches in between share one sled batch.
/// Default: 100 ms.
pub const VIEW_WRITE_INTERVAL_MS: u64 = 100;
/// Longest sleep of an idle writer before it checks whether its state machine still exists.
/// Default: 100 ms.
const IDLE_CHECK_MS: u64 = 100;
/// Wake-ups between two searches for sled threads of normal priority (sled starts I/O threads
/// as it needs them, from whichever thread hands it work). Default: 100 (10-20 s: each wake-up
/// waits up to 100 ms, and a write adds a 100 ms pause).
const SLED_THREADS_CHECK_EVERY: u32 = 100;

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
    /// The state was replaced (a snapshot was installed): the whole view is rewritten.
    rewrite: bool,
}

/// What the next view write must do.
pub enum Pending {
    /// Nothing was applied since the last write.
    Nothing,
    /// Write these records.
    Records(Touched),
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

    /// Records one applied batch's changes.
    pub fn add(&mut self, touched: Touched) {
        merge(&mut self.touched, touched);
        self.dirty = true;
    }

    /// What is left to write.
    pub fn into_pending(self) -> Pending {
        if self.rewrite {
            Pending::Everything
        } else if self.dirty {
            Pending::Records(self.touched)
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
    let mut until_sled_check = 0;
    loop {
        if until_sled_check == 0 {
            let lowered = background::lower_sled_threads_priority();
            tracing::debug!(lowered, "sled threads set to background priority");
            until_sled_check = SLED_THREADS_CHECK_EVERY;
        }
        until_sled_check -= 1;
        let woken = signal.wait(Duration::from_millis(IDLE_CHECK_MS));
        let Some(strong) = shared.upgrade() else {
            return;
        };
        if woken {
            if let Err(e) = strong.write_unwritten() {
                tracing::error!(error = %e, "writing the sled view failed; retrying");
            }
        }
        drop(strong);
        std::thread::sleep(Duration::from_millis(VIEW_WRITE_INTERVAL_MS));
    }
}
