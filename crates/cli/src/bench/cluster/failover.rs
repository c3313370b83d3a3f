//! Leader failover under load: with 64 clients writing to a cluster's leader, SIGKILL the
//! leader; the time from the kill to the first write that was sent after the kill and
//! succeeded, the client errors after the kill, and (to tell the election from the clients'
//! timeouts) the time until a surviving member reports a new leader. Repeated on one cluster (the killed member
//! is restarted and the cluster is ready again between kills); the median is reported.
//!
//! Clients behave alike for both systems (`crate::load`): an attempt that fails or misses the
//! request timeout is an error, the client moves to the next member and retries after
//! `RETRY_PAUSE`. It deliberately leaves election tuning to each system's member settings.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use super::run_tag;
use super::system::{Cluster, Programs, SystemKind};
use super::throughput::RETRY_PAUSE;
use crate::load::{self, Outcome, Schedule};

/// Clients writing during a failover.
pub const FAILOVER_CLIENTS: usize = 64;
/// Lead time between building the clients and their start.
const START_LEAD: Duration = Duration::from_millis(20);
/// Pause after a restarted member is ready before the next kill, so the next trial starts
/// from a settled cluster. Default: 1 s.
const SETTLE: Duration = Duration::from_secs(1);

/// How the failover trials run.
#[derive(Clone, Copy, Debug)]
pub struct FailoverPlan {
    /// Kills per system.
    pub kills: usize,
    /// Load before the kill.
    pub before: Duration,
    /// Load after the kill; a system that has not written again by then is reported as such.
    pub after: Duration,
    /// Deadline of each write attempt.
    pub request_timeout: Duration,
}

/// One kill.
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    /// The killed leader.
    pub killed: String,
    /// Kill to the end of the first successful write sent after it, in milliseconds; `None`
    /// if none succeeded within the plan's `after`.
    pub first_write_ms: Option<f64>,
    /// Kill to the first status answer of a survivor naming a new leader, in milliseconds
    /// (polled every 10 ms); `None` if none within the plan's `after`.
    pub new_leader_ms: Option<f64>,
    /// Failed attempts that ended after the kill.
    pub errors: u64,
    /// Writes that succeeded before the kill (the load was running).
    pub writes_before: u64,
    /// The first error message of the trial, if any.
    pub first_error: Option<String>,
}

/// All kills of one system.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverResult {
    /// Which system.
    pub system: SystemKind,
    /// Clients writing during each trial.
    pub clients: usize,
    /// Load after each kill, in seconds (the bound on `first_write_ms`).
    pub observed_seconds: f64,
    /// Every kill, in order.
    pub trials: Vec<Trial>,
    /// Median of `first_write_ms` over the trials (a trial without a write counts as
    /// longer than any other); `None` if the median trial wrote nothing.
    pub median_first_write_ms: Option<f64>,
    /// Median of `new_leader_ms`, like `median_first_write_ms`.
    pub median_new_leader_ms: Option<f64>,
    /// Median of `errors` over the trials.
    pub median_errors: f64,
}

/// Starts a fresh `kind` cluster under `root`, runs `plan.kills` trials on it, stops it and
/// deletes `root`.
pub async fn measure(
    kind: SystemKind,
    root: &Path,
    programs: &Programs,
    plan: FailoverPlan,
) -> anyhow::Result<FailoverResult> {
    let mut cluster = Cluster::start(kind, root, programs, None).await?;
    let leader = cluster.leader().await?;
    cluster.prime(leader, plan.request_timeout).await?;
    let mut trials = Vec::with_capacity(plan.kills);
    for _ in 0..plan.kills {
        let trial = one_kill(&mut cluster, plan).await?;
        eprintln!(
            "{kind:>7} failover (killed {}): new leader after {}, first write after {}  errors {}",
            trial.killed,
            trial
                .new_leader_ms
                .map_or_else(|| "none".to_owned(), |ms| format!("{ms:.0} ms")),
            trial
                .first_write_ms
                .map_or_else(|| "none".to_owned(), |ms| format!("{ms:.0} ms")),
            trial.errors
        );
        trials.push(trial);
    }
    drop(cluster);
    programs.discard(root)?;
    Ok(summarize(kind, plan, trials))
}

async fn one_kill(cluster: &mut Cluster, plan: FailoverPlan) -> anyhow::Result<Trial> {
    let leader = cluster.leader().await?;
    let operation =
        cluster.write_operation(leader, FAILOVER_CLIENTS, run_tag(), plan.request_timeout)?;
    let schedule = Schedule {
        clients: FAILOVER_CLIENTS,
        start: Instant::now() + START_LEAD,
        warmup: Duration::ZERO,
        measure: plan.before + plan.after,
        retry_pause: RETRY_PAUSE,
        overtime: Duration::ZERO,
        operations_max: None,
    };
    let running = tokio::spawn(load::run(Arc::new(operation), schedule));
    tokio::time::sleep_until((schedule.start + plan.before).into()).await;
    let killed_at = Instant::now();
    cluster.kill(leader)?;
    let new_leader = cluster
        .new_leader_after(leader, killed_at, plan.after)
        .await;
    let outcome = running.await.context("the load task failed")??;
    let trial = Trial {
        killed: cluster.members[leader].name.clone(),
        new_leader_ms: new_leader.map(|d| d.as_secs_f64() * 1e3),
        ..judge(&outcome, killed_at)
    };
    cluster.restart(leader)?;
    cluster.wait_ready(leader, Instant::now()).await?;
    tokio::time::sleep(SETTLE).await;
    Ok(trial)
}

/// What one trial's outcome says about the kill at `killed_at`.
fn judge(outcome: &Outcome, killed_at: Instant) -> Trial {
    let first_write = outcome
        .successes
        .iter()
        .filter(|s| s.attempt_started >= killed_at)
        .map(|s| s.ended)
        .min();
    Trial {
        killed: String::new(),
        new_leader_ms: None,
        first_write_ms: first_write.map(|at| at.duration_since(killed_at).as_secs_f64() * 1e3),
        errors: outcome.errors.iter().filter(|&&at| at >= killed_at).count() as u64,
        writes_before: outcome
            .successes
            .iter()
            .filter(|s| s.ended < killed_at)
            .count() as u64,
        first_error: outcome.first_error.clone(),
    }
}

fn summarize(kind: SystemKind, plan: FailoverPlan, trials: Vec<Trial>) -> FailoverResult {
    let finite_median = |times: &mut Vec<f64>| median(times).filter(|ms| ms.is_finite());
    let mut writes: Vec<f64> = trials
        .iter()
        .map(|t| t.first_write_ms.unwrap_or(f64::INFINITY))
        .collect();
    let mut elections: Vec<f64> = trials
        .iter()
        .map(|t| t.new_leader_ms.unwrap_or(f64::INFINITY))
        .collect();
    let mut errors: Vec<f64> = trials.iter().map(|t| t.errors as f64).collect();
    FailoverResult {
        system: kind,
        clients: FAILOVER_CLIENTS,
        observed_seconds: plan.after.as_secs_f64(),
        median_first_write_ms: finite_median(&mut writes),
        median_new_leader_ms: finite_median(&mut elections),
        median_errors: median(&mut errors).unwrap_or(0.0),
        trials,
    }
}

/// The median (the mean of the middle two for an even count); `None` for no values.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{histogram, Success};

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut [1.0, f64::INFINITY, 2.0]), Some(2.0));
    }

    #[test]
    fn only_writes_sent_after_the_kill_count_as_the_first_write() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let outcome = Outcome {
            latency_micros: histogram().unwrap(),
            measured: 0,
            elapsed: Duration::ZERO,
            successes: vec![
                Success {
                    ended: at(90),
                    attempt_started: at(80),
                },
                // Sent before the kill, answered after it: not a write of the new leader.
                Success {
                    ended: at(300),
                    attempt_started: at(95),
                },
                Success {
                    ended: at(700),
                    attempt_started: at(650),
                },
            ],
            errors: vec![at(50), at(150), at(160)],
            first_error: Some("connect".to_owned()),
        };
        let trial = judge(&outcome, at(100));
        assert_eq!(trial.first_write_ms.map(f64::round), Some(600.0));
        assert_eq!(trial.errors, 2);
        assert_eq!(trial.writes_before, 1);
        let result = summarize(
            SystemKind::Etcd,
            FailoverPlan {
                kills: 2,
                before: Duration::ZERO,
                after: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
            },
            vec![
                trial,
                Trial {
                    killed: String::new(),
                    new_leader_ms: Some(500.0),
                    first_write_ms: None,
                    errors: 4,
                    writes_before: 1,
                    first_error: None,
                },
            ],
        );
        assert_eq!(
            result.median_first_write_ms, None,
            "the mean of 600 ms and no write at all is no write"
        );
        assert_eq!(result.median_errors, 3.0);
        assert_eq!(
            result.median_new_leader_ms, None,
            "the first trial saw no new leader"
        );
    }
}
