//! A system under test: a 3-member steward or etcd cluster of real processes on loopback, each
//! member with its own directory, that the benchmark starts, asks for its leader and readiness,
//! kills, restarts, and loads with [`WriteOperation`]s.
//!
//! Both systems are driven through the same HTTP client with the same timeouts, so the only
//! differences are the servers. It deliberately measures nothing itself.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use reqwest::{StatusCode, Url};
use serde::Serialize;
use steward_node::api::types::IDEMPOTENCY_KEY_HEADER;

use super::etcd::{self, EtcdAddrs};
use super::process::{free_addr, Member};
use super::steward::{self, StewardAddrs};
use super::PAYLOAD_BYTES;
use crate::load::Operation;

/// Members per cluster.
pub const MEMBERS: usize = 3;
/// How long a member gets to become ready after a start. Default: 120 s (a restart over a
/// large log in a debug build is slow; the benchmark reports the time, this only bounds it).
pub const READY_DEADLINE: Duration = Duration::from_secs(120);
/// Pause between two readiness polls. Default: 5 ms (restart times are reported in ms).
pub const READY_POLL: Duration = Duration::from_millis(5);
/// Pause between two polls for a new leader after a kill. Default: 10 ms.
const LEADER_POLL: Duration = Duration::from_millis(10);
/// Deadline of one readiness, status or leader request. Default: 1 s.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle connections kept per server: one per client of the largest point, so a closed loop
/// never reconnects. Default: 512.
const IDLE_CONNECTIONS_PER_HOST: usize = 512;

/// Which system a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SystemKind {
    /// steward (`steward server`, this binary).
    Steward,
    /// etcd 3.4 (`etcd` from the PATH or `--etcd`).
    Etcd,
}

impl SystemKind {
    /// Both, in the order they run.
    pub const ALL: [SystemKind; 2] = [SystemKind::Steward, SystemKind::Etcd];
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SystemKind::Steward => "steward",
            SystemKind::Etcd => "etcd",
        })
    }
}

/// The programs the members run.
#[derive(Clone, Debug)]
pub struct Programs {
    /// The `steward` binary (the running one).
    pub steward: PathBuf,
    /// The `etcd` binary.
    pub etcd: PathBuf,
    /// steward members' log filter, overriding the `warn` their configs name (`--node-log`).
    pub steward_log_level: Option<String>,
}

impl Programs {
    /// Removes a finished part's directory `root`. With `--node-log` only the members' data
    /// directories go: their logs are what the option asked for, the data would fill the disk.
    pub fn discard(&self, root: &Path) -> anyhow::Result<()> {
        if self.steward_log_level.is_none() {
            return std::fs::remove_dir_all(root)
                .with_context(|| format!("remove {}", root.display()));
        }
        for member in std::fs::read_dir(root).with_context(|| format!("list {}", root.display()))? {
            let data = member
                .with_context(|| format!("list {}", root.display()))?
                .path()
                .join("data");
            if data.is_dir() {
                std::fs::remove_dir_all(&data)
                    .with_context(|| format!("remove {}", data.display()))?;
            }
        }
        Ok(())
    }
}

/// Per-system addresses, fixed for the cluster's life.
#[derive(Debug)]
enum Addrs {
    Steward(Vec<StewardAddrs>),
    /// With each member's id, learned once it answered.
    Etcd(Vec<EtcdAddrs>, Vec<Option<u64>>),
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Which system.
    pub kind: SystemKind,
    /// The members, slot 0..3.
    pub members: Vec<Member>,
    addrs: Addrs,
    http: reqwest::Client,
}

/// The HTTP client every request of the benchmark goes through.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(IDLE_CONNECTIONS_PER_HOST)
        .build()
        .context("build the HTTP client")
}

impl Cluster {
    /// Lays out and starts a fresh cluster under `root` (which must not exist yet) and waits
    /// until every member is ready. `snapshot_after_entries` applies to steward only.
    pub async fn start(
        kind: SystemKind,
        root: &Path,
        programs: &Programs,
        snapshot_after_entries: Option<u64>,
    ) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
        let dirs: Vec<PathBuf> = (0..MEMBERS)
            .map(|slot| root.join(format!("{kind}-{}", slot + 1)))
            .collect();
        for dir in &dirs {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let (addrs, members) = match kind {
            SystemKind::Steward => {
                let all = (0..MEMBERS)
                    .map(|slot| {
                        Ok(StewardAddrs {
                            id: slot as u64 + 1,
                            raft: free_addr()?,
                            api: free_addr()?,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let mut members = Vec::with_capacity(MEMBERS);
                let mut args: Vec<OsString> =
                    vec!["server".into(), "--config".into(), "config.toml".into()];
                if let Some(level) = &programs.steward_log_level {
                    args.extend(["--log-level".into(), level.into()]);
                }
                for (slot, dir) in dirs.iter().enumerate() {
                    steward::write_config(dir, &all[slot], &all, snapshot_after_entries)?;
                    members.push(Member::new(
                        format!("steward-{}", slot + 1),
                        dir.clone(),
                        programs.steward.clone(),
                        args.clone(),
                    ));
                }
                (Addrs::Steward(all), members)
            }
            SystemKind::Etcd => {
                let all = (0..MEMBERS)
                    .map(|_| {
                        Ok(EtcdAddrs {
                            client: free_addr()?,
                            peer: free_addr()?,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let token = format!("steward-bench-{}-{}", std::process::id(), all[0].client);
                let members = dirs
                    .iter()
                    .enumerate()
                    .map(|(slot, dir)| {
                        Member::new(
                            etcd::member_name(slot),
                            dir.clone(),
                            programs.etcd.clone(),
                            etcd::args(dir, slot, &all, &token),
                        )
                    })
                    .collect();
                (Addrs::Etcd(all, vec![None; MEMBERS]), members)
            }
        };
        let mut cluster = Cluster {
            kind,
            members,
            addrs,
            http: http_client()?,
        };
        for member in &mut cluster.members {
            member.spawn()?;
        }
        cluster.wait_all_ready().await?;
        Ok(cluster)
    }

    fn client_addr(&self, slot: usize) -> SocketAddr {
        match &self.addrs {
            Addrs::Steward(all) => all[slot].api,
            Addrs::Etcd(all, _) => all[slot].client,
        }
    }

    fn url(&self, slot: usize, path: &str) -> anyhow::Result<Url> {
        Url::parse(&format!("http://{}{path}", self.client_addr(slot))).context("build a URL")
    }

    /// Rewrites steward's member configs with another snapshot threshold; it takes effect at
    /// each member's next start. An error for etcd.
    pub fn set_snapshot_after_entries(&self, entries: Option<u64>) -> anyhow::Result<()> {
        let Addrs::Steward(all) = &self.addrs else {
            bail!("snapshot_after_entries is a steward setting");
        };
        for (slot, member) in self.members.iter().enumerate() {
            steward::write_config(&member.dir, &all[slot], all, entries)?;
        }
        Ok(())
    }

    async fn get(&self, slot: usize, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        let response = self
            .http
            .get(self.url(slot, path)?)
            .timeout(PROBE_TIMEOUT)
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.bytes().await?))
    }

    async fn etcd_status(&self, slot: usize) -> anyhow::Result<(u64, Option<u64>)> {
        let response = self
            .http
            .post(self.url(slot, "/v3/maintenance/status")?)
            .timeout(PROBE_TIMEOUT)
            .body("{}")
            .send()
            .await?;
        let body = response.bytes().await?;
        etcd::status_ids(&body)
    }

    /// Whether member `slot` says it is ready: steward's `/readyz` (a leader is known and the
    /// member applied everything it knows committed), etcd's `/health` (a leader is known and
    /// no alarm is raised).
    pub async fn is_ready(&self, slot: usize) -> bool {
        match self.kind {
            SystemKind::Steward => self
                .get(slot, "/readyz")
                .await
                .is_ok_and(|(status, _)| status == StatusCode::OK),
            SystemKind::Etcd => self
                .get(slot, "/health")
                .await
                .is_ok_and(|(status, body)| status == StatusCode::OK && etcd::is_healthy(&body)),
        }
    }

    /// Polls member `slot` until it is ready; the time from `since` to the first ready answer.
    /// An error if the process exits or [`READY_DEADLINE`] passes.
    pub async fn wait_ready(&mut self, slot: usize, since: Instant) -> anyhow::Result<Duration> {
        loop {
            if self.is_ready(slot).await {
                return Ok(since.elapsed());
            }
            let member = &mut self.members[slot];
            if !member.is_running() {
                let free = member
                    .free_mib()
                    .map_or_else(|| "unknown".to_owned(), |mib| format!("{mib} MiB"));
                bail!(
                    "{} exited before it was ready ({}; free disk space: {free}); its output \
                     ends with:\n{}",
                    member.name,
                    member.ended().unwrap_or("how is unknown"),
                    member.log_tail(3000)
                );
            }
            if since.elapsed() > READY_DEADLINE {
                bail!("{} not ready within {READY_DEADLINE:?}", member.name);
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// Waits until every member is ready (and, for etcd, learns the member ids).
    pub async fn wait_all_ready(&mut self) -> anyhow::Result<()> {
        let since = Instant::now();
        for slot in 0..self.members.len() {
            self.wait_ready(slot, since).await?;
        }
        if let Addrs::Etcd(_, ids) = &self.addrs {
            let mut learned = ids.clone();
            for (slot, id) in learned.iter_mut().enumerate() {
                *id = Some(self.etcd_status(slot).await?.0);
            }
            if let Addrs::Etcd(_, ids) = &mut self.addrs {
                *ids = learned;
            }
        }
        Ok(())
    }

    /// The slot of the current leader, as the running members report it; retried until
    /// [`READY_DEADLINE`] while there is none (an election is under way).
    pub async fn leader(&mut self) -> anyhow::Result<usize> {
        let since = Instant::now();
        loop {
            for slot in 0..self.members.len() {
                if !self.members[slot].is_running() {
                    continue;
                }
                if let Ok(Some(leader)) = self.leader_seen_by(slot).await {
                    if self.members[leader].is_running() {
                        return Ok(leader);
                    }
                }
            }
            if since.elapsed() > READY_DEADLINE {
                bail!("no {} leader within {READY_DEADLINE:?}", self.kind);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls the running members other than `old` until one reports a leader other than
    /// `old`; the time from `since` to that answer, or `None` if none came within `within`.
    pub async fn new_leader_after(
        &mut self,
        old: usize,
        since: Instant,
        within: Duration,
    ) -> Option<Duration> {
        while since.elapsed() < within {
            for slot in (0..self.members.len()).filter(|&slot| slot != old) {
                if !self.members[slot].is_running() {
                    continue;
                }
                if let Ok(Some(leader)) = self.leader_seen_by(slot).await {
                    if leader != old {
                        return Some(since.elapsed());
                    }
                }
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
        None
    }

    async fn leader_seen_by(&self, slot: usize) -> anyhow::Result<Option<usize>> {
        match &self.addrs {
            Addrs::Steward(all) => {
                let (_, body) = self.get(slot, "/v1/cluster/status").await?;
                let leader = steward::leader_id(&body)?;
                Ok(leader.and_then(|id| all.iter().position(|a| a.id == id)))
            }
            Addrs::Etcd(_, ids) => {
                let (_, leader) = self.etcd_status(slot).await?;
                Ok(leader.and_then(|id| ids.iter().position(|known| *known == Some(id))))
            }
        }
    }

    /// SIGKILLs member `slot`.
    pub fn kill(&mut self, slot: usize) -> anyhow::Result<()> {
        self.members[slot].kill()
    }

    /// Starts member `slot` again on its data; returns at once (see [`Cluster::wait_ready`]).
    pub fn restart(&mut self, slot: usize) -> anyhow::Result<()> {
        self.members[slot].spawn()
    }

    /// Sends one write to member `slot` and resends it until it succeeds. A fresh cluster's
    /// first write pays for start-up work no later write does (the new leader's first
    /// proposals, files created on first use), which a benchmark point should not time. An
    /// error if none succeeds within [`READY_DEADLINE`].
    pub async fn prime(&self, slot: usize, timeout: Duration) -> anyhow::Result<()> {
        let operation = self.write_operation(slot, 1, "prime".to_owned(), timeout)?;
        let since = Instant::now();
        loop {
            match operation.attempt(0, 0).await {
                Ok(()) => return Ok(()),
                Err(error) if since.elapsed() > READY_DEADLINE => {
                    bail!(
                        "no {} write succeeded within {READY_DEADLINE:?}: {error}",
                        self.kind
                    )
                }
                Err(_) => tokio::time::sleep(READY_POLL).await,
            }
        }
    }

    /// CPU time (user + system) of the running members so far, summed; `None` if any member's
    /// process cannot be read.
    pub fn cpu_time(&self) -> Option<Duration> {
        self.members.iter().map(Member::cpu_time).sum()
    }

    /// A durable write of a payload of its own ([`write_payload`]) against this cluster for
    /// `clients` clients, each starting at member `first_slot`.
    pub fn write_operation(
        &self,
        first_slot: usize,
        clients: usize,
        tag: String,
        timeout: Duration,
    ) -> anyhow::Result<WriteOperation> {
        let (path, body) = match self.kind {
            SystemKind::Steward => ("/v1/jobs", Body::Submit),
            SystemKind::Etcd => ("/v3/kv/put", Body::Put),
        };
        let urls = (0..self.members.len())
            .map(|slot| self.url(slot, path))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(WriteOperation {
            http: self.http.clone(),
            urls,
            current: (0..clients).map(|_| AtomicUsize::new(first_slot)).collect(),
            body,
            tag,
            timeout,
        })
    }
}

/// What one write sends.
#[derive(Debug, Clone, Copy)]
enum Body {
    /// steward: a submit of one job whose argument is the payload, under a fresh idempotency key.
    Submit,
    /// etcd: a PUT of the payload under a fresh key.
    Put,
}

/// The payload of client `client`'s operation `sequence` in run `tag`: [`PAYLOAD_BYTES`]
/// letters of its own (a job argument must be text), so that no two writes carry the same
/// bytes and a store that compresses gains only what it would on real data, and the same on
/// every retry of the operation (steward refuses a reused idempotency key with another body).
pub fn write_payload(tag: &str, client: usize, sequence: u64) -> String {
    let mut state = tag
        .bytes()
        .chain(client.to_le_bytes())
        .chain(sequence.to_le_bytes())
        .fold(0xCBF2_9CE4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
        });
    let mut out = String::with_capacity(PAYLOAD_BYTES);
    while out.len() < PAYLOAD_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend(
            state
                .to_le_bytes()
                .iter()
                .map(|byte| char::from(b'a' + byte % 26)),
        );
    }
    out.truncate(PAYLOAD_BYTES);
    out
}

/// One durable write of a 256 B payload of its own: a steward job submit with an idempotency
/// key, or an etcd PUT of a unique key; each client sticks to one member and moves to the next
/// after a failed attempt. Retrying an operation resends the same key and payload, which both
/// systems treat as the same write (steward returns the original job; etcd overwrites the key
/// with the same value).
#[derive(Debug)]
pub struct WriteOperation {
    http: reqwest::Client,
    urls: Vec<Url>,
    /// Each client's current member (an index into `urls`, modulo its length).
    current: Vec<AtomicUsize>,
    body: Body,
    tag: String,
    timeout: Duration,
}

impl WriteOperation {
    fn url(&self, client: usize) -> &Url {
        let slot = self
            .current
            .get(client)
            .map_or(0, |c| c.load(Ordering::Relaxed));
        &self.urls[slot % self.urls.len()]
    }
}

impl Operation for WriteOperation {
    async fn attempt(&self, client: usize, sequence: u64) -> Result<(), String> {
        let request = self
            .http
            .post(self.url(client).clone())
            .timeout(self.timeout);
        let payload = write_payload(&self.tag, client, sequence);
        let request = match self.body {
            Body::Submit => request
                .header(
                    IDEMPOTENCY_KEY_HEADER,
                    steward::idempotency_key(&self.tag, client, sequence),
                )
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(steward::submit_body(&payload).map_err(|err| format!("{err:#}"))?),
            Body::Put => request.body(etcd::put_body(
                &etcd::key(&self.tag, client, sequence),
                payload.as_bytes(),
            )),
        };
        let response = request.send().await.map_err(|err| describe(&err))?;
        let status = response.status();
        // The body is read in full either way, so the connection can be reused.
        let body = response.bytes().await.map_err(|err| describe(&err))?;
        if status.is_success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            Err(format!("HTTP {status}: {text}"))
        }
    }

    fn failed(&self, client: usize) {
        if let Some(current) = self.current.get(client) {
            current.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A reqwest error in one line with its cause (reqwest's own text omits it).
fn describe(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else {
        "transport"
    };
    match err.source() {
        Some(source) => format!("{kind}: {err}: {source}"),
        None => format!("{kind}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_has_a_payload_of_its_own_and_retries_resend_it() {
        let first = write_payload("t", 0, 0);
        assert_eq!(first.len(), PAYLOAD_BYTES);
        assert!(first.bytes().all(|byte| byte.is_ascii_lowercase()));
        assert_eq!(first, write_payload("t", 0, 0));
        let others = [
            write_payload("t", 0, 1),
            write_payload("t", 1, 0),
            write_payload("u", 0, 0),
        ];
        for other in &others {
            assert_ne!(&first, other);
        }
    }
}
