//! The piggyback queue: membership updates waiting to be gossiped, each sent a bounded number
//! of times (`λ·ceil(log10(n + 1))`), least-sent first, newest first among equals. A newer
//! update about a member replaces the queued one. It does not decide what to gossip.

use crate::types::NodeId;
use crate::wire::{update_len, Update};

#[derive(Debug, Clone)]
struct Queued {
    update: Update,
    transmits: u32,
    order: u64,
}

/// Updates waiting to be piggybacked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Broadcasts {
    queue: Vec<Queued>,
    next_order: u64,
}

impl Broadcasts {
    /// Queue `update`, replacing any queued update about the same member.
    pub(crate) fn push(&mut self, update: Update) {
        self.queue.retain(|q| q.update.id != update.id);
        self.next_order += 1;
        self.queue.push(Queued {
            update,
            transmits: 0,
            order: self.next_order,
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Move the queued update about `id`, if any, to the front of the line (buddy system).
    pub(crate) fn prioritise(&mut self, id: NodeId) {
        if let Some(q) = self.queue.iter_mut().find(|q| q.update.id == id) {
            q.transmits = 0;
            self.next_order += 1;
            q.order = self.next_order;
        }
    }

    /// Take as many updates as fit in `budget_bytes`, counting one transmission each and
    /// dropping those sent `limit` times.
    pub(crate) fn take(&mut self, budget_bytes: usize, limit: u32) -> Vec<Update> {
        self.queue
            .sort_by(|a, b| a.transmits.cmp(&b.transmits).then(b.order.cmp(&a.order)));
        let mut used = 0usize;
        let mut taken = Vec::new();
        for queued in &mut self.queue {
            let len = update_len(&queued.update);
            if used + len > budget_bytes {
                continue;
            }
            used += len;
            queued.transmits += 1;
            taken.push(queued.update);
        }
        self.queue.retain(|q| q.transmits < limit);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Incarnation, Role};
    use crate::wire::UpdateKind;
    use std::net::SocketAddr;

    fn update(id: u64, incarnation: u64) -> Update {
        Update {
            id: NodeId(id),
            addr: SocketAddr::from(([127, 0, 0, 1], 7000)),
            role: Role::Manager,
            incarnation: Incarnation(incarnation),
            kind: UpdateKind::Alive,
        }
    }

    #[test]
    fn newer_update_replaces_older() {
        let mut b = Broadcasts::default();
        b.push(update(1, 1));
        b.push(update(1, 2));
        assert_eq!(b.len(), 1);
        assert_eq!(b.take(1000, 5)[0].incarnation, Incarnation(2));
    }

    #[test]
    fn updates_expire_after_limit_transmissions() {
        let mut b = Broadcasts::default();
        b.push(update(1, 1));
        for _ in 0..3 {
            assert_eq!(b.take(1000, 3).len(), 1);
        }
        assert!(b.is_empty());
    }

    #[test]
    fn budget_bounds_the_batch_and_least_sent_go_first() {
        let mut b = Broadcasts::default();
        for id in 0..100 {
            b.push(update(id, 1));
        }
        let one = update_len(&update(0, 1));
        let first = b.take(one * 10, 10);
        assert_eq!(first.len(), 10);
        let second = b.take(one * 10, 10);
        assert!(second.iter().all(|u| !first.contains(u)));
    }
}
