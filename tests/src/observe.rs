//! Reading what every node holds once the run is healed: each node's jobs and state hash at one
//! applied index (while the nodes run), and the hash an offline `steward log replay` of each
//! data directory gives for the same index (after they stop).
//!
//! It deliberately only reads; [`crate::checks`] judges.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use steward_node::api::types::{JobView, StateHashView};
use steward_node::client::{Client, ListQuery};

use crate::checks::{FinalState, Replayed};
use crate::cluster::Cluster;

/// How long the nodes get to agree on one applied index after healing. Default: 30 s.
pub const SETTLE_DEADLINE: Duration = Duration::from_secs(30);

/// Waits until every node has applied the leader's commit index, then reads each node's jobs
/// and state hash; the reads count only if no node applied anything meanwhile (leader duties
/// keep proposing, e.g. dispatches), so the states compared are at the same applied index.
/// When the indexes never hold still for [`SETTLE_DEADLINE`], the state is marked unsettled
/// and holds the jobs of the reachable node that applied the most.
pub async fn final_state(cluster: &Cluster) -> anyhow::Result<FinalState> {
    let deadline = Instant::now() + SETTLE_DEADLINE;
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
            let mut jobs = Vec::new();
            let mut hashes = Vec::new();
            for (slot, client) in clients.iter().enumerate() {
                jobs.push(all_jobs(client).await?);
                hashes.push(state_hash(cluster, client, slot).await?);
            }
            if applied_indexes(cluster, &clients).await? == before {
                return Ok(FinalState {
                    jobs,
                    slots: (0..clients.len()).collect(),
                    unsettled: None,
                    hashes,
                    replayed: Vec::new(),
                });
            }
        }
        if Instant::now() > deadline {
            let why = format!(
                "nodes did not hold one applied index for {SETTLE_DEADLINE:?}: \
                 (applied, committed) by slot {before:?}"
            );
            return most_advanced(&clients, &before, why).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The unsettled state: the jobs of the reachable node with the highest applied index.
async fn most_advanced(
    clients: &[Client],
    applied: &[Option<(u64, u64)>],
    why: String,
) -> anyhow::Result<FinalState> {
    let best = applied
        .iter()
        .enumerate()
        .filter_map(|(slot, a)| Some((a.as_ref()?.0, slot)))
        .max();
    let mut state = FinalState {
        unsettled: Some(why),
        ..FinalState::default()
    };
    if let Some((_, slot)) = best {
        state.jobs.push(all_jobs(&clients[slot]).await?);
        state.slots.push(slot);
    }
    Ok(state)
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

async fn state_hash(
    cluster: &Cluster,
    client: &Client,
    slot: usize,
) -> anyhow::Result<StateHashView> {
    let status = client
        .cluster_status_with_hash_at(&cluster.slots[slot].url()?)
        .await
        .with_context(|| format!("reading the state hash of slot {}", slot + 1))?;
    status
        .state_hash
        .with_context(|| format!("slot {} answered without a state hash", slot + 1))
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

/// `steward log replay DATA_DIR --json --until-index N` of a stopped node: the state hash and
/// last applied index it prints. A snapshot newer than `N` (taken from entries the leader
/// duties proposed between the final read and the stop) makes the index unreachable offline;
/// that is reported as [`Replayed::Unreachable`], not as a mismatch.
pub fn replay(binary: &Path, data_dir: &Path, until_index: u64) -> anyhow::Result<Replayed> {
    let output = Command::new(binary)
        .args(["log", "replay", "--json", "--until-index"])
        .arg(until_index.to_string())
        .arg(data_dir)
        .output()
        .with_context(|| format!("running steward log replay on {}", data_dir.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if stderr.contains("before the oldest history") {
            return Ok(Replayed::Unreachable(stderr.trim().to_owned()));
        }
        return Ok(Replayed::Failed(format!(
            "steward log replay {} exited {}: {}",
            data_dir.display(),
            output.status,
            stderr.trim()
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("parsing the replay of {}", data_dir.display()))?;
    let summary = &value["summary"];
    match (
        summary["last_applied"].as_u64(),
        summary["state_hash"].as_u64(),
    ) {
        (Some(applied_index), Some(hash)) => Ok(Replayed::Hash(StateHashView {
            applied_index,
            hash,
        })),
        _ => Ok(Replayed::Failed(format!(
            "the replay of {} printed no summary.state_hash/last_applied",
            data_dir.display()
        ))),
    }
}
