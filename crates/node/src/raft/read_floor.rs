//! The index a leader's state must have applied before it answers a linearizable read or
//! decides a write (`Node::execute`).
//!
//! openraft's read index is the larger of the leader's commit index and the first entry of its
//! term. That is enough for a leader that won an election (its first entry of the term follows
//! everything committed before). It is not enough for a node that restarts as leader: openraft
//! resumes leadership in the same term from the saved vote, the commit index starts from what
//! the state machine had applied (the sled view is not synced, so after a crash that can be well
//! behind), and entries it committed and acknowledged before the crash are not yet known to be
//! committed again. A read answered then can show a job older than a read answered before the
//! crash (found by the harness, seed 161 of the first soak).
//!
//! The floor fixes that: the first time a leader serves a linearizable read in a term, it takes
//! the end of its log as the floor for that term, and every read in the term waits until the
//! state has applied up to it. The leader's log holds every committed entry (leader
//! completeness), and a leader commits all of its own log while it keeps leading, so the wait
//! ends unless leadership is lost. The floor lives in memory only: a restarted process starts
//! without one and takes a new one.

use std::sync::Mutex;

/// Per-term floor of a leader's linearizable reads.
#[derive(Debug, Default)]
pub(crate) struct ReadFloor {
    /// `(term, index)` of the current floor.
    current: Mutex<Option<(u64, u64)>>,
}

impl ReadFloor {
    /// The floor for `term`: the one already taken in that term, or `last_log_index` (the end of
    /// the leader's log now) if this is the term's first read.
    pub(crate) fn for_term(&self, term: u64, last_log_index: u64) -> u64 {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match *current {
            Some((floor_term, index)) if floor_term == term => index,
            _ => {
                *current = Some((term, last_log_index));
                last_log_index
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReadFloor;

    #[test]
    fn a_floor_is_taken_once_per_term() {
        let floor = ReadFloor::default();
        assert_eq!(floor.for_term(3, 40), 40);
        assert_eq!(
            floor.for_term(3, 55),
            40,
            "later reads in the term keep the floor"
        );
        assert_eq!(floor.for_term(4, 60), 60, "a new term takes a new floor");
        assert_eq!(
            floor.for_term(3, 70),
            70,
            "a term seen again takes a new floor"
        );
    }
}
