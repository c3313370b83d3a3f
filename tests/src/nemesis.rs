//! The seeded nemesis: every 0.5–1.5 s one fault, drawn from the enabled kinds, injected and
//! healed before the next (kill, pause, torn tail, bit flip with the operator procedure,
//! partitions through the node's test-only transport switch, leader clock jumps, power loss of
//! one node or all).
//!
//! It deliberately never overlaps two faults: each one ends with every node up and every link
//! healed, so a violation's timeline names one cause.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use steward_node::api::types::AddMemberRequest;
use steward_node::client::{Client, ClientError};

use crate::cluster::Cluster;
use crate::faults;
use crate::history::History;
use crate::run::{Fault, RunConfig};

/// Largest forward or backward leader clock jump. Default: 10 min, far below the 24 h
/// idempotency TTL (a key that expires may legitimately start a second job) and above the
/// 120 s stuck threshold and 30 s cancel grace (so jumps do fire timeouts).
pub const CLOCK_JUMP_MS_MAX: u64 = 600_000;

/// How a partition cuts the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// A random minority (1 of 3, 1–2 of 5) against the majority.
    Minority,
    /// The leader alone against the rest.
    LeaderIsolated,
    /// Two halves that cannot talk, and one bridge node that talks to both.
    Bridge,
}

/// Which slots each slot blocks (by slot index), for `cut` of `nodes` slots.
fn blocked_slots(
    cut: Cut,
    nodes: usize,
    leader: Option<usize>,
    rng: &mut StdRng,
) -> Vec<BTreeSet<usize>> {
    let mut order: Vec<usize> = (0..nodes).collect();
    order.shuffle(rng);
    let (side_a, side_b): (Vec<usize>, Vec<usize>) = match cut {
        Cut::Minority => {
            let size = rng.gen_range(1..=(nodes - 1) / 2);
            (order[..size].to_vec(), order[size..].to_vec())
        }
        Cut::LeaderIsolated => {
            let leader = leader.unwrap_or(order[0]);
            (vec![leader], (0..nodes).filter(|s| *s != leader).collect())
        }
        Cut::Bridge => {
            // order[0] is the bridge; the others split in two halves.
            let rest = &order[1..];
            let half = rest.len() / 2;
            (rest[..half].to_vec(), rest[half..].to_vec())
        }
    };
    let mut blocked = vec![BTreeSet::new(); nodes];
    for a in &side_a {
        for b in &side_b {
            blocked[*a].insert(*b);
            blocked[*b].insert(*a);
        }
    }
    blocked
}

/// Whether `iptables` is on the PATH. The harness only implements the transport switch; this
/// is reported so a run says which partition method ran and why.
pub fn iptables_available() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("iptables").is_file()))
}

/// Runs faults until `config.duration` (less 2 s) has passed; counts them by kind.
pub async fn run(
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
        match fault {
            Fault::Kill if !cluster.workers.is_empty() && rng.gen_bool(0.25) => {
                let index = rng.gen_range(0..cluster.workers.len());
                kill_worker(cluster, index, hold, history).await?
            }
            Fault::Kill => kill(cluster, slot, hold, history).await?,
            Fault::Pause => pause(cluster, slot, hold, history).await?,
            Fault::TornTail => torn_tail(cluster, slot, hold, rng, history).await?,
            Fault::BitFlip => {
                if !bit_flip(cluster, slot, rng, history).await? {
                    *injected.entry("bitflip-skipped").or_insert(0) += 1;
                    continue;
                }
            }
            Fault::Partition => {
                let hold = Duration::from_millis(rng.gen_range(election_ms * 2..election_ms * 6));
                partition(cluster, hold, rng, history).await?
            }
            Fault::Clock => clock_jump(cluster, hold, rng, history).await?,
            Fault::PowerLoss => {
                let victims = if rng.gen_bool(0.5) {
                    (0..cluster.slots.len()).collect()
                } else {
                    vec![slot]
                };
                power_loss(cluster, &victims, hold, history).await?
            }
            Fault::LoseTail => lose_tail(cluster, history)?,
        }
        *injected.entry(fault.name()).or_insert(0) += 1;
    }
    Ok(())
}

/// The slot of the leader the cluster reports, if any.
pub async fn leader_slot(cluster: &Cluster) -> Option<usize> {
    let client = cluster.client_all(Duration::from_secs(2)).ok()?;
    let leader = client.cluster_status().await.ok()?.leader_id?;
    cluster.slots.iter().position(|s| s.id == leader)
}

async fn kill(
    cluster: &mut Cluster,
    slot: usize,
    hold: Duration,
    history: &History,
) -> anyhow::Result<()> {
    let id = cluster.slots[slot].id;
    history.note(format!("kill -9 slot {} (node {id})", slot + 1));
    cluster.kill(slot)?;
    tokio::time::sleep(hold).await;
    history.note(format!("restart slot {}", slot + 1));
    cluster.restart(slot)
}

async fn kill_worker(
    cluster: &mut Cluster,
    index: usize,
    hold: Duration,
    history: &History,
) -> anyhow::Result<()> {
    let id = cluster.workers[index].id;
    history.note(format!("kill -9 worker {id}"));
    cluster.kill_worker(index)?;
    tokio::time::sleep(hold).await;
    history.note(format!(
        "restart worker {id} (its old attempts are declared lost)"
    ));
    cluster.restart_worker(index)
}

async fn pause(
    cluster: &mut Cluster,
    slot: usize,
    hold: Duration,
    history: &History,
) -> anyhow::Result<()> {
    let id = cluster.slots[slot].id;
    history.note(format!(
        "SIGSTOP slot {} (node {id}) for {} ms",
        slot + 1,
        hold.as_millis()
    ));
    cluster.pause(slot)?;
    tokio::time::sleep(hold).await;
    cluster.resume(slot)?;
    history.note(format!("SIGCONT slot {}", slot + 1));
    Ok(())
}

async fn torn_tail(
    cluster: &mut Cluster,
    slot: usize,
    hold: Duration,
    rng: &mut StdRng,
    history: &History,
) -> anyhow::Result<()> {
    let id = cluster.slots[slot].id;
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
    Ok(())
}

/// `victims` lose power together: SIGKILL each, drop what each never synced, restart after
/// `hold`.
async fn power_loss(
    cluster: &mut Cluster,
    victims: &[usize],
    hold: Duration,
    history: &History,
) -> anyhow::Result<()> {
    for victim in victims {
        cluster.kill(*victim)?;
    }
    for victim in victims {
        let id = cluster.slots[*victim].id;
        let lost = faults::power_loss(&cluster.slots[*victim].wal_dir())?;
        history.note(match lost {
            Some(fault) => format!(
                "power off slot {} (node {id}), {} at {}:{}",
                victim + 1,
                fault.what,
                fault.file.display(),
                fault.offset
            ),
            None => format!(
                "power off slot {} (node {id}): every WAL record was synced",
                victim + 1
            ),
        });
    }
    tokio::time::sleep(hold).await;
    for victim in victims {
        cluster.restart(*victim)?;
    }
    history.note(format!("power back on {} slot(s)", victims.len()));
    Ok(())
}

/// Checker self-test: kill every node and cut whole synced records from every WAL.
fn lose_tail(cluster: &mut Cluster, history: &History) -> anyhow::Result<()> {
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
    Ok(())
}

/// Bit flip, refusal, then the operator procedure: remove the node, wipe, re-join as a new id.
/// `false` when the log was too small to damage (the node was only killed and restarted).
async fn bit_flip(
    cluster: &mut Cluster,
    slot: usize,
    rng: &mut StdRng,
    history: &History,
) -> anyhow::Result<bool> {
    let id = cluster.slots[slot].id;
    cluster.kill(slot)?;
    let fault = match faults::bit_flip(&cluster.slots[slot].wal_dir(), rng) {
        Ok(fault) => fault,
        // A node that just re-joined from a snapshot may hold too few records to damage.
        Err(err) => {
            history.note(format!(
                "kill -9 slot {} (node {id}); no bit flip: {err:#}; restart",
                slot + 1
            ));
            cluster.restart(slot)?;
            return Ok(false);
        }
    };
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
    change_membership(&admin, id, false, || admin.remove_member(id))
        .await
        .with_context(|| format!("removing node {id}"))?;
    let (old, new) = cluster.wipe_for_rejoin(slot)?;
    let me = &cluster.slots[slot];
    let request = AddMemberRequest {
        id: new,
        raft_addr: me.raft_addr,
        api_addr: me.api_addr,
    };
    change_membership(&admin, new, true, || admin.add_member(&request))
        .await
        .with_context(|| format!("adding node {new}"))?;
    history.note(format!(
        "operator procedure: removed node {old}, wiped slot {}, re-joined as node {new}",
        slot + 1
    ));
    Ok(true)
}

/// How long the operator procedure retries a membership change before the harness gives up
/// (a slow disk can stall a leader for seconds). Default: 60 s.
pub const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `change` until it succeeds or the cluster shows node `id` as a member (`present`) or
/// not (a lost answer to a change that did happen), retrying for [`MEMBERSHIP_DEADLINE`], as
/// an operator would.
async fn change_membership<F, Fut, T>(
    admin: &Client,
    id: u64,
    present: bool,
    change: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let deadline = Instant::now() + MEMBERSHIP_DEADLINE;
    loop {
        let err = match change().await {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        if let Ok(status) = admin.cluster_status().await {
            let member = status.members.iter().any(|m| m.id == id && m.voter);
            if member == present {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(err.into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sets every slot's blocked peers through `POST /v1/test-only/partition` (empty heals).
async fn apply_partition(cluster: &Cluster, blocked: &[BTreeSet<usize>]) -> anyhow::Result<()> {
    for (slot, others) in blocked.iter().enumerate() {
        let ids: Vec<u64> = others.iter().map(|s| cluster.slots[*s].id).collect();
        cluster
            .client_for(slot, Duration::from_secs(5))?
            .set_partition_for_test(&ids)
            .await
            .with_context(|| format!("setting the partition on slot {}", slot + 1))?;
    }
    Ok(())
}

/// A partition through the nodes' transport switch, held, then healed.
async fn partition(
    cluster: &mut Cluster,
    hold: Duration,
    rng: &mut StdRng,
    history: &History,
) -> anyhow::Result<()> {
    let cut = [Cut::Minority, Cut::LeaderIsolated, Cut::Bridge][rng.gen_range(0..3)];
    let leader = leader_slot(cluster).await;
    let blocked = blocked_slots(cut, cluster.slots.len(), leader, rng);
    let shape: Vec<String> = blocked
        .iter()
        .enumerate()
        .map(|(slot, others)| {
            let others: Vec<String> = others.iter().map(|s| (s + 1).to_string()).collect();
            format!("{}x[{}]", slot + 1, others.join(","))
        })
        .collect();
    history.note(format!(
        "partition {cut:?} for {} ms (slot x [slots it cannot reach]): {}",
        hold.as_millis(),
        shape.join(" ")
    ));
    apply_partition(cluster, &blocked).await?;
    tokio::time::sleep(hold).await;
    apply_partition(cluster, &vec![BTreeSet::new(); cluster.slots.len()]).await?;
    history.note("partition healed");
    Ok(())
}

/// The leader's clock jumps forward or back, held, then set right.
async fn clock_jump(
    cluster: &mut Cluster,
    hold: Duration,
    rng: &mut StdRng,
    history: &History,
) -> anyhow::Result<()> {
    let slot = match leader_slot(cluster).await {
        Some(slot) => slot,
        None => rng.gen_range(0..cluster.slots.len()),
    };
    // Mostly small jumps; some past the stuck threshold and the cancel grace.
    let size = if rng.gen_bool(0.3) {
        rng.gen_range(120_000..=CLOCK_JUMP_MS_MAX)
    } else {
        rng.gen_range(1_000..=60_000)
    };
    let offset = if rng.gen_bool(0.5) {
        size as i64
    } else {
        -(size as i64)
    };
    let client = cluster.client_for(slot, Duration::from_secs(5))?;
    history.note(format!(
        "clock of slot {} (node {}, leader) jumps {offset:+} ms for {} ms",
        slot + 1,
        cluster.slots[slot].id,
        hold.as_millis()
    ));
    client
        .set_clock_offset_for_test(offset)
        .await
        .with_context(|| format!("jumping the clock of slot {}", slot + 1))?;
    tokio::time::sleep(hold).await;
    client
        .set_clock_offset_for_test(0)
        .await
        .with_context(|| format!("resetting the clock of slot {}", slot + 1))?;
    history.note(format!("clock of slot {} set right", slot + 1));
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn links(blocked: &[BTreeSet<usize>]) -> usize {
        blocked.iter().map(BTreeSet::len).sum()
    }

    #[test]
    fn cuts_are_symmetric_and_shaped_as_named() {
        let mut rng = StdRng::seed_from_u64(7);
        for nodes in [3, 5] {
            for _ in 0..50 {
                for cut in [Cut::Minority, Cut::LeaderIsolated, Cut::Bridge] {
                    let blocked = blocked_slots(cut, nodes, Some(1), &mut rng);
                    for (a, others) in blocked.iter().enumerate() {
                        assert!(!others.contains(&a));
                        assert!(others.iter().all(|b| blocked[*b].contains(&a)));
                    }
                    let cut_off = blocked.iter().filter(|b| !b.is_empty()).count();
                    match cut {
                        // Every node is on one side: the minority side is at most half.
                        Cut::Minority => {
                            let minority = blocked.iter().map(BTreeSet::len).max().unwrap_or(0);
                            assert!(nodes - minority <= nodes / 2, "{blocked:?}");
                            assert_eq!(cut_off, nodes);
                        }
                        Cut::LeaderIsolated => {
                            assert_eq!(blocked[1].len(), nodes - 1);
                            assert_eq!(links(&blocked), 2 * (nodes - 1));
                        }
                        // One node blocks nobody; every other node reaches it.
                        Cut::Bridge => assert_eq!(cut_off, nodes - 1),
                    }
                }
            }
        }
    }
}
