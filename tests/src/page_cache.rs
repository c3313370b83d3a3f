//! Which bytes of a file the kernel still holds only in its page cache (written, never
//! flushed): what a power loss would take. Used by the `power-loss` fault on a killed node's
//! WAL, so the harness loses exactly the data a node never made durable, and nothing it did.
//!
//! How: `posix_fadvise(DONTNEED)` drops the file's clean pages from the cache (and starts
//! writeback of the dirty ones, which stay resident while it runs); `mincore` then reports the
//! pages still resident, which are the dirty ones. A page written back by the kernel on its own
//! since the last `fsync` reads as clean: the probe may under-report what a power loss would
//! lose, never over-report. It deliberately knows nothing of the WAL's format.
// mmap and mincore have no safe wrapper; the mapping is read-only, private to
// `resident_pages`, never dereferenced, and unmapped before it returns.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{bail, Context as _};
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};

/// The page size the kernel reports (4096 on the machines this runs on).
pub fn page_bytes() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096).max(512)
}

/// The byte offset of the first page of `path` that is dirty in the page cache, or `None`
/// when every page of it is durable (as far as the kernel knows).
pub fn first_unsynced_page(path: &Path) -> anyhow::Result<Option<u64>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    posix_fadvise(
        file.as_raw_fd(),
        0,
        0,
        PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .with_context(|| format!("dropping the clean pages of {}", path.display()))?;
    let resident = resident_pages(&file, len)
        .with_context(|| format!("reading the page residency of {}", path.display()))?;
    let page = page_bytes();
    Ok(resident.iter().position(|r| *r).map(|i| i as u64 * page))
}

/// One flag per page of the first `len` bytes of `file`: resident in the page cache.
fn resident_pages(file: &File, len: u64) -> anyhow::Result<Vec<bool>> {
    let length = usize::try_from(len)?;
    let pages = length.div_ceil(usize::try_from(page_bytes())?);
    // SAFETY: a fresh read-only shared mapping of a file we hold open; the kernel picks the
    // address. Nothing reads through it.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            length,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        bail!("mmap: {}", std::io::Error::last_os_error());
    }
    let mut vector = vec![0u8; pages];
    // SAFETY: `addr` is a live mapping of `length` bytes and `vector` has one byte per page
    // of it, as mincore requires.
    let rc = unsafe { libc::mincore(addr, length, vector.as_mut_ptr()) };
    let err = std::io::Error::last_os_error();
    // SAFETY: unmaps exactly the mapping made above, which nothing references any more.
    let unmapped = unsafe { libc::munmap(addr, length) };
    if rc != 0 {
        bail!("mincore: {err}");
    }
    if unmapped != 0 {
        bail!("munmap: {}", std::io::Error::last_os_error());
    }
    Ok(vector.iter().map(|flags| flags & 1 == 1).collect())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn synced_pages_are_clean_and_later_writes_dirty() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("page-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("probe");
        let page = page_bytes();
        let mut file = File::create(&path)?;
        file.write_all(&vec![1u8; (page * 10) as usize])?;
        file.sync_all()?;
        assert_eq!(first_unsynced_page(&path)?, None);
        // Written after the sync, from the middle of page 10 on.
        file.write_all(&vec![2u8; (page * 3) as usize])?;
        let first = first_unsynced_page(&path)?;
        std::fs::remove_dir_all(&dir)?;
        // The kernel may have written some back meanwhile; it never reports synced pages.
        assert!(first.is_none_or(|offset| offset >= page * 10), "{first:?}");
        assert_eq!(first, Some(page * 10), "writeback raced the probe");
        Ok(())
    }
}
