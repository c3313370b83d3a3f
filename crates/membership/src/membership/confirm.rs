//! UNCONFIRMED peers (AD-29, AD-35): a member learned by gossip waits for direct contact.
//! Gates and managers are pinged proactively (`attempts` pings spread over the passive
//! timeout, the first one right away); workers are never pinged just to confirm them, they are
//! confirmed when they contact us. Whoever is still UNCONFIRMED at the timeout is removed,
//! never declared dead.

use super::{Membership, Purpose, TimerKind};
use crate::types::{MemberState, NodeId};

impl Membership {
    /// Begin confirming a member just learned by gossip.
    pub(super) fn start_confirmation(&mut self, id: NodeId) {
        let Some(role) = self.members.get(&id).map(|m| m.role) else {
            return;
        };
        let policy = self.config.confirmation.for_role(role);
        self.pending.insert(id, 0);
        self.set_timer_in(policy.passive_timeout_ms, TimerKind::ConfirmExpire { id });
        if policy.attempts > 0 {
            // A little jitter so a burst of newly learned members is not pinged all at once.
            let jitter = self.rng.below(self.config.probe_interval_ms as usize) as u64;
            self.set_timer_in(jitter, TimerKind::ConfirmAttempt { id });
        }
    }

    pub(super) fn confirm_attempt(&mut self, id: NodeId) {
        let Some(role) = self
            .members
            .get(&id)
            .filter(|m| m.state == MemberState::Unconfirmed)
            .map(|m| m.role)
        else {
            return;
        };
        let policy = self.config.confirmation.for_role(role);
        let Some(made) = self.pending.get_mut(&id) else {
            return;
        };
        if *made >= policy.attempts {
            return;
        }
        *made += 1;
        let made = *made;
        self.metrics.confirmation_attempts += 1;
        if let Some(seq) = self.send_ping(id, Purpose::Confirm) {
            let timeout = self.probe_timeout_ms(id);
            self.set_timer_in(timeout, TimerKind::ConfirmTimeout { seq });
        }
        if made < policy.attempts {
            let spacing = policy.passive_timeout_ms / u64::from(policy.attempts);
            self.set_timer_in(spacing, TimerKind::ConfirmAttempt { id });
        }
    }

    pub(super) fn confirm_expire(&mut self, id: NodeId) {
        let Some(role) = self
            .members
            .get(&id)
            .filter(|m| m.state == MemberState::Unconfirmed)
            .map(|m| m.role)
        else {
            return;
        };
        let index = match role {
            crate::types::Role::Gate => 0,
            crate::types::Role::Manager => 1,
            crate::types::Role::Worker => 2,
        };
        self.metrics.unconfirmed_removed[index] += 1;
        self.remove(id);
    }

    /// An UNCONFIRMED member answered: it is ALIVE now.
    pub(super) fn confirm(&mut self, id: NodeId) {
        let Some(member) = self.members.get(&id) else {
            return;
        };
        let claim = Self::member_update(member, crate::wire::UpdateKind::Alive);
        self.apply_alive(&claim, true);
    }
}
