//! One workflow attempt as a child process: spawned in its own process group with the
//! workflow's argv, environment and working directory, stdout/stderr kept in an [`OutputTail`],
//! progress lines counted, and stopped by SIGTERM to the group then SIGKILL after a grace period.
//!
//! It deliberately knows nothing of jobs, leaders or reports; the agent (`agent.rs`) decides
//! when to start and stop and what to tell the leader.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::tail::{OutputTail, ProgressScanner, OUTPUT_TAIL_BYTES_MAX};

/// How long to wait for the output readers after the process exited (a grandchild may hold the
/// pipes open). Default: 1 s.
pub const OUTPUT_DRAIN_WAIT_MS: u64 = 1_000;
/// How long [`RunningProcess::terminate`] waits for the killed group's last members to be
/// reaped (orphans are reaped by init). Default: 2 s.
pub const GROUP_GONE_WAIT_MS: u64 = 2_000;
/// Read buffer per output stream. Default: 8 KiB.
pub const READ_CHUNK_BYTES: usize = 8 * 1024;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Program and arguments (at least the program).
    pub argv: Vec<String>,
    /// Extra environment variables (the worker's own environment is inherited).
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: PathBuf,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

/// The end of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessExit {
    /// Code or signal.
    pub kind: ExitKind,
    /// Wall time from spawn to exit.
    pub duration_ms: u64,
    /// The last bytes of stdout and stderr.
    pub tail: String,
    /// The last non-empty output line (at most 200 bytes), for error messages.
    pub last_line: Option<String>,
    /// The process was stopped by [`RunningProcess::terminate`].
    pub terminated: bool,
}

impl ProcessExit {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.kind == ExitKind::Code(0)
    }

    /// "exited with code 3" / "killed by signal 9", plus the last output line.
    pub fn describe(&self) -> String {
        let head = match self.kind {
            ExitKind::Code(code) => format!("exited with code {code}"),
            ExitKind::Signal(signal) => format!("killed by signal {signal}"),
        };
        match &self.last_line {
            Some(line) => format!("{head}: {line}"),
            None => head,
        }
    }

    /// The exit code, if it exited.
    pub fn exit_code(&self) -> Option<i32> {
        match self.kind {
            ExitKind::Code(code) => Some(code),
            ExitKind::Signal(_) => None,
        }
    }
}

/// A started child process and its output readers.
#[derive(Debug)]
pub struct RunningProcess {
    child: Child,
    pgid: i32,
    started: Instant,
    tail: Arc<Mutex<OutputTail>>,
    progress: watch::Receiver<u64>,
    readers: Vec<JoinHandle<()>>,
}

/// The process could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot start `{program}`: {message}")]
pub struct SpawnError {
    /// The program.
    pub program: String,
    /// The OS error.
    pub message: String,
}

impl RunningProcess {
    /// Spawns `spec` in a new process group (its own pgid), stdin closed, output captured.
    pub fn spawn(spec: &ProcessSpec) -> Result<RunningProcess, SpawnError> {
        let program = spec.argv.first().cloned().unwrap_or_default();
        let fail = |message: String| SpawnError {
            program: program.clone(),
            message,
        };
        if program.is_empty() {
            return Err(fail("empty command".to_owned()));
        }
        let mut command = Command::new(&program);
        command
            .args(&spec.argv[1..])
            .envs(&spec.env)
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| fail(e.to_string()))?;
        let pid = child
            .id()
            .ok_or_else(|| fail("exited before its id was read".to_owned()))?;
        let pgid = i32::try_from(pid).map_err(|_| fail(format!("pid {pid} out of range")))?;
        let tail = Arc::new(Mutex::new(OutputTail::new(OUTPUT_TAIL_BYTES_MAX)));
        let (progress_tx, progress) = watch::channel(0u64);
        let progress_tx = Arc::new(progress_tx);
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(spawn_reader(
                stdout,
                tail.clone(),
                Some(progress_tx.clone()),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(spawn_reader(stderr, tail.clone(), None));
        }
        Ok(RunningProcess {
            child,
            pgid,
            started: Instant::now(),
            tail,
            progress,
            readers,
        })
    }

    /// The process group id (equal to the child's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// The progress counter: the largest `STEWARD_PROGRESS <n>` seen so far (0 if none).
    pub fn progress(&self) -> watch::Receiver<u64> {
        self.progress.clone()
    }

    /// The output kept so far.
    pub fn tail_text(&self) -> String {
        lock(&self.tail).text()
    }

    /// Waits for the process to exit on its own.
    pub async fn wait(&mut self) -> ProcessExit {
        let status = self.child.wait().await;
        self.finish(status, false).await
    }

    /// SIGTERM to the whole group; SIGKILL to the group if the child has not exited after
    /// `grace`. Returns the exit.
    pub async fn terminate(&mut self, grace: Duration) -> ProcessExit {
        self.signal_group(Signal::SIGTERM);
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                self.signal_group(Signal::SIGKILL);
                self.child.wait().await
            }
        };
        // Whatever the leader did, nothing of the group may outlive the attempt.
        self.signal_group(Signal::SIGKILL);
        self.wait_group_gone().await;
        self.finish(status, true).await
    }

    /// Waits (bounded) until no process of the group is left, reaped ones included.
    async fn wait_group_gone(&self) {
        let until = Instant::now() + Duration::from_millis(GROUP_GONE_WAIT_MS);
        while killpg(Pid::from_raw(self.pgid), None).is_ok() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn signal_group(&self, signal: Signal) {
        // ESRCH (the group is already gone) is the expected end, not an error.
        if let Err(err) = killpg(Pid::from_raw(self.pgid), signal) {
            if err != nix::errno::Errno::ESRCH {
                tracing::warn!(pgid = self.pgid, ?signal, %err, "signalling process group failed");
            }
        }
    }

    async fn finish(
        &mut self,
        status: std::io::Result<std::process::ExitStatus>,
        terminated: bool,
    ) -> ProcessExit {
        let duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let drain = Duration::from_millis(OUTPUT_DRAIN_WAIT_MS);
        for reader in self.readers.drain(..) {
            if tokio::time::timeout(drain, reader).await.is_err() {
                tracing::debug!(pgid = self.pgid, "output still open after exit; tail cut");
            }
        }
        let kind = match status {
            Ok(status) => exit_kind(status),
            Err(err) => {
                tracing::warn!(pgid = self.pgid, %err, "waiting for the child failed");
                ExitKind::Signal(Signal::SIGKILL as i32)
            }
        };
        let tail = lock(&self.tail);
        ProcessExit {
            kind,
            duration_ms,
            tail: tail.text(),
            last_line: tail.last_line(200),
            terminated,
        }
    }
}

fn exit_kind(status: std::process::ExitStatus) -> ExitKind {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitKind::Code(code),
        (None, Some(signal)) => ExitKind::Signal(signal),
        (None, None) => ExitKind::Code(-1),
    }
}

fn lock(tail: &Mutex<OutputTail>) -> std::sync::MutexGuard<'_, OutputTail> {
    // A reader that panicked mid-push leaves a valid buffer; keep using it.
    tail.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn spawn_reader(
    mut stream: impl AsyncRead + Unpin + Send + 'static,
    tail: Arc<Mutex<OutputTail>>,
    progress: Option<Arc<watch::Sender<u64>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buffer = vec![0u8; READ_CHUNK_BYTES];
        let mut scanner = ProgressScanner::default();
        loop {
            let read = match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            let chunk = &buffer[..read];
            lock(&tail).push(chunk);
            if let Some(progress) = &progress {
                if let Some(value) = scanner.feed(chunk) {
                    progress.send_if_modified(|current| {
                        let grew = value > *current;
                        if grew {
                            *current = value;
                        }
                        grew
                    });
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> ProcessSpec {
        ProcessSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: BTreeMap::from([("GREETING".to_owned(), "hi there".to_owned())]),
            cwd: std::env::temp_dir(),
        }
    }

    fn group_alive(pgid: i32) -> bool {
        killpg(Pid::from_raw(pgid), None).is_ok()
    }

    #[tokio::test]
    async fn output_env_cwd_and_exit_code_are_captured() {
        let script = "echo \"$GREETING\"; pwd; echo oops >&2; exit 3";
        let mut process = RunningProcess::spawn(&sh(script)).unwrap();
        let exit = process.wait().await;
        assert_eq!(exit.kind, ExitKind::Code(3));
        assert!(!exit.success());
        assert!(exit.tail.contains("hi there\n"), "{}", exit.tail);
        let cwd = std::env::temp_dir().canonicalize().unwrap();
        assert!(exit.tail.contains(cwd.to_str().unwrap()), "{}", exit.tail);
        assert_eq!(exit.describe(), "exited with code 3: oops");
        assert!(!exit.terminated);
    }

    #[tokio::test]
    async fn progress_lines_raise_the_counter() {
        let script = "echo STEWARD_PROGRESS 1; echo STEWARD_PROGRESS 5; echo STEWARD_PROGRESS 2";
        let mut process = RunningProcess::spawn(&sh(script)).unwrap();
        let progress = process.progress();
        let exit = process.wait().await;
        assert!(exit.success());
        assert_eq!(*progress.borrow(), 5);
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let spec = ProcessSpec {
            argv: vec!["/nonexistent/steward-test-program".into()],
            env: BTreeMap::new(),
            cwd: std::env::temp_dir(),
        };
        let err = RunningProcess::spawn(&spec).unwrap_err();
        assert!(err.to_string().contains("No such file"), "{err}");
        assert!(err
            .to_string()
            .contains("/nonexistent/steward-test-program"));
    }

    #[tokio::test]
    async fn sigterm_stops_the_whole_group() {
        // A shell with a background grandchild: both are in the child's group.
        let mut process = RunningProcess::spawn(&sh("sleep 600 & sleep 600; wait")).unwrap();
        let pgid = process.pgid();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(group_alive(pgid));
        let exit = process.terminate(Duration::from_secs(5)).await;
        assert!(exit.terminated);
        assert_eq!(exit.kind, ExitKind::Signal(Signal::SIGTERM as i32));
        assert!(!group_alive(pgid), "process group {pgid} still alive");
    }

    #[tokio::test]
    async fn sigkill_follows_when_sigterm_is_ignored() {
        let script = "trap '' TERM; echo ready; while true; do sleep 0.05; done";
        let mut process = RunningProcess::spawn(&sh(script)).unwrap();
        let pgid = process.pgid();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let exit = process.terminate(Duration::from_millis(300)).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(exit.kind, ExitKind::Signal(Signal::SIGKILL as i32));
        assert!(exit.tail.contains("ready"));
        assert!(!group_alive(pgid), "process group {pgid} still alive");
    }
}
