//! One member process of a benchmark cluster: started from a fixed command line with its output
//! in a log file, SIGKILLed and reaped, restarted on the same data, and its CPU time read from
//! `/proc/<pid>/stat`. Also the loopback ports the members listen on.
//!
//! It deliberately knows nothing of which system it runs (steward or etcd) or how to talk to
//! it; `steward` and `etcd` build the command lines and the clients.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use anyhow::{bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::bench::cpu::cpu_time;

/// Benchmark ports are taken from this up. Below Linux's default ephemeral range (32768–60999),
/// so a client's outgoing connection can never take a killed member's port before it restarts,
/// and below the crash harness's range (20000–32000), so both can run at once.
const PORT_FLOOR: u16 = 10_000;
/// Benchmark ports are taken below this.
const PORT_CEILING: u16 = 20_000;
/// Environment variables with these prefixes are not passed to members: etcd reads every
/// `ETCD_*` variable as a flag, and steward every `STEWARD_*` variable as a setting, so a
/// variable left in the user's shell could silently change what is measured.
const SCRUBBED_ENV_PREFIXES: [&str; 2] = ["ETCD_", "STEWARD_"];
/// A free loopback address for TCP and UDP both (steward's gossip shares its Raft port),
/// in [`PORT_FLOOR`, `PORT_CEILING`); the start point is spread by process id.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = PORT_CEILING - PORT_FLOOR;
    let spread = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let addr = SocketAddr::from(([127, 0, 0, 1], PORT_FLOOR + (spread + step) % span));
        if TcpListener::bind(addr).is_ok() && UdpSocket::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    bail!("no free loopback port in {PORT_FLOOR}..{PORT_CEILING}")
}

/// One member: its directory, command line and (while running) its process.
#[derive(Debug)]
pub struct Member {
    /// Name in reports and errors (`steward-2`, `etcd-1`).
    pub name: String,
    /// The member's directory: its data directory, config and `output.log` live below it.
    pub dir: PathBuf,
    program: PathBuf,
    args: Vec<OsString>,
    child: Option<Child>,
    /// How the last process ended on its own (exit code or signal), for error messages.
    ended: Option<String>,
}

impl Member {
    /// A member that runs `program args…`; nothing starts until [`Member::spawn`].
    pub fn new(name: String, dir: PathBuf, program: PathBuf, args: Vec<OsString>) -> Self {
        Member {
            name,
            dir,
            program,
            args,
            child: None,
            ended: None,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("output.log")
    }

    /// Starts the process (stdout and stderr appended to `output.log`); a no-op if it runs.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("open {}", self.log_path().display()))?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(&self.dir)
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if SCRUBBED_ENV_PREFIXES.iter().any(|p| text.starts_with(p)) {
                command.env_remove(&name);
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {} ({})", self.name, self.program.display()))?;
        self.child = Some(child);
        self.ended = None;
        Ok(())
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs; a process that exited is reaped and forgotten, and how it
    /// ended is kept for [`Member::ended`].
    pub fn is_running(&mut self) -> bool {
        let ended = match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => return true,
            None => return false,
            Some(Ok(Some(status))) => describe_exit(status),
            Some(Err(err)) => format!("could not be waited on: {err}"),
        };
        self.child = None;
        self.ended = Some(ended);
        false
    }

    /// How the last process ended on its own ("exit status: 1", "signal: 9 (SIGKILL)"), once
    /// [`Member::is_running`] saw it gone; `None` if it never ended by itself.
    pub fn ended(&self) -> Option<&str> {
        self.ended.as_deref()
    }

    /// SIGKILL and reap; a no-op if nothing runs.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        // The process may have exited on its own meanwhile; reaping below covers both cases.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        child
            .wait()
            .with_context(|| format!("reap {} (pid {pid})", self.name))?;
        Ok(())
    }

    /// CPU time (user + system) of the running process so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(Path::new(&format!("/proc/{}/stat", self.pid()?)))
    }

    /// Free space, in MiB, on the file system of the member's directory: a member that dies
    /// silently at start is most often out of disk (its own output cannot be written either).
    pub fn free_mib(&self) -> Option<u64> {
        let stat = nix::sys::statvfs::statvfs(&self.dir).ok()?;
        let bytes = stat.blocks_available().saturating_mul(stat.fragment_size());
        Some(bytes >> 20)
    }

    /// The last `bytes` of the member's output log, for error messages.
    pub fn log_tail(&self, bytes: usize) -> String {
        let text = std::fs::read(self.log_path()).unwrap_or_default();
        let start = text.len().saturating_sub(bytes);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }
}

/// An exit status in words; a signal is named, because a member killed from outside (the OOM
/// killer, a stray `kill`) leaves no output of its own to explain it.
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match status.signal().map(Signal::try_from) {
        Some(Ok(signal)) => format!("{status} ({signal})"),
        _ => status.to_string(),
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Err(err) = self.kill() {
            eprintln!("stopping {}: {err:#}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_runs_is_measured_and_killed() {
        let dir = tempfile::tempdir().unwrap();
        let mut member = Member::new(
            "sleeper".to_owned(),
            dir.path().to_path_buf(),
            PathBuf::from("sh"),
            vec!["-c".into(), "echo started; exec sleep 30".into()],
        );
        assert!(!member.is_running());
        member.spawn().unwrap();
        assert!(member.is_running());
        assert!(member.cpu_time().is_some());
        assert!(member.free_mib().is_some());
        // The shell writes its line at its own pace; wait for it (bounded) before the kill.
        for _ in 0..500 {
            if member.log_tail(100).contains("started") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(member.log_tail(100).contains("started"));
        member.kill().unwrap();
        assert!(!member.is_running());
        assert_eq!(member.pid(), None);
    }

    /// Polls until the member's process is gone (bounded), then says how it ended.
    fn wait_until_ended(member: &mut Member) -> String {
        for _ in 0..500 {
            if !member.is_running() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        member.ended().unwrap_or("still running").to_owned()
    }

    #[test]
    fn a_member_that_ends_by_itself_says_how() {
        let dir = tempfile::tempdir().unwrap();
        let mut member = Member::new(
            "quitter".to_owned(),
            dir.path().to_path_buf(),
            PathBuf::from("sh"),
            vec!["-c".into(), "exit 3".into()],
        );
        member.spawn().unwrap();
        assert_eq!(wait_until_ended(&mut member), "exit status: 3");

        let mut member = Member::new(
            "killed".to_owned(),
            dir.path().to_path_buf(),
            PathBuf::from("sh"),
            vec!["-c".into(), "kill -9 $$".into()],
        );
        member.spawn().unwrap();
        let ended = wait_until_ended(&mut member);
        assert!(ended.contains("SIGKILL"), "{ended}");
    }

    #[test]
    fn free_addresses_are_outside_the_ephemeral_range() {
        let addr = free_addr().unwrap();
        assert!((PORT_FLOOR..PORT_CEILING).contains(&addr.port()));
        assert_ne!(free_addr().unwrap(), addr);
    }
}
