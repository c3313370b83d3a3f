//! A fault-injecting `FileSystem` for tests: torn writes (a crash in the middle of a write),
//! short writes, and I/O errors on write or sync. It wraps the real file system; it does not
//! simulate a page cache, so a "crash" is modelled as "this write landed only in part and
//! nothing after it reaches the disk".

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::fs::{DirLock, FileHandle, FileSystem, StdFs};

/// Switches shared by a `FaultyFs` and the files it opened.
#[derive(Debug)]
pub struct Faults {
    /// Bytes that may still be written before the simulated crash (`u64::MAX`: no crash).
    write_budget_bytes: AtomicU64,
    crashed: AtomicBool,
    short_writes: AtomicBool,
    fail_next_sync: AtomicBool,
    fail_next_write: AtomicBool,
    sync_delay_us: AtomicU64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            write_budget_bytes: AtomicU64::new(u64::MAX),
            crashed: AtomicBool::new(false),
            short_writes: AtomicBool::new(false),
            fail_next_sync: AtomicBool::new(false),
            fail_next_write: AtomicBool::new(false),
            sync_delay_us: AtomicU64::new(0),
        }
    }
}

impl Faults {
    /// After `bytes` more bytes are written, the write in progress lands only in part and fails;
    /// every later operation fails too (the machine is "down").
    pub fn crash_after_bytes(&self, bytes: u64) {
        self.write_budget_bytes.store(bytes, Ordering::SeqCst);
    }

    /// Whether the simulated crash happened.
    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Makes every write land at most half its bytes (at least one), returning the short count.
    pub fn set_short_writes(&self, on: bool) {
        self.short_writes.store(on, Ordering::SeqCst);
    }

    /// Makes the next `fdatasync`/`fsync` of a file fail with `EIO`.
    pub fn fail_next_sync(&self) {
        self.fail_next_sync.store(true, Ordering::SeqCst);
    }

    /// Makes the next write fail with `EIO` without writing anything.
    pub fn fail_next_write(&self) {
        self.fail_next_write.store(true, Ordering::SeqCst);
    }

    /// Makes every `fdatasync` take at least `delay` (a slow disk), so tests can observe group
    /// commit on a file system where syncing is free.
    pub fn set_sync_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.sync_delay_us.store(us, Ordering::SeqCst);
    }

    fn check_up(&self) -> io::Result<()> {
        if self.crashed() {
            Err(io::Error::other("simulated crash: the machine is down"))
        } else {
            Ok(())
        }
    }
}

/// The real file system with injectable faults.
#[derive(Debug, Clone, Default)]
pub struct FaultyFs {
    faults: Arc<Faults>,
}

impl FaultyFs {
    /// A fault-free file system and the switches to break it.
    pub fn new() -> (Self, Arc<Faults>) {
        let fs = FaultyFs::default();
        let faults = Arc::clone(&fs.faults);
        (fs, faults)
    }

    fn wrap(&self, inner: io::Result<Arc<dyn FileHandle>>) -> io::Result<Arc<dyn FileHandle>> {
        Ok(Arc::new(FaultyFile {
            inner: inner?,
            faults: Arc::clone(&self.faults),
        }))
    }
}

impl FileSystem for FaultyFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.faults.check_up()?;
        StdFs.create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.faults.check_up()?;
        StdFs.list_dir(path)
    }

    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        self.faults.check_up()?;
        self.wrap(StdFs.open_read(path))
    }

    fn open_write(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        self.faults.check_up()?;
        self.wrap(StdFs.open_write(path))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn FileHandle>> {
        self.faults.check_up()?;
        self.wrap(StdFs.create(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.faults.check_up()?;
        StdFs.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.faults.check_up()?;
        StdFs.remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.faults.check_up()?;
        StdFs.sync_dir(path)
    }

    fn lock_dir(&self, path: &Path) -> io::Result<DirLock> {
        self.faults.check_up()?;
        StdFs.lock_dir(path)
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn FileHandle>,
    faults: Arc<Faults>,
}

impl FileHandle for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let f = &self.faults;
        f.check_up()?;
        if f.fail_next_write.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected write error"));
        }
        let mut len = buf.len();
        if f.short_writes.load(Ordering::SeqCst) {
            len = (len / 2).max(1);
        }
        let budget = f.write_budget_bytes.load(Ordering::SeqCst);
        if budget != u64::MAX {
            let allowed = usize::try_from(budget).unwrap_or(usize::MAX).min(len);
            f.write_budget_bytes
                .store(budget - allowed as u64, Ordering::SeqCst);
            if allowed < len {
                self.inner.write_at(&buf[..allowed], offset)?;
                f.crashed.store(true, Ordering::SeqCst);
                return Err(io::Error::other("simulated crash during write"));
            }
        }
        self.inner.write_at(&buf[..len], offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.faults.check_up()?;
        if self.faults.fail_next_sync.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected fdatasync error"));
        }
        let delay_us = self.faults.sync_delay_us.load(Ordering::SeqCst);
        if delay_us > 0 {
            std::thread::sleep(Duration::from_micros(delay_us));
        }
        self.inner.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.faults.check_up()?;
        if self.faults.fail_next_sync.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync error"));
        }
        self.inner.sync_all()
    }

    fn size_bytes(&self) -> io::Result<u64> {
        self.inner.size_bytes()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.check_up()?;
        self.inner.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.faults.check_up()?;
        self.inner.allocate(len)
    }
}
