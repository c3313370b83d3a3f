//! When this member builds a snapshot (ADR 0021). openraft's own policy (`LogsSinceLast`)
//! starts a build on every member at the same applied index, so all of a group's members
//! encode and write their images at once, beside the WAL syncs that every write waits for.
//! Here each member still builds once every `snapshot_after_entries` entries, but at a phase
//! of its own: the member ranked `r` of `n` in the membership builds when its applied index
//! crosses `k × period + r × period / n`. While a build takes less than `period / n` entries'
//! time, at most one member of a healthy group builds at once, and the others make a quorum
//! without it.

use tokio::sync::watch;

use crate::raft::{NodeId, Raft};

/// The applied indexes at which one member builds its snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotSchedule {
    period: u64,
    phase: u64,
}

impl SnapshotSchedule {
    /// The schedule of the member ranked `rank` (from 0) among `members`, building every
    /// `period` entries. A rank outside the membership gets phase 0.
    pub(crate) fn new(period: u64, rank: u64, members: u64) -> SnapshotSchedule {
        let period = period.max(1);
        let phase = if rank < members {
            // `rank < members`, so the phase stays below the period; u128 keeps the product exact.
            u64::try_from(u128::from(period) * u128::from(rank) / u128::from(members)).unwrap_or(0)
        } else {
            0
        };
        SnapshotSchedule { period, phase }
    }

    /// How many build points lie at or before `index`, counting one extra point at the start
    /// so that the count never has to go below zero.
    fn points_up_to(&self, index: u64) -> u64 {
        index.saturating_add(self.period - self.phase) / self.period
    }

    /// Whether a build point lies after the last snapshot (`snapshot`, 0 when there is none)
    /// and at or before the applied index.
    pub(crate) fn is_due(&self, snapshot: u64, applied: u64) -> bool {
        self.points_up_to(applied) > self.points_up_to(snapshot)
    }

    /// The schedule of `me` among `members` (every voter and learner, ids in ascending order).
    fn for_member(period: u64, me: NodeId, members: impl Iterator<Item = NodeId>) -> Self {
        let ids: Vec<NodeId> = members.collect();
        let rank = ids.iter().position(|id| *id == me).unwrap_or(ids.len());
        let count = u64::try_from(ids.len()).unwrap_or(u64::MAX);
        SnapshotSchedule::new(period, u64::try_from(rank).unwrap_or(u64::MAX), count)
    }
}

/// Triggers this member's snapshot builds by its schedule, until `stop` turns true or openraft
/// stops. openraft's own policy is `Never` (`NodeConfig::openraft_config`).
pub(crate) fn spawn(
    raft: Raft,
    me: NodeId,
    period: u64,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut metrics = raft.metrics();
        // The build point last asked for: openraft ignores a trigger while a build runs, and
        // one build per point is enough.
        let mut asked_for: Option<u64> = None;
        // Metrics change on every applied batch; the membership, and so the schedule, rarely.
        let mut schedule_of = None;
        loop {
            let due = {
                let m = metrics.borrow_and_update();
                let membership_id = *m.membership_config.log_id();
                let schedule = match schedule_of {
                    Some((id, schedule)) if id == membership_id => schedule,
                    _ => {
                        let schedule = SnapshotSchedule::for_member(
                            period,
                            me,
                            m.membership_config.membership().nodes().map(|(id, _)| *id),
                        );
                        schedule_of = Some((membership_id, schedule));
                        schedule
                    }
                };
                let applied = m.last_applied.map_or(0, |id| id.index);
                let snapshot = m.snapshot.map_or(0, |id| id.index);
                let point = schedule.points_up_to(applied);
                (schedule.is_due(snapshot, applied) && asked_for != Some(point)).then_some(point)
            };
            if let Some(point) = due {
                asked_for = Some(point);
                if raft.trigger().snapshot().await.is_err() {
                    return;
                }
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The applied indexes, from 1 to `last`, at which a member with `schedule` would build,
    /// with each build taking the snapshot at the index it was due.
    fn builds(schedule: SnapshotSchedule, last: u64) -> Vec<u64> {
        let mut snapshot = 0;
        let mut built = Vec::new();
        for applied in 1..=last {
            if schedule.is_due(snapshot, applied) {
                built.push(applied);
                snapshot = applied;
            }
        }
        built
    }

    #[test]
    fn three_members_build_a_third_of_a_period_apart() {
        let at = |rank| builds(SnapshotSchedule::new(30, rank, 3), 100);
        assert_eq!(at(0), vec![30, 60, 90]);
        assert_eq!(at(1), vec![10, 40, 70, 100]);
        assert_eq!(at(2), vec![20, 50, 80]);
    }

    #[test]
    fn a_member_outside_the_membership_builds_at_phase_zero() {
        let outside = SnapshotSchedule::for_member(30, 9, [1, 2, 3].into_iter());
        assert_eq!(outside, SnapshotSchedule::new(30, 0, 1));
        let second = SnapshotSchedule::for_member(30, 2, [1, 2, 3].into_iter());
        assert_eq!(second, SnapshotSchedule::new(30, 1, 3));
    }

    proptest! {
        /// Against a model: a build is due exactly when some index `p ≡ phase (mod period)`,
        /// `p > 0`, lies in `(snapshot, applied]`.
        #[test]
        fn due_exactly_when_a_build_point_was_crossed(
            period in 1u64..50,
            rank in 0u64..7,
            members in 1u64..7,
            snapshot in 0u64..300,
            ahead in 0u64..300,
        ) {
            let schedule = SnapshotSchedule::new(period, rank, members);
            let applied = snapshot + ahead;
            let crossed = (snapshot + 1..=applied)
                .any(|p| p % period == schedule.phase % period);
            prop_assert_eq!(schedule.is_due(snapshot, applied), crossed);
        }

        /// Builds are exactly one period apart, whatever the phase, once started.
        #[test]
        fn builds_are_a_period_apart(period in 1u64..40, rank in 0u64..5, members in 1u64..5) {
            let built = builds(SnapshotSchedule::new(period, rank, members), 400);
            prop_assert!(!built.is_empty());
            prop_assert!(built[0] <= period);
            for pair in built.windows(2) {
                prop_assert_eq!(pair[1] - pair[0], period);
            }
        }
    }
}
