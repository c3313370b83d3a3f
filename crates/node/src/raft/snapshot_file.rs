//! Snapshot files: one self-checking file per snapshot, written durably (file and directory
//! fsynced) before the WAL may be purged up to it. ADR 0007.
//!
//! The same bytes are what openraft streams to a lagging follower, which checks and stores them
//! verbatim. This module knows nothing of the state inside the body.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Identifies a steward snapshot file ("STSF"; the state inside carries its own "STSN").
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"STSF";
/// Version of the snapshot file layout (header and body encoding).
pub const SNAPSHOT_VERSION: u16 = 1;
/// Header length in bytes.
pub const SNAPSHOT_HEADER_BYTES: usize = 20;
/// File-name suffix of finished snapshot files.
const SNAPSHOT_SUFFIX: &str = ".snap";
/// File-name suffix while a snapshot is being written.
const TEMP_SUFFIX: &str = ".tmp";

// File layout (little-endian):
//
//   0       4         6          8             16        20
//   +-------+---------+----------+-------------+---------+------------------------+
//   | magic | version | reserved | body bytes  | crc32   | body: bincode(         |
//   | STSF  | u16     | u16 = 0  | u64         | of body |   SnapshotBody)        |
//   +-------+---------+----------+-------------+---------+------------------------+

/// Frames `body` as a snapshot file image.
pub fn encode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + body.len());
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Checks a snapshot file image and returns its body. `origin` names the file or peer in errors.
pub fn decode<'a>(image: &'a [u8], origin: &str) -> Result<&'a [u8]> {
    let corrupt = |offset: usize, message: String| Error::Storage {
        what: format!("check snapshot {origin} at offset {offset}"),
        message,
    };
    if image.len() < SNAPSHOT_HEADER_BYTES {
        return Err(corrupt(
            0,
            format!("{} bytes is shorter than the header", image.len()),
        ));
    }
    if image[..4] != SNAPSHOT_MAGIC {
        return Err(corrupt(0, "bad magic".into()));
    }
    let version = u16::from_le_bytes([image[4], image[5]]);
    if version != SNAPSHOT_VERSION {
        return Err(corrupt(4, format!("unsupported version {version}")));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&image[8..16]);
    let body_bytes = u64::from_le_bytes(len);
    let body = &image[SNAPSHOT_HEADER_BYTES..];
    if body.len() as u64 != body_bytes {
        return Err(corrupt(
            8,
            format!("header says {body_bytes} body bytes, found {}", body.len()),
        ));
    }
    let crc = u32::from_le_bytes([image[16], image[17], image[18], image[19]]);
    if crc32fast::hash(body) != crc {
        return Err(corrupt(SNAPSHOT_HEADER_BYTES, "CRC mismatch".into()));
    }
    Ok(body)
}

/// The directory holding snapshot files.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Storage {
        what,
        message: e.to_string(),
    }
}

impl SnapshotDir {
    /// Opens (creating if needed) `dir`, removing leftovers of interrupted writes.
    pub fn open(dir: &Path) -> Result<SnapshotDir> {
        fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let snapshots = SnapshotDir {
            dir: dir.to_path_buf(),
        };
        for path in snapshots.list(TEMP_SUFFIX)? {
            fs::remove_file(&path).map_err(io(format!("remove {}", path.display())))?;
        }
        Ok(snapshots)
    }

    /// Opens `dir` for reading only: creates nothing and removes nothing (offline tools read a
    /// stopped node's directory as it is).
    pub fn open_read_only(dir: &Path) -> SnapshotDir {
        SnapshotDir {
            dir: dir.to_path_buf(),
        }
    }

    fn list(&self, suffix: &str) -> Result<Vec<PathBuf>> {
        let entries =
            fs::read_dir(&self.dir).map_err(io(format!("list {}", self.dir.display())))?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io(format!("list {}", self.dir.display())))?;
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(suffix) {
                paths.push(entry.path());
            }
        }
        // Names embed the zero-padded last index, so lexical order is index order.
        paths.sort();
        Ok(paths)
    }

    /// The newest finished snapshot file, if any.
    pub fn latest_path(&self) -> Result<Option<PathBuf>> {
        Ok(self.list(SNAPSHOT_SUFFIX)?.pop())
    }

    /// The newest finished snapshot file's image, if any (checked by the caller with [`decode`]).
    pub fn read_latest(&self) -> Result<Option<(PathBuf, Vec<u8>)>> {
        let Some(path) = self.latest_path()? else {
            return Ok(None);
        };
        let image = fs::read(&path).map_err(io(format!("read {}", path.display())))?;
        Ok(Some((path, image)))
    }

    /// Writes `image` as the snapshot covering up to `last_index`, then deletes older ones.
    ///
    /// Correctness: written to a temporary file, fdatasynced, renamed, directory fsynced; only
    /// then are older snapshots deleted. Durable on return, so the WAL may be purged up to
    /// `last_index` afterwards. A crash before the rename leaves a temporary file that
    /// [`SnapshotDir::open`] removes, and the previous snapshot intact.
    ///
    /// A newer snapshot is never deleted: a build runs on a thread of its own (ADR 0020) while
    /// openraft goes on, so an installed snapshot, and the WAL purge behind it, can land while
    /// an older build is still writing. That build's file is then the stale one; it stays
    /// until the next write, and [`SnapshotDir::latest_path`] never picks it.
    pub fn write(&self, last_index: u64, snapshot_id: &str, image: &[u8]) -> Result<PathBuf> {
        let safe_id: String = snapshot_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = format!("snapshot-{last_index:020}-{safe_id}");
        let path = self.dir.join(format!("{name}{SNAPSHOT_SUFFIX}"));
        let tmp = self.dir.join(format!("{name}{TEMP_SUFFIX}"));
        let mut file = fs::File::create(&tmp).map_err(io(format!("create {}", tmp.display())))?;
        write_paced(&mut file, image)
            .map_err(io(format!("write and fdatasync {}", tmp.display())))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io(format!("rename {}", tmp.display())))?;
        self.sync_dir()?;
        // Names embed the zero-padded last index first, so a name that sorts before this one
        // covers less (or the same index under an older id).
        for old in self.list(SNAPSHOT_SUFFIX)? {
            if old < path {
                fs::remove_file(&old).map_err(io(format!("remove {}", old.display())))?;
            }
        }
        Ok(path)
    }

    fn sync_dir(&self) -> Result<()> {
        let dir = fs::File::open(&self.dir).map_err(io(format!("open {}", self.dir.display())))?;
        dir.sync_all()
            .map_err(io(format!("fsync {}", self.dir.display())))
    }
}

/// How much of a snapshot image is written and fdatasynced at once.
const WRITE_PIECE_BYTES: usize = 4 << 20;
/// The pause after each piece but the last.
const WRITE_PAUSE: Duration = Duration::from_millis(5);

/// Writes `image` in pieces, each fdatasynced, with a pause between them, so that the file
/// is durable when this returns. Why not one write and one fdatasync: the WAL syncs on the
/// same disk, and behind tens of MB of a snapshot's dirty pages every write's sync waited
/// (ADR 0020). The pauses cost about 1.2 s per GB of snapshot, on a thread nobody waits for.
fn write_paced(file: &mut fs::File, image: &[u8]) -> std::io::Result<()> {
    for (n, piece) in image.chunks(WRITE_PIECE_BYTES).enumerate() {
        if n > 0 {
            std::thread::sleep(WRITE_PAUSE);
        }
        file.write_all(piece)?;
        file.sync_data()?;
    }
    if image.is_empty() {
        file.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_round_trip_and_damage_detection() {
        let image = encode(b"state bytes");
        assert_eq!(decode(&image, "t").unwrap(), b"state bytes");
        let mut flipped = image.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(decode(&flipped, "t").is_err(), "CRC catches a flipped bit");
        assert!(
            decode(&image[..image.len() - 1], "t").is_err(),
            "truncation is caught"
        );
        let mut version = image.clone();
        version[4] = 7;
        assert!(decode(&version, "t").is_err());
        assert!(decode(b"STSF", "t").is_err());
    }

    #[test]
    fn latest_wins_and_older_files_and_temporaries_go() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::open(tmp.path()).unwrap();
        assert!(dir.read_latest().unwrap().is_none());
        dir.write(5, "1-5-a", &encode(b"five")).unwrap();
        dir.write(12, "2-12-b", &encode(b"twelve")).unwrap();
        fs::write(
            tmp.path().join("snapshot-00000000000000000099-x.tmp"),
            b"junk",
        )
        .unwrap();
        let dir = SnapshotDir::open(tmp.path()).unwrap();
        let (path, image) = dir.read_latest().unwrap().unwrap();
        assert!(path.to_string_lossy().contains("00000000000000000012"));
        assert_eq!(decode(&image, "t").unwrap(), b"twelve");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    /// A build that finishes after a newer snapshot was written (an install while the build
    /// was paced out on its own thread) must not delete the newer one: the WAL may already be
    /// purged up to it.
    #[test]
    fn an_older_snapshot_written_late_leaves_the_newer_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::open(tmp.path()).unwrap();
        dir.write(5, "1-5-a", &encode(b"five")).unwrap();
        dir.write(20, "3-20-c", &encode(b"twenty")).unwrap();
        dir.write(12, "2-12-b", &encode(b"twelve")).unwrap();
        let (path, image) = dir.read_latest().unwrap().unwrap();
        assert!(path.to_string_lossy().contains("00000000000000000020"));
        assert_eq!(decode(&image, "t").unwrap(), b"twenty");
        let names: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|name| name.contains("00000000000000000005")),
            "older than both: deleted ({names:?})"
        );
        dir.write(25, "3-25-d", &encode(b"twenty-five")).unwrap();
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            1,
            "the next write cleans up"
        );
    }
}
