//! Restart to ready over a large log: a cluster is loaded through the same write operation as
//! the throughput points, then one follower is SIGKILLed and started again, and the time from
//! its start to its first "ready" answer is taken (several times; the median is reported).
//!
//! steward is measured twice: with every event in the WAL (no snapshot), and with a snapshot
//! plus a tail of events after it. etcd is loaded with as many keys as steward received
//! submits (one key per job; each keyed submit is two events in steward's log) and restarted
//! the same way; etcd snapshots on its own every 100 000 entries (its default), so its members
//! always restart from a snapshot plus a tail. It deliberately changes no setting but
//! steward's snapshot threshold, which it needs to place the snapshot.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::failover::median;
use super::run_tag;
use super::system::{Cluster, Programs, SystemKind, MEMBERS, READY_DEADLINE};
use super::throughput::RETRY_PAUSE;
use crate::load::{self, Schedule};

/// Events in steward's log per keyed submit (`IdempotencyReserved` + `JobSubmitted`).
pub const EVENTS_PER_SUBMIT: u64 = 2;
/// Clients loading a cluster before a restart.
const LOAD_CLIENTS: usize = 256;
/// Upper bound on the time a load may take. Default: 1 h.
const LOAD_TIME_MAX: Duration = Duration::from_secs(3600);
/// A snapshot threshold no load of this benchmark reaches: snapshots only where placed.
const NO_SNAPSHOT_ENTRIES: u64 = 1 << 40;
/// The threshold that makes a member snapshot at once after its next start: steward's minimum.
const SNAPSHOT_AT_ONCE_ENTRIES: u64 = steward_node::config::SNAPSHOT_AFTER_ENTRIES_MIN;
/// Pause between two restarts of the same member.
const SETTLE: Duration = Duration::from_millis(500);

/// How the recovery cases run.
#[derive(Clone, Copy, Debug)]
pub struct RecoveryPlan {
    /// Events in steward's log for the first case (and before the snapshot in the second).
    pub events: u64,
    /// Events after the snapshot in the second case.
    pub tail_events: u64,
    /// Restarts per case (the median is reported).
    pub restarts: usize,
    /// Deadline of each write attempt while loading.
    pub request_timeout: Duration,
}

/// One restart case of one system.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveryResult {
    /// Which system.
    pub system: SystemKind,
    /// What the restarted member holds, in words.
    pub case: String,
    /// Acknowledged writes in the cluster when the member restarted.
    pub writes: u64,
    /// steward: events in the log (two per submit); etcd: `None`.
    pub events: Option<u64>,
    /// Bytes below the restarted member's data directory.
    pub data_bytes: u64,
    /// Start of the process to its first ready answer, each restart, in milliseconds.
    pub restart_ms: Vec<f64>,
    /// Median of `restart_ms`.
    pub median_restart_ms: Option<f64>,
    /// Writes per second while loading (256 clients, not a measured point).
    pub load_writes_per_second: f64,
}

/// Measures `kind`'s restart cases in a fresh cluster under `root`, then deletes `root`.
pub async fn measure(
    kind: SystemKind,
    root: &Path,
    programs: &Programs,
    plan: RecoveryPlan,
) -> anyhow::Result<Vec<RecoveryResult>> {
    let snapshot_setting = (kind == SystemKind::Steward).then_some(NO_SNAPSHOT_ENTRIES);
    let mut cluster = Cluster::start(kind, root, programs, snapshot_setting).await?;
    let submits = plan.events.div_ceil(EVENTS_PER_SUBMIT);
    let (written, rate) = fill(&mut cluster, submits, plan).await?;
    let mut results = Vec::new();
    let case = match kind {
        SystemKind::Steward => format!(
            "{} events in the WAL, no snapshot",
            written * EVENTS_PER_SUBMIT
        ),
        SystemKind::Etcd => format!("{written} keys (one per steward job)"),
    };
    results.push(restarts(&mut cluster, case, written, rate, plan).await?);
    if kind == SystemKind::Steward {
        place_snapshot(&mut cluster, plan.request_timeout).await?;
        let tail = plan.tail_events.div_ceil(EVENTS_PER_SUBMIT);
        let (tail_written, tail_rate) = fill(&mut cluster, tail, plan).await?;
        let case = format!(
            "snapshot of {} events + {} events in the WAL after it",
            written * EVENTS_PER_SUBMIT,
            tail_written * EVENTS_PER_SUBMIT
        );
        let total = written + tail_written;
        results.push(restarts(&mut cluster, case, total, tail_rate, plan).await?);
    }
    drop(cluster);
    programs.discard(root)?;
    Ok(results)
}

/// Loads `writes` writes into the cluster through its leader with [`LOAD_CLIENTS`] clients and
/// waits until every member has applied them; returns the writes made and their rate.
async fn fill(
    cluster: &mut Cluster,
    writes: u64,
    plan: RecoveryPlan,
) -> anyhow::Result<(u64, f64)> {
    let leader = cluster.leader().await?;
    cluster.prime(leader, plan.request_timeout).await?;
    let operation =
        cluster.write_operation(leader, LOAD_CLIENTS, run_tag(), plan.request_timeout)?;
    let schedule = Schedule {
        clients: LOAD_CLIENTS,
        start: Instant::now(),
        warmup: Duration::ZERO,
        measure: LOAD_TIME_MAX,
        retry_pause: RETRY_PAUSE,
        overtime: Duration::ZERO,
        operations_max: Some(writes),
    };
    let outcome = load::run(Arc::new(operation), schedule).await?;
    let written = outcome.successes.len() as u64;
    if written < writes {
        bail!(
            "loaded only {written} of {writes} writes within {LOAD_TIME_MAX:?} (first error: {})",
            outcome.first_error.as_deref().unwrap_or("none")
        );
    }
    cluster.wait_all_ready().await?;
    Ok((written, outcome.per_second()))
}

/// Restarts a follower `plan.restarts` times and reports the times to ready.
async fn restarts(
    cluster: &mut Cluster,
    case: String,
    writes: u64,
    rate: f64,
    plan: RecoveryPlan,
) -> anyhow::Result<RecoveryResult> {
    let leader = cluster.leader().await?;
    let follower = (leader + 1) % MEMBERS;
    let data_bytes = dir_bytes(&cluster.members[follower].dir.join("data"));
    let mut times = Vec::with_capacity(plan.restarts);
    for _ in 0..plan.restarts {
        cluster.kill(follower)?;
        let started = Instant::now();
        cluster.restart(follower)?;
        let ready = cluster.wait_ready(follower, started).await?;
        times.push(ready.as_secs_f64() * 1e3);
        tokio::time::sleep(SETTLE).await;
    }
    eprintln!(
        "{:>7} restart ({case}): {}",
        cluster.kind,
        times
            .iter()
            .map(|ms| format!("{ms:.0} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut sorted = times.clone();
    Ok(RecoveryResult {
        system: cluster.kind,
        case,
        writes,
        events: (cluster.kind == SystemKind::Steward).then_some(writes * EVENTS_PER_SUBMIT),
        data_bytes,
        median_restart_ms: median(&mut sorted),
        restart_ms: times,
        load_writes_per_second: rate,
    })
}

/// Makes every steward member write a snapshot of everything it holds: restart all with the
/// smallest snapshot threshold, commit one write (openraft checks the threshold when the commit
/// index moves; a restarted leader of the same term commits nothing by itself), wait for the
/// snapshot files, then restart all with snapshots off again.
async fn place_snapshot(cluster: &mut Cluster, request_timeout: Duration) -> anyhow::Result<()> {
    cluster.set_snapshot_after_entries(Some(SNAPSHOT_AT_ONCE_ENTRIES))?;
    restart_all(cluster).await?;
    let leader = cluster.leader().await?;
    cluster.prime(leader, request_timeout).await?;
    let since = Instant::now();
    for slot in 0..cluster.members.len() {
        let dir = cluster.members[slot].dir.join("data").join("snapshots");
        while !has_snapshot(&dir) {
            if since.elapsed() > READY_DEADLINE {
                bail!(
                    "{} wrote no snapshot within {READY_DEADLINE:?}",
                    cluster.members[slot].name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    cluster.set_snapshot_after_entries(Some(NO_SNAPSHOT_ENTRIES))?;
    restart_all(cluster).await
}

async fn restart_all(cluster: &mut Cluster) -> anyhow::Result<()> {
    for slot in 0..cluster.members.len() {
        cluster.kill(slot)?;
    }
    for slot in 0..cluster.members.len() {
        cluster.restart(slot)?;
    }
    cluster.wait_all_ready().await
}

/// Whether `dir` holds a finished snapshot file (`*.snap`; a `.tmp` is still being written).
fn has_snapshot(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.path().extension().is_some_and(|ext| ext == "snap"))
    })
}

/// Bytes of the regular files below `dir` (0 for what cannot be read).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_files_and_sizes_are_found() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_snapshot(dir.path()));
        std::fs::write(dir.path().join("00000001.snap.tmp"), b"partial").unwrap();
        assert!(
            !has_snapshot(dir.path()),
            "a temporary file is not a snapshot"
        );
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("00000002.snap"), b"0123").unwrap();
        assert!(
            !has_snapshot(dir.path()),
            "only the directory itself is searched"
        );
        std::fs::write(dir.path().join("00000002.snap"), b"01234").unwrap();
        assert!(has_snapshot(dir.path()));
        assert_eq!(dir_bytes(dir.path()), 7 + 4 + 5);
        assert_eq!(dir_bytes(&dir.path().join("missing")), 0);
    }
}
