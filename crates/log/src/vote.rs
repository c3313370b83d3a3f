//! Durable storage of the Raft vote as opaque bytes in its own small file, replaced atomically.
//! The log does not interpret the vote.

use std::io;
use std::path::Path;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::format::{decode_vote, encode_vote, TEMP_SUFFIX, VOTE_BYTES_MAX, VOTE_FILE_NAME};
use crate::fs::{read_whole, write_all_at, FileSystem};
use crate::wal::{lock, Wal};

impl Wal {
    /// Stores `vote`, replacing the previous one.
    ///
    /// Correctness: written to a temporary file, fsynced, renamed over the old vote, directory
    /// fsynced. Durable on return; a crash before that leaves the old vote or the new one,
    /// never a mix. A failure leaves the old vote in place.
    pub fn save_vote(&self, vote: &[u8]) -> Result<()> {
        if vote.len() as u64 > VOTE_BYTES_MAX {
            return Err(Error::VoteTooLarge {
                vote_bytes: vote.len() as u64,
                limit_bytes: VOTE_BYTES_MAX,
            });
        }
        let _serialised = lock(&self.vote_lock);
        let path = self.dir.join(VOTE_FILE_NAME);
        let tmp = self.dir.join(format!("{VOTE_FILE_NAME}{TEMP_SUFFIX}"));
        let file = self
            .fs
            .create(&tmp)
            .map_err(|e| Error::io("create vote", &tmp, e))?;
        write_all_at(file.as_ref(), &encode_vote(vote), 0)
            .map_err(|e| Error::io("write vote", &tmp, e))?;
        file.sync_all()
            .map_err(|e| Error::io("fsync vote", &tmp, e))?;
        self.fs
            .rename(&tmp, &path)
            .map_err(|e| Error::io("rename vote", &tmp, e))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))
    }

    /// The last saved vote, `None` if none was ever saved. A damaged vote file is
    /// `Error::Corruption`.
    pub fn read_vote(&self) -> Result<Option<Bytes>> {
        read_vote_file(self.fs.as_ref(), &self.dir)
    }
}

/// Reads and validates `dir/vote`.
pub(crate) fn read_vote_file(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Bytes>> {
    let path = dir.join(VOTE_FILE_NAME);
    let file = match fs.open_read(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open vote", &path, e)),
    };
    let bytes = read_whole(file.as_ref()).map_err(|e| Error::io("read vote", &path, e))?;
    match decode_vote(&bytes) {
        Ok(vote) => Ok(Some(Bytes::copy_from_slice(vote))),
        Err(reason) => Err(Error::corruption(&path, 0, reason)),
    }
}
