//! One seeded run: start a cluster, run the workload under a nemesis schedule, heal, wait for
//! convergence and liveness, read every node's final state, check, and summarise.
//!
//! Partitions go through each node's test-only transport switch (`POST /v1/test-only/partition`);
//! `iptables` is only detected and reported, never used.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rand::rngs::StdRng;
use rand::SeedableRng;
use steward_node::client::Client;

use crate::checks::{check_all, Replayed, Violation, CHECKS};
use crate::cluster::{locate_binary, Cluster, Timing};
use crate::history::{History, Outcome};
use crate::linearizability::Model;
use crate::workload::{Jobs, TestModeCompleter, Workload, REQUEST_TIMEOUT};

/// Cores each worker offers: the jobs mostly sleep, so more slots than the machine has cores
/// keep the queue short. Default: 16.
pub const WORKER_CORES: u32 = 16;
use crate::{nemesis, observe};

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
    /// Cut the cluster (minority/majority, leader isolated, or a bridge node) in the nodes'
    /// Raft transport and gossip, then heal.
    Partition,
    /// Jump the leader's clock forward or back, then set it right.
    Clock,
    /// One node, or every node at once, loses power: SIGKILL, and the WAL records it never
    /// made durable (still dirty in the page cache) are gone; restart.
    PowerLoss,
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
            "partition" => Fault::Partition,
            "clock" => Fault::Clock,
            "power-loss" => Fault::PowerLoss,
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
            Fault::Partition => "partition",
            Fault::Clock => "clock",
            Fault::PowerLoss => "power-loss",
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
    /// Real worker processes running the jobs (0: clients complete jobs through the test-only
    /// route instead).
    pub workers: usize,
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
    /// Jobs that were granted an extension (real workers only), in the final state.
    pub extended: usize,
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
    let jobs = if config.workers > 0 {
        cluster.start_workers(config.workers, WORKER_CORES).await?;
        history.note(format!(
            "{} workers of {WORKER_CORES} cores run the jobs",
            config.workers
        ));
        Jobs::RealWork
    } else {
        Jobs::ClientCompleted(Arc::new(TestModeCompleter))
    };
    let workload = Arc::new(Workload {
        clients,
        history: Arc::clone(&history),
        jobs,
        stop: Arc::clone(&stop),
    });
    wait_leader(
        &cluster.client_all(Duration::from_secs(20))?,
        Duration::from_secs(60),
    )
    .await?;
    let load = tokio::spawn(Arc::clone(&workload).run(config.seed, config.clients));
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut injected = BTreeMap::new();
    if config.faults.contains(&Fault::Partition) {
        history.note(if nemesis::iptables_available() {
            "partitions: node transport switch (iptables is present but not used)"
        } else {
            "partitions: node transport switch (iptables not found)"
        });
    }
    let nemesis = nemesis::run(&mut cluster, config, &mut rng, &history, &mut injected).await;
    stop.store(true, Ordering::Relaxed);
    load.await.context("workload task")?;
    nemesis?;
    history.note("heal: resume and restart every node");
    cluster.heal()?;
    let healed = Instant::now();
    let all = cluster.client_all(Duration::from_secs(30))?;
    let live = liveness(&all, config.workers > 0).await;
    let recovery = healed.elapsed();
    let mut extended = 0;
    let violations = match live {
        Ok(()) => {
            history.note(format!(
                "liveness: leader and a write {} ms after healing",
                recovery.as_millis()
            ));
            let state = observe::final_state(&cluster).await;
            cluster.stop_all();
            match state {
                Ok(mut state) => {
                    extended = state.jobs.first().map_or(0, |jobs| {
                        jobs.values()
                            .filter(|j| j.total_extensions_granted_ms > 0)
                            .count()
                    });
                    for (slot, live) in state.hashes.iter().enumerate() {
                        let data = cluster.slots[slot].data_dir();
                        let replayed = observe::replay(&binary, &data, live.applied_index)?;
                        if let Replayed::Unreachable(why) = &replayed {
                            history
                                .note(format!("slot {}: replay not comparable: {why}", slot + 1));
                        }
                        state.replayed.push(replayed);
                    }
                    check_all(&history, &state, model(config))
                }
                Err(err) => vec![Violation {
                    check: "convergence",
                    job: None,
                    at_ms: history.now_ms(),
                    message: format!("{err:#}"),
                }],
            }
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
        extended,
        faults: injected,
        recovery,
        violations,
        dir: keep.then_some(dir),
        report,
    })
}

/// What live jobs may do on their own in this run (see [`Model`]).
fn model(config: &RunConfig) -> Model {
    Model {
        may_time_out: config.faults.contains(&Fault::Clock) || config.workers > 0,
        workers_finish: config.workers > 0,
    }
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
async fn liveness(client: &Client, real_work: bool) -> anyhow::Result<()> {
    wait_leader(client, Duration::from_secs(30))
        .await
        .context("liveness")?;
    client
        .submit(
            &crate::workload::body_for("liveness-probe", real_work),
            Some("liveness-probe"),
        )
        .await
        .context("liveness: a write after healing")?;
    Ok(())
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
        "{:>8} {:>6} {:>6} {:>7} {:>5} {:>9}  {:<72} checks\n",
        "seed", "ops", "acked", "unknown", "ext", "recovery", "faults"
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
            "{:>8} {:>6} {:>6} {:>7} {:>5} {:>7}ms  {:<72} {checks}\n",
            s.seed,
            s.ops,
            s.acknowledged,
            s.unknown,
            s.extended,
            s.recovery.as_millis(),
            faults.join(" ")
        ));
    }
    text
}
