//! Folding a sequence of log entries into a state, stopping at an index or a time: the engine
//! behind `steward log replay` and `log diff`, and behind snapshot-plus-suffix recovery.
//!
//! The caller reads the log (this crate does no I/O) and feeds entries in index order; entries
//! that are not proposals (openraft blanks, membership) are simply not fed.

use crate::{
    apply, apply_prepared, decode_proposal, ApplyReport, Event, FenceToken, LogIndex, Outcome,
    Prepared, Proposal, Result, State, Summary,
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
        if !self.admit(index, proposal) {
            return None;
        }
        let report = apply(&mut self.state, index, proposal);
        self.note_fences(index, proposal, &report);
        Some(report)
    }

    /// [`Replayer::feed`] for a proposal decoded and prepared ahead, typically on the thread
    /// that reads the log (ADR 0023): the same result.
    pub fn feed_prepared(
        &mut self,
        index: LogIndex,
        prepared: &mut Prepared,
    ) -> Option<ApplyReport> {
        if !self.admit(index, prepared.proposal()) {
            return None;
        }
        let report = apply_prepared(&mut self.state, index, prepared);
        self.note_fences(index, prepared.proposal(), &report);
        Some(report)
    }

    /// Counts the entry if it is before the stop point; false (and stopped) otherwise.
    fn admit(&mut self, index: LogIndex, proposal: &Proposal) -> bool {
        let past = match self.stop {
            StopAt::End => false,
            StopAt::Index(last) => index > last,
            StopAt::Time(last_ms) => proposal.stamp_ms > last_ms,
        };
        if past || self.stopped {
            self.stopped = true;
            return false;
        }
        self.entries += 1;
        self.events += proposal.events.len() as u64;
        true
    }

    fn note_fences(&mut self, index: LogIndex, proposal: &Proposal, report: &ApplyReport) {
        for (event, outcome) in proposal.events.iter().zip(&report.outcomes) {
            if let (Event::LeaderChanged { fence_token, .. }, Outcome::LeaderChanged { .. }) =
                (event, outcome)
            {
                self.fences.push((index, *fence_token));
            }
        }
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
