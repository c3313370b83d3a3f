//! Removing records: `truncate_after` (Raft conflict resolution) and `purge_before` (after a
//! snapshot). Both are durable before they return and order their file operations so that a
//! crash in the middle leaves a valid log (a prefix or a suffix of the old one, respectively).

use crate::error::{Error, Result};
use crate::record::LogIndex;
use crate::segment::Segment;
use crate::wal::{State, Wal};

impl Wal {
    /// Removes every record with an index greater than `index`. A no-op when there is none.
    /// Fails with `Error::TruncateBeforeFirst` (nothing changed) when `index + 1` is below the
    /// first record, which was purged. openraft's `truncate(log_id)` is
    /// `truncate_after(log_id.index - 1)`.
    ///
    /// Correctness: later segments are deleted last-first and the directory fsynced, then the
    /// segment holding `index + 1` is shrunk to the cut and fsynced; a crash leaves the old log
    /// or a prefix of it that still holds every record up to `index`. Durable on return.
    pub fn truncate_after(&self, index: LogIndex) -> Result<()> {
        let mut st = self.lock_state()?;
        self.flush_pending(&mut st)?;
        let (Some(first), Some(last)) = (st.first_index(), st.last_index()) else {
            return Ok(());
        };
        if index.0 >= last {
            return Ok(());
        }
        let cut = index.0 + 1;
        if cut < first {
            return Err(Error::TruncateBeforeFirst {
                index: index.0,
                first,
            });
        }
        let keep = st.segments.partition_point(|s| s.first_index <= cut);
        self.remove_segments_from_back(&mut st, keep)?;
        let Some(seg) = st.segments.last_mut() else {
            unreachable!("the segment holding the first record is kept");
        };
        seg.cut_from(cut).map_err(|e| self.poison_with(e))
    }

    /// Deletes whole segments whose records all have indices below `index`. The active segment
    /// goes only when the whole log is below `index`: then the log becomes empty and the next
    /// append must start exactly at `index` (`max(index, next_index)`), which survives a reopen
    /// because an empty segment named `index` is created first.
    ///
    /// Correctness: the empty segment is created durably before anything is deleted, and
    /// segments are deleted oldest-first, so a crash leaves a suffix of the old log, or the new
    /// empty segment with leftovers before it that recovery deletes. Durable on return.
    pub fn purge_before(&self, index: LogIndex) -> Result<()> {
        let mut st = self.lock_state()?;
        self.flush_pending(&mut st)?;
        let index = index.0;
        let reset = match st.next_index() {
            None => true,
            Some(next) => index > next || (index == next && st.records() > 0),
        };
        if reset {
            let old = st.segments.len();
            // An empty active segment already named `index` (after a roll or a cut) is exactly
            // the segment a reset would create: keep it, drop everything before it.
            if st
                .segments
                .last()
                .is_some_and(|s| s.records() == 0 && s.first_index == index)
            {
                return self.remove_segments_from_front(&mut st, old - 1);
            }
            let fresh = Segment::create(
                self.fs.as_ref(),
                &self.dir,
                index,
                self.options.segment_bytes_max,
            )
            .map_err(|e| self.poison_with(e))?;
            st.segments.push(fresh);
            return self.remove_segments_from_front(&mut st, old);
        }
        let sealed = st.segments.len().saturating_sub(1);
        let purgeable = st.segments[..sealed]
            .iter()
            .take_while(|s| s.next_index() <= index)
            .count();
        self.remove_segments_from_front(&mut st, purgeable)
    }

    /// Deletes segments `keep..` newest first, then fsyncs the directory.
    fn remove_segments_from_back(&self, st: &mut State, keep: usize) -> Result<()> {
        if st.segments.len() <= keep {
            return Ok(());
        }
        while st.segments.len() > keep {
            let Some(seg) = st.segments.pop() else { break };
            self.fs
                .remove_file(&seg.path)
                .map_err(|e| self.poison_with(Error::io("remove segment", &seg.path, e)))?;
        }
        self.sync_dir()
    }

    /// Deletes the first `count` segments oldest first, then fsyncs the directory.
    fn remove_segments_from_front(&self, st: &mut State, count: usize) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        for seg in st.segments.drain(..count) {
            self.fs
                .remove_file(&seg.path)
                .map_err(|e| self.poison_with(Error::io("remove segment", &seg.path, e)))?;
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<()> {
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| self.poison_with(Error::io("fsync directory", &self.dir, e)))
    }
}
