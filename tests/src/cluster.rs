//! The cluster runner: real `steward server` processes on loopback, each with its own data
//! directory and config file, that the harness can start, SIGKILL, SIGSTOP/SIGCONT and restart,
//! and optionally `steward worker` processes joined to them.
//!
//! It deliberately knows nothing of workloads or checks; it only owns processes and files.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use steward_node::client::{Client, Url};

/// How long a started node gets to listen. Default: 60 s (a node reopening a WAL whose pages a
/// power loss dropped from the cache reads it from a disk other processes share).
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// Timing knobs written into every node's config.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Leader heartbeat. Default: 50 ms.
    pub heartbeat_interval_ms: u64,
    /// Election timeout lower bound. Default: 300 ms.
    pub election_timeout_min_ms: u64,
    /// Election timeout upper bound. Default: 600 ms.
    pub election_timeout_max_ms: u64,
    /// Snapshot after this many entries (small, so snapshots and purges happen). Default: 200.
    pub snapshot_after_entries: u64,
    /// `"always"`, `"batch"` or `"never"` (the last only to show the harness catches it).
    pub sync_policy: &'static str,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            snapshot_after_entries: 200,
            sync_policy: "always",
        }
    }
}

/// One manager slot: its current id (a wiped node re-joins under a new id), addresses, files.
#[derive(Debug)]
pub struct NodeSlot {
    /// Current node id.
    pub id: u64,
    /// Raft TCP (and gossip UDP) address.
    pub raft_addr: SocketAddr,
    /// HTTP API address.
    pub api_addr: SocketAddr,
    /// Slot directory: `data/`, `config.toml`, `stderr.log`.
    pub dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl NodeSlot {
    /// The node's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The WAL directory below the data directory.
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir().join("wal")
    }

    /// The base URL of its API.
    pub fn url(&self) -> anyhow::Result<Url> {
        Ok(Url::parse(&format!("http://{}", self.api_addr))?)
    }

    /// Whether a process is running (possibly paused).
    pub fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// Whether it is stopped with SIGSTOP.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.join("stderr.log")
    }
}

/// One worker process (`steward worker --join ...`): its id, directory and process.
#[derive(Debug)]
pub struct WorkerSlot {
    /// Worker id (kept across restarts, so a restart marks the old attempts lost).
    pub id: u64,
    /// `work/` (workflows' working directory) and `stderr.log`.
    pub dir: PathBuf,
    cores: u32,
    child: Option<Child>,
}

/// Worker ids start here, far above any manager id (gossip shares one id space).
pub const WORKER_ID_BASE: u64 = 1_000;
/// Silence after which the leader declares a worker lost. Default: 5 000 ms (the agent's).
pub const WORKER_LEASE_MS: u64 = 5_000;

/// A running (or partly running) cluster.
#[derive(Debug)]
pub struct Cluster {
    binary: PathBuf,
    timing: Timing,
    /// The slots, index 0..n.
    pub slots: Vec<NodeSlot>,
    /// Worker processes (none when completions go through the test-only route).
    pub workers: Vec<WorkerSlot>,
    next_id: u64,
}

/// Ports are taken below this by default, outside Linux's default ephemeral range
/// (32768–60999), so an outgoing connection can never take a stopped node's port before it
/// restarts.
const PORT_CEILING: u16 = 32_000;
/// Ports are taken from this up by default.
const PORT_FLOOR: u16 = 20_000;

/// The loopback ports this process hands out, `floor..ceiling`; set once, before any cluster
/// starts, by [`use_ports`].
static PORT_RANGE: std::sync::OnceLock<(u16, u16)> = std::sync::OnceLock::new();

/// Restricts this process's nodes to ports `floor..ceiling`. Harness processes running side by
/// side need disjoint ranges: a port is only checked free when handed out, so another process
/// could otherwise take a killed node's port before that node restarts.
pub fn use_ports(floor: u16, ceiling: u16) -> anyhow::Result<()> {
    if floor >= ceiling || ceiling > PORT_CEILING_MAX {
        bail!("port range {floor}..{ceiling} is empty or reaches the ephemeral range");
    }
    PORT_RANGE
        .set((floor, ceiling))
        .map_err(|_| anyhow::anyhow!("the port range is already set"))
}

/// The highest port a range may reach: the start of Linux's default ephemeral range.
const PORT_CEILING_MAX: u16 = 32_768;

/// A loopback port free for both TCP and UDP (gossip shares the Raft port) in this process's
/// range; the start point is spread by process id so parallel runs rarely collide.
fn free_port() -> anyhow::Result<SocketAddr> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let (floor, ceiling) = *PORT_RANGE.get_or_init(|| (PORT_FLOOR, PORT_CEILING));
    let span = ceiling - floor;
    let spread = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = floor + (spread + step) % span;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpListener::bind(addr).is_ok() && std::net::UdpSocket::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    bail!("no free loopback port in {floor}..{ceiling}")
}

impl Cluster {
    /// Lays out `nodes` slots under `root` and starts every process.
    pub fn start(binary: &Path, root: &Path, nodes: usize, timing: Timing) -> anyhow::Result<Self> {
        let mut slots = Vec::with_capacity(nodes);
        for index in 0..nodes {
            let dir = root.join(format!("node{}", index + 1));
            std::fs::create_dir_all(dir.join("data"))
                .with_context(|| format!("creating {}", dir.display()))?;
            slots.push(NodeSlot {
                id: index as u64 + 1,
                raft_addr: free_port()?,
                api_addr: free_port()?,
                dir,
                child: None,
                paused: false,
            });
        }
        let mut cluster = Self {
            binary: binary.to_owned(),
            timing,
            next_id: nodes as u64 + 1,
            slots,
            workers: Vec::new(),
        };
        for slot in 0..nodes {
            cluster.write_config(slot, true)?;
            cluster.spawn(slot)?;
        }
        for slot in 0..nodes {
            cluster.wait_healthy(slot)?;
        }
        Ok(cluster)
    }

    fn write_config(&self, slot: usize, bootstrap: bool) -> anyhow::Result<()> {
        let me = &self.slots[slot];
        let t = &self.timing;
        let mut text = String::from("[node]\n");
        writeln!(text, "id = {}", me.id)?;
        writeln!(text, "data_dir = {:?}", me.data_dir().display().to_string())?;
        writeln!(text, "raft_addr = \"{}\"", me.raft_addr)?;
        writeln!(text, "api_addr = \"{}\"", me.api_addr)?;
        writeln!(text, "sync_policy = \"{}\"", t.sync_policy)?;
        writeln!(text, "heartbeat_interval_ms = {}", t.heartbeat_interval_ms)?;
        writeln!(
            text,
            "election_timeout_min_ms = {}",
            t.election_timeout_min_ms
        )?;
        writeln!(
            text,
            "election_timeout_max_ms = {}",
            t.election_timeout_max_ms
        )?;
        writeln!(text, "timeout_check_interval_ms = 500")?;
        writeln!(
            text,
            "snapshot_after_entries = {}",
            t.snapshot_after_entries
        )?;
        writeln!(text, "log_entries_kept_after_snapshot = 50")?;
        writeln!(text, "test_mode = true")?;
        if bootstrap {
            text.push_str("initial_members = [\n");
            for peer in &self.slots {
                writeln!(
                    text,
                    "  {{ id = {}, raft_addr = \"{}\", api_addr = \"{}\" }},",
                    peer.id, peer.raft_addr, peer.api_addr
                )?;
            }
            text.push_str("]\n");
        }
        text.push_str("\n[log]\nlevel = \"warn\"\n");
        let path = me.dir.join("config.toml");
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    fn spawn(&mut self, slot: usize) -> anyhow::Result<()> {
        let me = &mut self.slots[slot];
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(me.stderr_path())?;
        let child = Command::new(&self.binary)
            .arg("server")
            .arg("--config")
            .arg(me.dir.join("config.toml"))
            // Error values stay one readable line; panics keep their backtraces.
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawning {}", self.binary.display()))?;
        me.child = Some(child);
        me.paused = false;
        Ok(())
    }

    /// Waits until the slot's `/healthz` answers, or its process exits (an error with the tail
    /// of its stderr).
    pub fn wait_healthy(&mut self, slot: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        let addr = self.slots[slot].api_addr;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit(slot)? {
                bail!(
                    "node in slot {} exited at start ({status}); stderr tail:\n{}",
                    slot + 1,
                    self.stderr_tail(slot, 2000)
                );
            }
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "node in slot {} did not listen on {addr} within {START_DEADLINE:?}",
            slot + 1
        )
    }

    /// `Some(exit status)` if the slot's process has exited (and forgets it).
    pub fn try_exit(&mut self, slot: usize) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let me = &mut self.slots[slot];
        let Some(child) = me.child.as_mut() else {
            return Ok(None);
        };
        match child.try_wait()? {
            Some(status) => {
                me.child = None;
                Ok(Some(status))
            }
            None => Ok(None),
        }
    }

    /// The last `bytes` of the slot's stderr log.
    pub fn stderr_tail(&self, slot: usize, bytes: usize) -> String {
        let text = std::fs::read(self.slots[slot].stderr_path()).unwrap_or_default();
        let start = text.len().saturating_sub(bytes);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    fn signal(&self, slot: usize, signal: Signal) -> anyhow::Result<()> {
        if let Some(child) = &self.slots[slot].child {
            let pid = i32::try_from(child.id()).context("pid out of range")?;
            kill(Pid::from_raw(pid), signal).with_context(|| format!("{signal} to slot {slot}"))?;
        }
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self, slot: usize) -> anyhow::Result<()> {
        if self.slots[slot].paused {
            self.signal(slot, Signal::SIGCONT)?;
        }
        self.signal(slot, Signal::SIGKILL)?;
        if let Some(mut child) = self.slots[slot].child.take() {
            child.wait()?;
        }
        self.slots[slot].paused = false;
        Ok(())
    }

    /// SIGSTOP.
    pub fn pause(&mut self, slot: usize) -> anyhow::Result<()> {
        self.signal(slot, Signal::SIGSTOP)?;
        self.slots[slot].paused = self.slots[slot].child.is_some();
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, slot: usize) -> anyhow::Result<()> {
        self.signal(slot, Signal::SIGCONT)?;
        self.slots[slot].paused = false;
        Ok(())
    }

    /// Starts the slot's process again on its existing data and waits for it to listen.
    pub fn restart(&mut self, slot: usize) -> anyhow::Result<()> {
        if self.slots[slot].child.is_none() {
            self.spawn(slot)?;
        }
        self.wait_healthy(slot)
    }

    /// Starts the slot's process and expects it to exit non-zero within `within`; returns its
    /// stderr tail. An error if it keeps running (it is then killed).
    pub fn expect_refusal(&mut self, slot: usize, within: Duration) -> anyhow::Result<String> {
        let from = std::fs::metadata(self.slots[slot].stderr_path()).map_or(0, |m| m.len());
        self.spawn(slot)?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit(slot)? {
                if status.success() {
                    bail!("slot {} exited with success on a corrupted log", slot + 1);
                }
                let text = std::fs::read(self.slots[slot].stderr_path())?;
                let start = (from as usize).min(text.len());
                return Ok(String::from_utf8_lossy(&text[start..]).into_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill(slot)?;
        bail!(
            "slot {} kept running on a corrupted log for {within:?}; stderr tail:\n{}",
            slot + 1,
            self.stderr_tail(slot, 2000)
        )
    }

    /// Operator procedure for a node that refuses to start: keep the damaged data aside, give
    /// the slot a fresh id and an empty data directory, start it without bootstrap members.
    /// The caller then removes the old id and adds the new one through the API.
    pub fn wipe_for_rejoin(&mut self, slot: usize) -> anyhow::Result<(u64, u64)> {
        let old = self.slots[slot].id;
        let data = self.slots[slot].data_dir();
        let aside = self.slots[slot].dir.join(format!("data.corrupt-id{old}"));
        std::fs::rename(&data, &aside)
            .with_context(|| format!("moving {} aside", data.display()))?;
        std::fs::create_dir_all(&data)?;
        let new = self.next_id;
        self.next_id += 1;
        self.slots[slot].id = new;
        self.write_config(slot, false)?;
        self.spawn(slot)?;
        self.wait_healthy(slot)?;
        Ok((old, new))
    }

    /// Starts `count` worker processes with `cores` each, joined to every manager, and waits
    /// until the cluster lists them all.
    pub async fn start_workers(&mut self, count: usize, cores: u32) -> anyhow::Result<()> {
        let root = self
            .slots
            .first()
            .and_then(|s| s.dir.parent())
            .context("a cluster without nodes has no workers")?
            .to_owned();
        for index in 0..count {
            let dir = root.join(format!("worker{}", index + 1));
            std::fs::create_dir_all(dir.join("work"))
                .with_context(|| format!("creating {}", dir.display()))?;
            self.workers.push(WorkerSlot {
                id: WORKER_ID_BASE + index as u64,
                dir,
                cores,
                child: None,
            });
            self.spawn_worker(index)?;
        }
        let client = self.client_all(Duration::from_secs(5))?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let listed = client.workers(true).await.map(|w| w.workers.len());
            if listed.as_ref().is_ok_and(|n| *n >= count) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{count} workers not registered within {START_DEADLINE:?}: {listed:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn spawn_worker(&mut self, index: usize) -> anyhow::Result<()> {
        let join: Vec<String> = self.slots.iter().map(|s| s.api_addr.to_string()).collect();
        let me = &mut self.workers[index];
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(me.dir.join("stderr.log"))?;
        let child = Command::new(&self.binary)
            .arg("worker")
            .arg("--join")
            .arg(join.join(","))
            .arg("--cores")
            .arg(me.cores.to_string())
            .arg("--id")
            .arg(me.id.to_string())
            .arg("--lease-ms")
            .arg(WORKER_LEASE_MS.to_string())
            .arg("--work-dir")
            .arg(me.dir.join("work"))
            .arg("--log-level")
            .arg("warn")
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawning worker {}", me.id))?;
        me.child = Some(child);
        Ok(())
    }

    /// SIGKILLs worker `index` (its workflows' process groups run on and end by themselves)
    /// and reaps it.
    pub fn kill_worker(&mut self, index: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.workers[index].child.take() {
            let pid = i32::try_from(child.id()).context("pid out of range")?;
            kill(Pid::from_raw(pid), Signal::SIGKILL)
                .with_context(|| format!("SIGKILL to worker {}", self.workers[index].id))?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts worker `index` again under the same id (if it is not running).
    pub fn restart_worker(&mut self, index: usize) -> anyhow::Result<()> {
        if self.workers[index].child.is_none() {
            self.spawn_worker(index)?;
        }
        Ok(())
    }

    /// A client that talks to one slot only (no failover).
    pub fn client_for(&self, slot: usize, timeout: Duration) -> anyhow::Result<Client> {
        Ok(Client::new(vec![self.slots[slot].url()?])?
            .with_request_timeout(timeout)
            .with_retry_window(timeout))
    }

    /// A client that fails over across every slot.
    pub fn client_all(&self, timeout: Duration) -> anyhow::Result<Client> {
        let urls = self
            .slots
            .iter()
            .map(NodeSlot::url)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Client::new(urls)?
            .with_request_timeout(timeout)
            .with_retry_window(timeout))
    }

    /// Resumes paused nodes and restarts stopped ones and stopped workers (never a slot that
    /// refuses to start: the caller handles those first).
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for index in 0..self.workers.len() {
            self.restart_worker(index)?;
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot].paused {
                self.resume(slot)?;
            }
            if !self.slots[slot].is_up() {
                self.restart(slot)?;
            }
        }
        Ok(())
    }

    /// SIGKILLs every process (used at the end of a run and on drop).
    pub fn stop_all(&mut self) {
        for index in 0..self.workers.len() {
            if let Err(err) = self.kill_worker(index) {
                eprintln!("stopping worker {}: {err:#}", self.workers[index].id);
            }
        }
        for slot in 0..self.slots.len() {
            if let Err(err) = self.kill(slot) {
                eprintln!("stopping slot {}: {err:#}", slot + 1);
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Finds the `steward` binary: `$STEWARD_BIN`, else `steward` next to the running executable's
/// profile directory (`target/<profile>/steward`, also from `target/<profile>/deps/`).
pub fn locate_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("STEWARD_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    while let Some(candidate) = dir {
        let binary = candidate.join("steward");
        if binary.is_file() {
            return Ok(binary);
        }
        dir = candidate.parent().map(Path::to_path_buf);
        if candidate.file_name().is_some_and(|name| name == "target") {
            break;
        }
    }
    bail!(
        "no `steward` binary next to {}: run `cargo build -p steward-cli` with the same \
         CARGO_TARGET_DIR first, or set STEWARD_BIN",
        exe.display()
    )
}
