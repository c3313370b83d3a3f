//! Background threads at the lowest CPU priority (ADR 0020, ADR 0031).
//!
//! On a machine with few cores, a thread that runs for milliseconds without sleeping (a view
//! write, sled's flush, a snapshot's encoding) kept a woken thread of the write path (a tokio
//! worker, the WAL flusher) waiting in the same run queue for the whole of it, even with the
//! other core idle. At nice 19 the scheduler preempts such a thread as soon as a thread of
//! normal priority wakes. This module only lowers priorities; it decides nothing about what
//! runs in the background.

use std::path::Path;
use std::sync::mpsc;

/// The nice value of background work: the lowest priority Linux has.
const BACKGROUND_NICE: i32 = 19;

/// Names (prefixes) of the threads sled 0.34 starts for itself: its I/O pool and its periodic
/// flusher. They only write the view, which nothing waits for.
const SLED_THREAD_NAMES: [&str; 2] = ["sled-io-", "log flusher"];

/// Drops the calling thread to the lowest priority (on Linux the nice value is per thread and
/// inherited by the threads it starts). `what` names the thread in the warning if that fails.
pub(crate) fn lower_this_threads_priority(what: &str) {
    if let Err(e) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICE)
    {
        tracing::warn!(error = %e, thread = what, "lowering a background thread's priority failed");
    }
}

/// Drops sled's own threads of this process to the lowest priority. sled starts them itself,
/// some while it opens (at the opener's priority), so they are found by name. Returns how
/// many were lowered.
pub(crate) fn lower_sled_threads_priority() -> usize {
    lower_threads_named(Path::new("/proc/self/task"), &SLED_THREAD_NAMES)
}

fn lower_threads_named(tasks: &Path, prefixes: &[&str]) -> usize {
    let entries = match std::fs::read_dir(tasks) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(error = %e, dir = %tasks.display(), "listing this process's threads failed");
            return 0;
        }
    };
    let mut lowered = 0;
    for entry in entries.flatten() {
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        else {
            continue;
        };
        // A thread may end between the listing and the read: skipped.
        let Ok(name) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if !prefixes.iter().any(|prefix| name.starts_with(prefix)) {
            continue;
        }
        match rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE) {
            Ok(()) => lowered += 1,
            Err(e) => {
                tracing::warn!(error = %e, thread = name.trim_end(), "lowering a sled thread's priority failed");
            }
        }
    }
    lowered
}

/// A job for a [`LowPriorityThread`].
type Job = Box<dyn FnOnce() + Send>;

/// A thread at the lowest priority that runs the jobs handed to it one at a time, for callers
/// that must keep their own priority (the view writer reads the state under its lock, and a
/// preempted low-priority holder would keep `apply` waiting). It ends when dropped.
#[derive(Debug)]
pub(crate) struct LowPriorityThread {
    jobs: mpsc::Sender<Job>,
}

impl LowPriorityThread {
    /// Starts the thread, named `name`.
    pub(crate) fn start(name: &str) -> std::io::Result<LowPriorityThread> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let what = name.to_owned();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                lower_this_threads_priority(&what);
                for job in queue {
                    job();
                }
            })
            .map(|_| LowPriorityThread { jobs })
    }

    /// Runs `job` on the thread and waits for its result; `None` if the thread is gone.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (result, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || drop(result.send(job())));
        self.jobs.send(job).ok()?;
        answer.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of(tid: rustix::process::Pid) -> i32 {
        rustix::process::getpriority_process(Some(tid)).unwrap_or(i32::MIN)
    }

    /// A thread with the given name is lowered; the test's own thread is not. (Not a sled name:
    /// a view writer of another test in this process lowers those at any moment.)
    #[test]
    fn lowers_only_the_threads_with_the_given_names() {
        let (tid_sender, tid_receiver) = std::sync::mpsc::channel();
        let (stop_sender, stop_receiver) = std::sync::mpsc::channel::<()>();
        let named = std::thread::Builder::new()
            .name("lower-me-test".into())
            .spawn(move || {
                tid_sender
                    .send(rustix::thread::gettid())
                    .expect("send the thread id");
                stop_receiver.recv().expect("wait for the test's end");
            })
            .expect("spawn a test thread");
        let tid = tid_receiver.recv().expect("the test thread's id");
        let mine = nice_of(rustix::thread::gettid());
        assert_eq!(nice_of(tid), mine);
        let lowered = lower_threads_named(Path::new("/proc/self/task"), &["lower-me-"]);
        assert!(lowered >= 1, "the named thread was not found");
        assert_eq!(nice_of(tid), BACKGROUND_NICE);
        assert_eq!(nice_of(rustix::thread::gettid()), mine);
        stop_sender.send(()).expect("end the test thread");
        named.join().expect("join the test thread");
    }

    #[test]
    fn a_low_priority_thread_runs_jobs_at_nice_19_and_returns_their_results() {
        let thread = LowPriorityThread::start("test-low").expect("start the thread");
        let nice = thread.run(|| nice_of(rustix::thread::gettid()));
        assert_eq!(nice, Some(BACKGROUND_NICE));
        assert_eq!(thread.run(|| 6 * 7), Some(42));
    }
}
