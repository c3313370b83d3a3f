//! The WAL flusher: one thread that waits, in write order, for written batches to become durable
//! and only then tells openraft (its `LogFlushed` callback). Because `append` returns as soon as
//! a batch is written (readable), openraft keeps handing over batches while earlier ones sync,
//! and the WAL's group commit covers them with one `fdatasync`.
//!
//! It does not write: the log store does, under openraft's sequential calls.

use std::sync::mpsc;
use std::sync::{Arc, Weak};

use openraft::storage::LogFlushed;
use steward_log::{Wal, WriteTicket};
use tokio::sync::oneshot;

use crate::raft::TypeConfig;

enum Job {
    /// Wait for `ticket`, then report to openraft.
    Flush(WriteTicket, LogFlushed<TypeConfig>),
    /// Answer once every earlier job is done (before truncating or purging).
    Barrier(oneshot::Sender<()>),
}

/// Handle to the flusher thread; the thread ends when every handle is dropped.
#[derive(Clone)]
pub(crate) struct Flusher {
    jobs: mpsc::Sender<Job>,
}

fn sync(wal: &Weak<Wal>, ticket: WriteTicket) -> std::io::Result<()> {
    let Some(wal) = wal.upgrade() else {
        return Err(std::io::Error::other("the WAL was closed"));
    };
    wal.wait_durable(ticket)
        .map_err(|e| std::io::Error::other(format!("sync the WAL: {e}")))
}

impl Flusher {
    /// Starts the thread for `wal`. The thread holds the WAL only weakly, so dropping the log
    /// store closes the WAL (and releases its directory lock) at once.
    pub(crate) fn start(wal: &Arc<Wal>) -> std::io::Result<Flusher> {
        let wal: Weak<Wal> = Arc::downgrade(wal);
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("wal-flusher".into())
            .spawn(move || {
                for job in queue {
                    match job {
                        Job::Flush(ticket, callback) => {
                            callback.log_io_completed(sync(&wal, ticket))
                        }
                        // The waiter may have gone away (its task was cancelled); nothing to tell.
                        Job::Barrier(done) => drop(done.send(())),
                    }
                }
            })?;
        Ok(Flusher { jobs })
    }

    /// Queues `callback` to fire once `ticket` is durable. If the thread is gone, the callback
    /// fires at once with an error (openraft then stops on a storage error).
    pub(crate) fn flush(&self, ticket: WriteTicket, callback: LogFlushed<TypeConfig>) {
        if let Err(mpsc::SendError(Job::Flush(_, callback))) =
            self.jobs.send(Job::Flush(ticket, callback))
        {
            callback.log_io_completed(Err(std::io::Error::other("the WAL flusher stopped")));
        }
    }

    /// Waits until every batch queued so far is durable and reported.
    pub(crate) async fn barrier(&self) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Barrier(done))
            .map_err(|_| "the WAL flusher stopped".to_string())?;
        wait.await
            .map_err(|_| "the WAL flusher stopped".to_string())
    }
}
