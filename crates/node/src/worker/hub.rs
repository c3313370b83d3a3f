//! The leader's memory of worker heartbeats: when each worker last polled and the lease it
//! announced. A worker whose lease runs out is declared lost by the dispatch duty
//! (`duties/dispatch.rs`) with `WorkerLost`: a backstop next to SWIM membership, for workers
//! without gossip and quicker than SWIM's suspicion timeout (ADR 0010).
//!
//! Deliberately not replicated: heartbeats would flood the log. A new leader starts with an
//! empty hub and gives every live worker a full [`LEASE_MS_DEFAULT`](super::protocol::LEASE_MS_DEFAULT)
//! (or its announced lease, once it polls) from the moment it took over.
//!
//! One hub per node id in the process (tests run several nodes in one process); kept in a
//! process-wide map because `Node` is owned by another module and carries no extension slot.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::protocol::{LEASE_MS_DEFAULT, LEASE_MS_MIN};

/// Heartbeats seen by one manager.
#[derive(Debug, Default)]
pub struct Hub {
    seen: Mutex<BTreeMap<u64, Seen>>,
    /// Woken when a poll should look at the state again (a dispatch was committed).
    pub wake: Notify,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    lease: Duration,
}

impl Hub {
    /// The hub of manager `node_id` in this process.
    pub fn for_node(node_id: u64) -> Arc<Hub> {
        static HUBS: OnceLock<Mutex<BTreeMap<u64, Arc<Hub>>>> = OnceLock::new();
        let hubs = HUBS.get_or_init(Default::default);
        let mut hubs = hubs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hubs.entry(node_id).or_default().clone()
    }

    /// Records a heartbeat from `worker` announcing `lease_ms`.
    pub fn heartbeat(&self, worker: u64, lease_ms: u64) {
        let lease = Duration::from_millis(lease_ms.max(LEASE_MS_MIN));
        self.lock().insert(
            worker,
            Seen {
                at: Instant::now(),
                lease,
            },
        );
    }

    /// Forgets `worker` (declared lost).
    pub fn forget(&self, worker: u64) {
        self.lock().remove(&worker);
    }

    /// How long ago `worker` last polled.
    pub fn last_seen(&self, worker: u64) -> Option<Duration> {
        self.lock().get(&worker).map(|seen| seen.at.elapsed())
    }

    /// Whether `worker`'s lease ran out: it was seen and went quiet for its lease, or it was
    /// never seen since `since` (this leader's start) for [`LEASE_MS_DEFAULT`].
    pub fn expired(&self, worker: u64, since: Instant) -> bool {
        match self.lock().get(&worker) {
            Some(seen) => seen.at.elapsed() > seen.lease,
            None => since.elapsed() > Duration::from_millis(LEASE_MS_DEFAULT),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Seen>> {
        // The map holds plain values; a panic mid-insert cannot leave it inconsistent.
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_expire_after_silence() {
        let hub = Hub::default();
        let start = Instant::now();
        hub.heartbeat(7, 1);
        assert!(!hub.expired(7, start));
        std::thread::sleep(Duration::from_millis(LEASE_MS_MIN + 50));
        assert!(hub.expired(7, start));
        assert!(
            !hub.expired(8, start),
            "unseen workers get the default lease"
        );
        hub.forget(7);
        assert!(hub.last_seen(7).is_none());
    }

    #[test]
    fn hubs_are_per_node() {
        let a = Hub::for_node(u64::MAX - 1);
        a.heartbeat(1, 1_000);
        assert!(Hub::for_node(u64::MAX - 1).last_seen(1).is_some());
        assert!(Hub::for_node(u64::MAX - 2).last_seen(1).is_none());
    }
}
