//! Test-only fault injection between managers: a set of blocked peers whose Raft requests are
//! dropped in both directions (outgoing calls fail as unreachable, incoming requests get no
//! reply) and whose gossip datagrams are dropped, so the crash-recovery harness can partition a
//! cluster of real processes without `iptables`.
//!
//! Empty (the default, and the only state outside `test_mode`) blocks nothing. It deliberately
//! does not touch the HTTP API: clients, workers and follower → leader forwarding still reach
//! every node, as clients on the far side of a switch would.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// Which peers this node cannot talk to. Shared by the Raft client pool, the Raft server and
/// the gossip task of one node.
#[derive(Debug, Default)]
pub struct LinkFilter {
    blocked: RwLock<Blocked>,
    dropped_outgoing: AtomicU64,
    dropped_incoming: AtomicU64,
    dropped_gossip: AtomicU64,
}

/// What a [`LinkFilter`] dropped so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DroppedCounts {
    /// Raft requests this node did not send.
    pub outgoing: u64,
    /// Raft requests this node received and did not answer.
    pub incoming: u64,
    /// Gossip datagrams not sent or ignored on receipt.
    pub gossip: u64,
}

#[derive(Debug, Default)]
struct Blocked {
    ids: BTreeSet<u64>,
    gossip_addrs: BTreeSet<SocketAddr>,
}

impl LinkFilter {
    /// Replaces the blocked set: peer ids for Raft traffic, their gossip addresses for gossip.
    /// Empty sets heal every link.
    pub fn set_blocked(&self, ids: BTreeSet<u64>, gossip_addrs: BTreeSet<SocketAddr>) {
        let mut blocked = self.blocked.write().unwrap_or_else(|e| e.into_inner());
        *blocked = Blocked { ids, gossip_addrs };
    }

    /// The blocked peer ids.
    pub fn blocked_ids(&self) -> BTreeSet<u64> {
        let blocked = self.blocked.read().unwrap_or_else(|e| e.into_inner());
        blocked.ids.clone()
    }

    /// Whether a Raft request to peer `id` must be dropped (counted when it must).
    pub fn drops_outgoing(&self, id: u64) -> bool {
        self.drops(|b| b.ids.contains(&id), &self.dropped_outgoing)
    }

    /// Whether a Raft request from peer `id` must be dropped (counted when it must).
    pub fn drops_incoming(&self, id: u64) -> bool {
        self.drops(|b| b.ids.contains(&id), &self.dropped_incoming)
    }

    /// Whether a gossip datagram to or from `addr` must be dropped (counted when it must).
    pub fn drops_gossip(&self, addr: SocketAddr) -> bool {
        self.drops(|b| b.gossip_addrs.contains(&addr), &self.dropped_gossip)
    }

    /// Requests and datagrams dropped so far.
    pub fn dropped(&self) -> DroppedCounts {
        DroppedCounts {
            outgoing: self.dropped_outgoing.load(Ordering::Relaxed),
            incoming: self.dropped_incoming.load(Ordering::Relaxed),
            gossip: self.dropped_gossip.load(Ordering::Relaxed),
        }
    }

    fn drops(&self, test: impl Fn(&Blocked) -> bool, counter: &AtomicU64) -> bool {
        let blocked = self.blocked.read().unwrap_or_else(|e| e.into_inner());
        let drop = test(&blocked);
        if drop {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_only_the_listed_peers_until_healed() {
        let filter = LinkFilter::default();
        let gossip = SocketAddr::from(([127, 0, 0, 1], 7002));
        assert!(!filter.drops_outgoing(2) && !filter.drops_incoming(2));
        filter.set_blocked([2].into(), [gossip].into());
        assert!(filter.drops_outgoing(2) && filter.drops_incoming(2));
        assert!(!filter.drops_outgoing(3) && !filter.drops_incoming(3));
        assert!(filter.drops_gossip(gossip));
        assert!(!filter.drops_gossip(SocketAddr::from(([127, 0, 0, 1], 7003))));
        let dropped = filter.dropped();
        assert_eq!(
            (dropped.outgoing, dropped.incoming, dropped.gossip),
            (1, 1, 1)
        );
        filter.set_blocked(BTreeSet::new(), BTreeSet::new());
        assert!(!filter.drops_outgoing(2) && !filter.drops_gossip(gossip));
        assert_eq!(filter.blocked_ids(), BTreeSet::new());
    }
}
