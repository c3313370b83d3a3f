//! One seeded run: start a cluster, run the workload under a nemesis schedule, heal, wait for
//! convergence and liveness, read every node's final state, check, and summarise.
//!
//! Partitions and leader clock jumps are not implemented yet (no iptables here, and the clock
//! offset is not reachable from outside a node process); asking for them is an error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use steward_node::api::types::{AddMemberRequest, JobView};
use steward_node::client::{Client, ListQuery};

use crate::checks::{check_all, FinalState, Violation, CHECKS};
use crate::cluster::{locate_binary, Cluster, Timing};
use crate::faults;
use crate::history::{History, Outcome};
use crate::workload::{TestModeCompleter, Workload, REQUEST_TIMEOUT};

/// Fault kinds the nemesis can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL a node (sometimes the leader), restart it later.
    Kill,
    /// SIGSTOP a node longer than the election timeout, then SIGCONT.
    Pause,
    /// SIGKILL, write a torn append after the WAL's last record, restart.
    TornTail,
    /// SIGKILL, flip a bit inside the WAL, expect a refusal to start, wipe and re-join.
    BitFlip,
    /// Checker self-test, never in the default set: SIGKILL every node and cut whole synced
    /// records from every WAL (what acknowledging before fsync does on a power loss). The
    /// checks must fail.
    LoseTail,
}

impl Fault {
    /// Parses one `--faults` name.
    pub fn parse(name: &str) -> anyhow::Result<Fault> {
        Ok(match name {
            "kill" => Fault::Kill,
            "pause" => Fault::Pause,
            "torn-tail" => Fault::TornTail,
            "bitflip" => Fault::BitFlip,
            "lose-tail" => Fault::LoseTail,
            "partition" | "clock" => {
                bail!("fault `{name}` is not implemented yet (see docs/harness.md)")
            }
            other => bail!("unknown fault `{other}`"),
        })
    }

    /// Its `--faults` name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::TornTail => "torn-tail",
            Fault::BitFlip => "bitflip",
            Fault::LoseTail => "lose-tail",
        }
    }
}

/// How to run one seed.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The seed driving every choice.
    pub seed: u64,
    /// 3 or 5.
    pub nodes: usize,
    /// Workload duration under faults.
    pub duration: Duration,
    /// Enabled fault kinds.
    pub faults: Vec<Fault>,
    /// Concurrent clients. Default: 4.
    pub clients: usize,
    /// Keep data directories even on success.
    pub keep_data: bool,
    /// Where run directories go.
    pub root: PathBuf,
    /// Node timing and sync policy.
    pub timing: Timing,
}

/// What one run did and found.
#[derive(Debug)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// Operations attempted.
    pub ops: usize,
    /// Operations acknowledged (ok or 409).
    pub acknowledged: usize,
    /// Outcome unknown.
    pub unknown: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Time from healing to a leader and a successful write.
    pub recovery: Duration,
    /// Violations (empty: every check passed).
    pub violations: Vec<Violation>,
    /// The run directory (kept on failure or with `keep_data`).
    pub dir: Option<PathBuf>,
    /// Failure report text (seed, violations, timelines).
    pub report: String,
}

/// Runs one seed end to end.
pub async fn run(config: &RunConfig) -> anyhow::Result<Summary> {
    eprintln!(
        "steward-harness: seed {} nodes {} duration {:?}",
        config.seed, config.nodes, config.duration
    );
    let binary = locate_binary()?;
    let dir = config.root.join(format!("seed-{}", config.seed));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let mut cluster = Cluster::start(&binary, &dir, config.nodes, config.timing)?;
    let history = Arc::new(History::new());
    let clients = (0..config.nodes)
        .map(|slot| cluster.client_for(slot, REQUEST_TIMEOUT).map(Arc::new))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let workload = Arc::new(Workload {
        clients,
        history: Arc::clone(&history),
        completer: Arc::new(TestModeCompleter),
        stop: Arc::clone(&stop),
    });
    wait_leader(
        &cluster.client_all(Duration::from_secs(20))?,
        Duration::from_secs(20),
    )
    .await?;
    let load = tokio::spawn(Arc::clone(&workload).run(config.seed, config.clients));
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut injected = BTreeMap::new();
    let nemesis = nemesis(&mut cluster, config, &mut rng, &history, &mut injected).await;
    stop.store(true, Ordering::Relaxed);
    load.await.context("workload task")?;
    nemesis?;
    history.note("heal: resume and restart every node");
    cluster.heal()?;
    let healed = Instant::now();
    let all = cluster.client_all(Duration::from_secs(30))?;
    let live = liveness(&all).await;
    let recovery = healed.elapsed();
    let violations = match live {
        Ok(()) => {
            history.note(format!(
                "liveness: leader and a write {} ms after healing",
                recovery.as_millis()
            ));
            let state = final_state(&cluster).await?;
            check_all(&history, &state)
        }
        Err(err) => {
            history.note(format!(
                "liveness: FAILED after {} ms: {err:#}",
                recovery.as_millis()
            ));
            vec![Violation {
                check: "liveness",
                job: None,
                at_ms: history.now_ms(),
                message: format!("{err:#}"),
            }]
        }
    };
    cluster.stop_all();
    let ops = history.ops();
    let unknown = ops
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Unknown(_)))
        .count();
    let acknowledged = ops
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Ok { .. } | Outcome::Conflict))
        .count();
    let report = failure_report(config.seed, &history, &violations, &dir);
    let keep = config.keep_data || !violations.is_empty();
    if !keep {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(Summary {
        seed: config.seed,
        ops: ops.len(),
        acknowledged,
        unknown,
        faults: injected,
        recovery,
        violations,
        dir: keep.then_some(dir),
        report,
    })
}

async fn wait_leader(client: &Client, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(status) = client.cluster_status().await {
            if status.leader_id.is_some() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no leader within {within:?}")
}

/// After healing: a leader and one successful (keyed) write.
async fn liveness(client: &Client) -> anyhow::Result<()> {
    wait_leader(client, Duration::from_secs(30))
        .await
        .context("liveness")?;
    client
        .submit(
            &crate::workload::body_for("liveness-probe"),
            Some("liveness-probe"),
        )
        .await
        .context("liveness: a write after healing")?;
    Ok(())
}

async fn leader_slot(cluster: &Cluster) -> Option<usize> {
    let client = cluster.client_all(Duration::from_secs(2)).ok()?;
    let leader = client.cluster_status().await.ok()?.leader_id?;
    cluster.slots.iter().position(|s| s.id == leader)
}

async fn nemesis(
    cluster: &mut Cluster,
    config: &RunConfig,
    rng: &mut StdRng,
    history: &History,
    injected: &mut BTreeMap<&'static str, usize>,
) -> anyhow::Result<()> {
    let began = Instant::now();
    let election_ms = config.timing.election_timeout_max_ms;
    while began.elapsed() + Duration::from_secs(2) < config.duration {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..1500))).await;
        if config.faults.is_empty() {
            continue;
        }
        let fault = config.faults[rng.gen_range(0..config.faults.len())];
        let slot = if rng.gen_bool(0.4) {
            leader_slot(cluster).await.unwrap_or(0)
        } else {
            rng.gen_range(0..cluster.slots.len())
        };
        let hold = Duration::from_millis(rng.gen_range(election_ms..election_ms * 4));
        let id = cluster.slots[slot].id;
        match fault {
            Fault::Kill => {
                history.note(format!("kill -9 slot {} (node {id})", slot + 1));
                cluster.kill(slot)?;
                tokio::time::sleep(hold).await;
                history.note(format!("restart slot {}", slot + 1));
                cluster.restart(slot)?;
            }
            Fault::Pause => {
                history.note(format!(
                    "SIGSTOP slot {} (node {id}) for {} ms",
                    slot + 1,
                    hold.as_millis()
                ));
                cluster.pause(slot)?;
                tokio::time::sleep(hold).await;
                cluster.resume(slot)?;
                history.note(format!("SIGCONT slot {}", slot + 1));
            }
            Fault::TornTail => {
                cluster.kill(slot)?;
                let fault = faults::torn_tail(&cluster.slots[slot].wal_dir(), rng)?;
                history.note(format!(
                    "kill -9 slot {} (node {id}), torn tail: {} at {}:{}",
                    slot + 1,
                    fault.what,
                    fault.file.display(),
                    fault.offset
                ));
                tokio::time::sleep(hold).await;
                cluster.restart(slot)?;
                history.note(format!("restart slot {}", slot + 1));
            }
            Fault::BitFlip => bit_flip(cluster, slot, rng, history).await?,
            Fault::LoseTail => {
                for victim in 0..cluster.slots.len() {
                    cluster.kill(victim)?;
                    let fault = faults::lose_tail(&cluster.slots[victim].wal_dir(), 60)?;
                    history.note(format!(
                        "kill -9 slot {}, {} at {}:{}",
                        victim + 1,
                        fault.what,
                        fault.file.display(),
                        fault.offset
                    ));
                }
                for victim in 0..cluster.slots.len() {
                    cluster.restart(victim)?;
                }
            }
        }
        *injected.entry(fault.name()).or_insert(0) += 1;
    }
    Ok(())
}

/// Bit flip, refusal, then the operator procedure: remove the node, wipe, re-join as a new id.
async fn bit_flip(
    cluster: &mut Cluster,
    slot: usize,
    rng: &mut StdRng,
    history: &History,
) -> anyhow::Result<()> {
    let id = cluster.slots[slot].id;
    cluster.kill(slot)?;
    let fault = faults::bit_flip(&cluster.slots[slot].wal_dir(), rng)?;
    history.note(format!(
        "kill -9 slot {} (node {id}), {} at {}:{}",
        slot + 1,
        fault.what,
        fault.file.display(),
        fault.offset
    ));
    let stderr = cluster.expect_refusal(slot, Duration::from_secs(10))?;
    if !stderr.to_lowercase().contains("corrupt") {
        bail!(
            "slot {} refused to start without naming corruption; stderr:\n{stderr}",
            slot + 1
        );
    }
    history.note(format!(
        "slot {} refused to start on the corrupted log (as it must)",
        slot + 1
    ));
    let admin = cluster.client_all(Duration::from_secs(20))?;
    admin
        .remove_member(id)
        .await
        .with_context(|| format!("removing node {id}"))?;
    let (old, new) = cluster.wipe_for_rejoin(slot)?;
    let me = &cluster.slots[slot];
    admin
        .add_member(&AddMemberRequest {
            id: new,
            raft_addr: me.raft_addr,
            api_addr: me.api_addr,
        })
        .await
        .with_context(|| format!("adding node {new}"))?;
    history.note(format!(
        "operator procedure: removed node {old}, wiped slot {}, re-joined as node {new}",
        slot + 1
    ));
    Ok(())
}

/// Waits until every node has applied the leader's commit index, then reads each node's jobs;
/// the reads count only if no node applied anything meanwhile (leader duties keep proposing,
/// e.g. dispatches), so the states compared are at the same applied index.
async fn final_state(cluster: &Cluster) -> anyhow::Result<FinalState> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let clients: Vec<Client> = (0..cluster.slots.len())
        .map(|s| cluster.client_for(s, Duration::from_secs(5)))
        .collect::<anyhow::Result<_>>()?;
    loop {
        let before = applied_indexes(cluster, &clients).await?;
        let settled = before.iter().all(|a| a.is_some_and(|(ap, co)| ap == co))
            && before
                .windows(2)
                .all(|w| w[0].map(|a| a.0) == w[1].map(|a| a.0));
        if settled {
            let mut state = Vec::new();
            for client in &clients {
                state.push(all_jobs(client).await?);
            }
            if applied_indexes(cluster, &clients).await? == before {
                return Ok(state);
            }
        }
        if Instant::now() > deadline {
            bail!("convergence: nodes did not hold one applied index for 30 s: {before:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn applied_indexes(
    cluster: &Cluster,
    clients: &[Client],
) -> anyhow::Result<Vec<Option<(u64, u64)>>> {
    let mut applied = Vec::new();
    for (slot, client) in clients.iter().enumerate() {
        let status = client.cluster_status_at(&cluster.slots[slot].url()?).await;
        applied.push(
            status
                .ok()
                .and_then(|s| Some((s.applied_index?, s.commit_index?))),
        );
    }
    Ok(applied)
}

async fn all_jobs(client: &Client) -> anyhow::Result<BTreeMap<u64, JobView>> {
    let mut jobs = BTreeMap::new();
    let mut query = ListQuery {
        stale: true,
        limit: Some(500),
        ..ListQuery::default()
    };
    loop {
        let page = client.list(&query).await.context("listing jobs")?;
        for job in page.jobs {
            jobs.insert(job.id, job);
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(jobs),
        }
    }
}

fn failure_report(
    seed: u64,
    history: &History,
    violations: &[Violation],
    dir: &std::path::Path,
) -> String {
    if violations.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "seed {seed}: {} violation(s); data kept in {}\n",
        violations.len(),
        dir.display()
    );
    for v in violations.iter().take(5) {
        text.push_str(&format!(
            "\n[{}] {}\n  timeline around {} ms:\n",
            v.check, v.message, v.at_ms
        ));
        text.push_str(&history.timeline_around(v.job, v.at_ms, 3_000));
    }
    text
}

/// The summary table line for a run, and the checks line.
pub fn summary_table(summaries: &[Summary]) -> String {
    let mut text = format!(
        "{:>8} {:>6} {:>6} {:>7} {:>9}  {:<40} checks\n",
        "seed", "ops", "acked", "unknown", "recovery", "faults"
    );
    for s in summaries {
        let faults: Vec<String> = s.faults.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let failed: std::collections::BTreeSet<&str> =
            s.violations.iter().map(|v| v.check).collect();
        let checks = if failed.contains("liveness") {
            "FAILED: liveness (no other check could run)".to_owned()
        } else if failed.is_empty() {
            format!("{}/{} passed", CHECKS.len(), CHECKS.len())
        } else {
            let names: Vec<&str> = failed.iter().copied().collect();
            format!(
                "{}/{} passed (FAILED: {})",
                CHECKS.len() - failed.len(),
                CHECKS.len(),
                names.join(", ")
            )
        };
        text.push_str(&format!(
            "{:>8} {:>6} {:>6} {:>7} {:>7}ms  {:<40} {checks}\n",
            s.seed,
            s.ops,
            s.acknowledged,
            s.unknown,
            s.recovery.as_millis(),
            faults.join(" ")
        ));
    }
    text
}
