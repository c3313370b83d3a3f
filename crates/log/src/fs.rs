//! The small file-system trait the log reaches the disk through, and its real implementation.
//! Tests swap in `testing::FaultyFs` to inject torn writes, short writes and I/O errors. The trait
//! knows nothing about segments or records.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Directory-level operations.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates `path` and its parents if missing.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of directory `path` (not sorted).
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Opens an existing file read-only.
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Opens an existing file for reading and writing.
    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Creates a file for reading and writing, truncating it if it exists.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on directory `path`, held until the returned guard is dropped;
    /// fails with `ErrorKind::WouldBlock` if another handle (in any process) holds it.
    fn lock_dir(&self, path: &Path) -> io::Result<DirLock>;
}

/// Holds a directory lock until dropped (the lock file stays; only the lock goes).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// An open file, addressed by offset so several threads can share it.
pub trait FileHandle: Send + Sync + fmt::Debug {
    /// Reads into `buf` at `offset`; may return fewer bytes (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes `buf` at `offset`; may write fewer bytes.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// `fdatasync`: makes written data (and the size) durable.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: makes data and all metadata durable.
    fn sync_all(&self) -> io::Result<()>;
    /// Current file size.
    fn size_bytes(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeroes) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves blocks so the file is `len` bytes long and reads as zeroes past its data
    /// (`fallocate`); never shrinks the file.
    fn allocate(&self, len: u64) -> io::Result<()>;
}

/// Writes all of `buf` at `offset`, retrying short writes.
pub fn write_all_at(file: &dyn FileHandle, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, offset) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `buf` from `offset`, retrying short reads; fails with `UnexpectedEof` at end of file.
pub fn read_exact_at(file: &dyn FileHandle, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short file")),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads a whole file into memory.
pub fn read_whole(file: &dyn FileHandle) -> io::Result<Vec<u8>> {
    let len = usize::try_from(file.size_bytes()?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
    let mut buf = vec![0u8; len];
    read_exact_at(file, &mut buf, 0)?;
    Ok(buf)
}

/// The real file system (`std::fs` plus `fallocate` through rustix).
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

impl FileSystem for StdFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        Ok(Arc::new(StdFile(File::open(path)?)))
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Arc::new(StdFile(file)))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Arc::new(StdFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn lock_dir(&self, path: &Path) -> io::Result<DirLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join(LOCK_FILE_NAME))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
        Ok(DirLock { _file: file })
    }
}

/// Name of the lock file inside a log directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

#[derive(Debug)]
struct StdFile(File);

impl FileHandle for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let current = self.size_bytes()?;
        if len <= current {
            return Ok(());
        }
        match rustix::fs::fallocate(&self.0, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => Ok(()),
            // File systems without fallocate get a sparse extension: still zeroes, just without
            // reserved blocks (see ADR 0002).
            Err(rustix::io::Errno::OPNOTSUPP) => self.0.set_len(len),
            Err(e) => Err(e.into()),
        }
    }
}
