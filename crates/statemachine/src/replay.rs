//! Folding a sequence of log entries into a state, stopping at an index or a time: the engine
//! behind `steward log replay` and `log diff`, and behind snapshot-plus-suffix recovery.
//!
//! The caller reads the log (this crate does no I/O) and feeds entries in index order; entries
//! that are not proposals (openraft blanks, membership) are simply not fed.

use crate::{
    apply, decode_proposal, ApplyReport, Event, FenceToken, LogIndex, Outcome, Proposal, Result,
    State, Summary,
};

/// Where to stop folding (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// Fold everything.
    End,
    /// Fold entries with index at most this.
    Index(LogIndex),
    /// Fold entries until the first whose stamp is after this (ms since the Unix epoch).
    Time(u64),
}

/// Folds entries one by one into a state until the stop point.
#[derive(Debug, Clone)]
pub struct Replayer {
    state: State,
    stop: StopAt,
    stopped: bool,
    entries: u64,
    events: u64,
    fences: Vec<(LogIndex, FenceToken)>,
}

impl Replayer {
    /// Starts from `state` (empty, or restored from a snapshot).
    pub fn new(state: State, stop: StopAt) -> Replayer {
        let fences = vec![(state.globals().last_applied, state.globals().fence_token)];
        Replayer {
            state,
            stop,
            stopped: false,
            entries: 0,
            events: 0,
            fences,
        }
    }

    /// Applies the entry unless the stop point is passed; `None` once stopped (this entry and
    /// every later one are ignored).
    pub fn feed(&mut self, index: LogIndex, proposal: &Proposal) -> Option<ApplyReport> {
        let past = match self.stop {
            StopAt::End => false,
            StopAt::Index(last) => index > last,
            StopAt::Time(last_ms) => proposal.stamp_ms > last_ms,
        };
        if past || self.stopped {
            self.stopped = true;
            return None;
        }
        self.entries += 1;
        self.events += proposal.events.len() as u64;
        let report = apply(&mut self.state, index, proposal);
        for (event, outcome) in proposal.events.iter().zip(&report.outcomes) {
            if let (Event::LeaderChanged { fence_token, .. }, Outcome::LeaderChanged { .. }) =
                (event, outcome)
            {
                self.fences.push((index, *fence_token));
            }
        }
        Some(report)
    }

    /// The fence token in force after the entry at `index` was applied (for showing the fence
    /// of a dispatch or a cancel in a timeline).
    pub fn fence_at(&self, index: LogIndex) -> FenceToken {
        let position = self
            .fences
            .partition_point(|(changed_at, _)| *changed_at <= index);
        position
            .checked_sub(1)
            .map_or(FenceToken(0), |last| self.fences[last].1)
    }

    /// Decodes a WAL payload of kind 1 and feeds it.
    pub fn feed_payload(&mut self, index: LogIndex, payload: &[u8]) -> Result<Option<ApplyReport>> {
        let proposal = decode_proposal(payload)?;
        Ok(self.feed(index, &proposal))
    }

    /// True once an entry past the stop point was seen.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Entries and events applied so far.
    pub fn applied(&self) -> (u64, u64) {
        (self.entries, self.events)
    }

    /// The state so far.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state, consuming the replayer.
    pub fn into_state(self) -> State {
        self.state
    }

    /// Summary of the state so far.
    pub fn summary(&self) -> Summary {
        self.state.summary()
    }
}

/// Applies every entry to `state` in order; returns how many events were applied.
pub fn fold<'p>(
    state: &mut State,
    entries: impl IntoIterator<Item = (LogIndex, &'p Proposal)>,
) -> u64 {
    let mut events = 0;
    for (index, proposal) in entries {
        events += proposal.events.len() as u64;
        apply(state, index, proposal);
    }
    events
}
