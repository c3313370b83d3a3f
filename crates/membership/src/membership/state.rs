//! Membership facts and their rules: who is ALIVE, SUSPECT, DEAD or LEFT, at which
//! incarnation. Only a strictly higher incarnation refutes a suspicion or revives the dead;
//! UNCONFIRMED members are never suspected or declared dead (AD-29). Suspicion timeouts follow
//! Lifeguard (start long, shrink with independent confirmations).

use super::{Membership, Suspicion, TimerKind};
use crate::lifeguard::{suspicion_base_ms, suspicion_timeout_ms};
use crate::types::{Incarnation, Member, MemberEvent, MemberState, NodeId};
use crate::wire::{Update, UpdateKind};

impl Membership {
    /// Merge one gossiped fact. In a push-pull state, DEAD is weakened to SUSPECT: a full
    /// table may be old, so it only starts a suspicion that the member can refute.
    pub(super) fn apply_update(&mut self, update: &Update, from_push_pull: bool) {
        if update.id == self.self_id {
            self.apply_about_self(update);
            return;
        }
        match update.kind {
            UpdateKind::Alive => self.apply_alive(update, false),
            UpdateKind::Suspect { from } => self.apply_suspect(update, from),
            UpdateKind::Dead { from } if from_push_pull => self.apply_suspect(update, from),
            UpdateKind::Dead { .. } => self.apply_dead(update),
            UpdateKind::Left => self.apply_left(update),
        }
    }

    fn apply_about_self(&mut self, update: &Update) {
        match update.kind {
            UpdateKind::Alive => {
                // A claim about a previous life of ours (we restarted): move past it.
                if update.incarnation > self.incarnation {
                    self.refute(update.incarnation);
                }
            }
            UpdateKind::Suspect { .. } | UpdateKind::Dead { .. } | UpdateKind::Left => {
                self.refute(update.incarnation)
            }
        }
    }

    /// Someone believes we are suspect, dead or gone at `incarnation`: announce ALIVE at a
    /// higher one. Rate-limited; a claim about an older incarnation needs no bump.
    pub(super) fn refute(&mut self, incarnation: Incarnation) {
        if incarnation < self.incarnation {
            return;
        }
        if let Some(last) = self.last_refute_ms {
            if self.now_ms < last.saturating_add(self.config.refute_interval_ms) {
                return;
            }
        }
        self.last_refute_ms = Some(self.now_ms);
        self.incarnation = incarnation.next();
        self.metrics.refutations += 1;
        if self.config.lifeguard {
            self.health.apply(1);
        }
        self.gossip_self(UpdateKind::Alive);
    }

    /// An ALIVE claim. `direct` when the member itself sent the packet.
    pub(super) fn apply_alive(&mut self, update: &Update, direct: bool) {
        let now = self.now_ms;
        let Some(member) = self.members.get_mut(&update.id) else {
            let state = if direct {
                MemberState::Alive
            } else {
                MemberState::Unconfirmed
            };
            let member = Member {
                id: update.id,
                addr: update.addr,
                role: update.role,
                incarnation: update.incarnation,
                state,
                state_since_ms: now,
            };
            self.members.insert(update.id, member.clone());
            self.emit(MemberEvent::Joined(member.clone()));
            // News spreads by re-gossip, whoever told us.
            self.broadcasts
                .push(Self::member_update(&member, UpdateKind::Alive));
            if !direct {
                self.start_confirmation(update.id);
            }
            return;
        };
        let newer = update.incarnation > member.incarnation;
        if newer {
            member.incarnation = update.incarnation;
            member.addr = update.addr;
            member.role = update.role;
        }
        let previous = member.state;
        let next = match previous {
            MemberState::Unconfirmed if direct => MemberState::Alive,
            MemberState::Suspect | MemberState::Dead | MemberState::Left if newer => {
                MemberState::Alive
            }
            state => state,
        };
        if next != previous {
            member.state = next;
            member.state_since_ms = now;
        }
        let snapshot = member.clone();
        if next != previous {
            self.suspicions.remove(&update.id);
            let event = match previous {
                MemberState::Unconfirmed => {
                    self.pending.remove(&update.id);
                    self.metrics.confirmations += 1;
                    MemberEvent::Confirmed(snapshot.clone())
                }
                MemberState::Suspect => MemberEvent::Refuted(snapshot.clone()),
                _ => MemberEvent::Rejoined(snapshot.clone()),
            };
            self.emit(event);
        }
        if newer || next != previous {
            self.broadcasts
                .push(Self::member_update(&snapshot, UpdateKind::Alive));
        }
    }

    fn apply_suspect(&mut self, update: &Update, from: NodeId) {
        let Some(member) = self.members.get(&update.id) else {
            return;
        };
        if update.incarnation < member.incarnation {
            return;
        }
        match member.state {
            MemberState::Alive => self.suspect_on_hearsay(update, from),
            // A suspicion at a higher incarnation than ours means the member refuted the one
            // we hold (we have not heard yet) and was suspected again: a new suspicion with
            // its own timer and confirmations. Only raising the incarnation would leave our
            // timer on an incarnation the member no longer has, and the member SUSPECT for
            // ever.
            MemberState::Suspect if update.incarnation > member.incarnation => {
                self.suspect_on_hearsay(update, from)
            }
            MemberState::Suspect => {
                if self.confirm_suspicion(update.id, from) {
                    self.broadcasts.push(*update);
                }
            }
            // UNCONFIRMED members are never suspected; the dead and departed stay so.
            MemberState::Unconfirmed | MemberState::Dead | MemberState::Left => {}
        }
    }

    /// Start a suspicion someone else reported, pass it on, and check the member ourselves.
    fn suspect_on_hearsay(&mut self, update: &Update, from: NodeId) {
        self.start_suspicion(update.id, update.incarnation, from);
        self.broadcasts.push(*update);
        self.probe_soon(update.id);
    }

    fn apply_dead(&mut self, update: &Update) {
        let Some(member) = self.members.get(&update.id) else {
            return;
        };
        if update.incarnation < member.incarnation {
            return;
        }
        match member.state {
            MemberState::Alive | MemberState::Suspect => {
                self.mark(update.id, update.incarnation, MemberState::Dead);
                self.broadcasts.push(*update);
            }
            // Never declared dead; someone who knew it better says it is gone.
            MemberState::Unconfirmed => self.remove(update.id),
            MemberState::Dead | MemberState::Left => {}
        }
    }

    fn apply_left(&mut self, update: &Update) {
        let Some(member) = self.members.get(&update.id) else {
            return;
        };
        if update.incarnation < member.incarnation || member.state == MemberState::Left {
            return;
        }
        self.mark(update.id, update.incarnation, MemberState::Left);
        self.broadcasts.push(*update);
    }

    /// Move a member to DEAD or LEFT, emit the event and arm its reaping.
    fn mark(&mut self, id: NodeId, incarnation: Incarnation, state: MemberState) {
        let now = self.now_ms;
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        member.incarnation = incarnation;
        member.state = state;
        member.state_since_ms = now;
        let snapshot = member.clone();
        self.suspicions.remove(&id);
        self.pending.remove(&id);
        self.emit(if state == MemberState::Dead {
            MemberEvent::Dead(snapshot)
        } else {
            MemberEvent::Left(snapshot)
        });
        self.set_timer_in(
            self.config.dead_retention_ms,
            TimerKind::Reap { id, since_ms: now },
        );
    }

    /// Our own probe of `id` failed.
    pub(super) fn suspect_locally(&mut self, id: NodeId) {
        let Some(member) = self.members.get(&id) else {
            return;
        };
        let update = Self::member_update(member, UpdateKind::Suspect { from: self.self_id });
        let (state, incarnation) = (member.state, member.incarnation);
        match state {
            MemberState::Alive => {
                self.start_suspicion(id, incarnation, self.self_id);
                self.broadcasts.push(update);
            }
            MemberState::Suspect if self.confirm_suspicion(id, self.self_id) => {
                self.broadcasts.push(update);
            }
            _ => {}
        }
    }

    fn start_suspicion(&mut self, id: NodeId, incarnation: Incarnation, from: NodeId) {
        let now = self.now_ms;
        let n = self.cluster_size();
        let base = suspicion_base_ms(self.config.suspicion_mult, n, self.config.probe_interval_ms);
        let scale = self.timeout_scale(id);
        let (min_ms, max_ms, k) = if self.config.lifeguard {
            let k = self.config.suspicion_mult.saturating_sub(2);
            let k = if (n as u32).saturating_sub(2) < k {
                0
            } else {
                k
            };
            (
                base * scale,
                base * scale * f64::from(self.config.suspicion_max_mult),
                k,
            )
        } else {
            (base * scale, base * scale, 0)
        };
        let timeout = suspicion_timeout_ms(min_ms, max_ms, k, 0);
        let deadline_ms = now.saturating_add(timeout.round() as u64);
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        member.incarnation = incarnation;
        member.state = MemberState::Suspect;
        member.state_since_ms = now;
        let snapshot = member.clone();
        self.suspicions.insert(
            id,
            Suspicion {
                incarnation,
                started_ms: now,
                min_ms,
                max_ms,
                k,
                confirmers: vec![from],
                deadline_ms,
            },
        );
        self.metrics.suspicions += 1;
        self.emit(MemberEvent::Suspect(snapshot));
        self.set_timer(deadline_ms, TimerKind::Suspicion { id });
    }

    /// Count an independent confirmation; returns true if it was new (worth re-gossiping).
    fn confirm_suspicion(&mut self, id: NodeId, from: NodeId) -> bool {
        let Some(suspicion) = self.suspicions.get_mut(&id) else {
            return false;
        };
        if suspicion.confirmers.contains(&from) {
            return false;
        }
        suspicion.confirmers.push(from);
        let confirmations = (suspicion.confirmers.len() - 1) as u32;
        let timeout = suspicion_timeout_ms(
            suspicion.min_ms,
            suspicion.max_ms,
            suspicion.k,
            confirmations,
        );
        let deadline = suspicion.started_ms.saturating_add(timeout.round() as u64);
        if deadline < suspicion.deadline_ms {
            suspicion.deadline_ms = deadline;
            let at = deadline.max(self.now_ms);
            self.set_timer(at, TimerKind::Suspicion { id });
        }
        true
    }

    pub(super) fn suspicion_timer(&mut self, id: NodeId) {
        let Some(suspicion) = self.suspicions.get(&id) else {
            return;
        };
        if self.now_ms < suspicion.deadline_ms {
            return;
        }
        let incarnation = suspicion.incarnation;
        let still_suspect = self
            .members
            .get(&id)
            .is_some_and(|m| m.state == MemberState::Suspect && m.incarnation == incarnation);
        self.suspicions.remove(&id);
        if !still_suspect {
            return;
        }
        self.metrics.dead_declared += 1;
        self.mark(id, incarnation, MemberState::Dead);
        if let Some(member) = self.members.get(&id) {
            let update = Self::member_update(member, UpdateKind::Dead { from: self.self_id });
            self.broadcasts.push(update);
        }
    }

    /// Drop a DEAD or LEFT member after its retention time, unless it came back since.
    pub(super) fn reap(&mut self, id: NodeId, since_ms: u64) {
        let expired = self.members.get(&id).is_some_and(|m| {
            matches!(m.state, MemberState::Dead | MemberState::Left) && m.state_since_ms == since_ms
        });
        if expired {
            self.remove(id);
        }
    }

    /// Remove a member from the table and say so.
    pub(super) fn remove(&mut self, id: NodeId) {
        if let Some(member) = self.members.remove(&id) {
            self.suspicions.remove(&id);
            self.pending.remove(&id);
            self.vivaldi.forget(id);
            self.emit(MemberEvent::Removed(member));
        }
    }
}
