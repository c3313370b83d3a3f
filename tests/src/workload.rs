//! The seeded client workload: concurrent clients sending mixed submits (with and without
//! idempotency keys, same-key duplicates with the same and a different body, to different
//! nodes, a third of first submits sent twice at once to two nodes), repeated cancels, linearizable status reads and workflow completions, each recorded
//! in the [`History`].
//!
//! Jobs end in one of two ways, fixed per run: clients complete them through the [`Completer`]
//! (the test-only route), or real `steward worker` processes run them ([`Jobs::RealWork`]: short
//! shell loops printing progress, a fifth of them with a timeout shorter than their run, so the
//! workers must ask for extensions). Timing between clients is not reproducible (real
//! processes); the choices are.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use steward_node::api::types::{CancelJobRequest, CancelOutcome, JobView, SubmitJobRequest};
use steward_node::api::types::{JobStatus, WorkflowSpec};
use steward_node::api::ErrorCode;
use steward_node::client::{Client, ClientError};

use crate::history::{History, Op, OpKind, Outcome, Status};

/// Per-request deadline of workload clients. Default: 3 s.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// The single workflow every workload job has.
pub const WORKFLOW: &str = "main";

/// Finishes a job's workflow (test-mode route today; real workers later).
pub trait Completer: Send + Sync {
    /// Marks `job`'s workflow finished with `success`, answering the job afterwards.
    fn complete<'a>(
        &'a self,
        client: &'a Client,
        job: u64,
        success: bool,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<JobView, ClientError>> + Send + 'a>,
    >;
}

/// Completion through `POST /v1/test-only/.../complete` (needs `test_mode`).
#[derive(Debug, Default)]
pub struct TestModeCompleter;

impl Completer for TestModeCompleter {
    fn complete<'a>(
        &'a self,
        client: &'a Client,
        job: u64,
        success: bool,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<JobView, ClientError>> + Send + 'a>,
    > {
        Box::pin(client.complete_workflow_for_test(job, WORKFLOW, success))
    }
}

/// What the clients share: known job ids and keys already used (with their body names).
#[derive(Debug, Default)]
struct Shared {
    jobs: Vec<u64>,
    keys: Vec<(String, String)>,
}

/// How the jobs of a run end.
#[derive(Clone)]
pub enum Jobs {
    /// Jobs run `true` and clients complete them through the completer.
    ClientCompleted(Arc<dyn Completer>),
    /// Real workers run the jobs' commands; clients only submit, cancel and read.
    RealWork,
}

/// The workload of one run.
pub struct Workload {
    /// One client per node (no failover, so "sent to node N" is true).
    pub clients: Vec<Arc<Client>>,
    /// The history to record into.
    pub history: Arc<History>,
    /// How jobs end.
    pub jobs: Jobs,
    /// Set to stop the clients.
    pub stop: Arc<AtomicBool>,
}

/// Maps a job status to the harness's status name.
pub fn status_name(status: JobStatus) -> Status {
    status.as_str()
}

fn classify(err: &ClientError) -> Outcome {
    match err.status() {
        Some(409) if err.code() == Some(ErrorCode::IdempotencyConflict) => Outcome::Conflict,
        Some(status) if (400..500).contains(&status) => {
            Outcome::Failed(format!("{status} {:?}", err.code()))
        }
        _ => Outcome::Unknown(err.to_string()),
    }
}

fn job_ok(job: &JobView, no_change: bool) -> Outcome {
    Outcome::Ok {
        job: job.id,
        status: status_name(job.status),
        fence: job.fence_token,
        no_change,
    }
}

/// Timeout of a real-work job that must ask for an extension: shorter than its run.
pub const SHORT_TIMEOUT_MS: i64 = 800;

/// FNV-1a of a job name: the real-work body is a function of the name alone, so a resubmit
/// with the same name has the same body.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The submit body for `name`: `true` for client-completed runs; for real work a loop printing
/// `STEWARD_PROGRESS` every 100 ms, 1–5 rounds with a 1 h timeout, or (one name in five)
/// 12–21 rounds against [`SHORT_TIMEOUT_MS`], which only an extension lets complete.
fn request(name: &str, real_work: bool) -> SubmitJobRequest {
    let hash = name_hash(name);
    let (command, timeout_ms) = if !real_work {
        (vec!["true".to_owned()], 3_600_000)
    } else {
        let (rounds, timeout_ms) = if hash % 5 == 0 {
            (12 + hash / 5 % 10, SHORT_TIMEOUT_MS)
        } else {
            (1 + hash / 5 % 5, 3_600_000)
        };
        let script = format!(
            "i=0; while [ $i -lt {rounds} ]; do i=$((i+1)); echo STEWARD_PROGRESS $i; \
             sleep 0.1; done"
        );
        (vec!["sh".to_owned(), "-c".to_owned(), script], timeout_ms)
    };
    SubmitJobRequest {
        name: Some(name.to_owned()),
        labels: BTreeMap::new(),
        workflows: vec![WorkflowSpec {
            name: WORKFLOW.to_owned(),
            command,
            env: BTreeMap::new(),
            cores: Some(1),
            timeout_ms: None,
            working_dir: None,
        }],
        timeout_ms: Some(timeout_ms),
        // No retries, so a failed workflow fails the job (a simple, checkable model).
        retry_budget: Some(0),
        cancel_grace_ms: None,
    }
}

impl Workload {
    /// Runs `clients` concurrent client tasks until `stop` is set; each draws its choices
    /// from `seed` and its index.
    pub async fn run(self: Arc<Self>, seed: u64, clients: usize) {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut tasks = Vec::new();
        for index in 0..clients {
            let me = Arc::clone(&self);
            let shared = Arc::clone(&shared);
            let rng = StdRng::seed_from_u64(seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9));
            tasks.push(tokio::spawn(async move {
                me.client_loop(index, rng, shared).await;
            }));
        }
        for task in tasks {
            if let Err(err) = task.await {
                self.history.note(format!("client task failed: {err}"));
            }
        }
    }

    async fn client_loop(&self, index: usize, mut rng: StdRng, shared: Arc<Mutex<Shared>>) {
        let mut counter = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            counter += 1;
            let node = rng.gen_range(0..self.clients.len());
            let kind = self.choose(index, counter, &mut rng, &shared);
            // A third of the first submits of a key are sent twice at once, to two different
            // nodes, so the duplicates race through `decide` on the leader.
            let fresh = format!("c{index}-{counter}");
            let twin = matches!(&kind, OpKind::Submit { key: Some(_), name } if *name == fresh)
                && self.clients.len() > 1
                && rng.gen_bool(0.3);
            let other = (node + rng.gen_range(1..self.clients.len().max(2))) % self.clients.len();
            let invoke_ms = self.history.now_ms();
            let answers = if twin {
                let (a, b) = tokio::join!(self.execute(node, &kind), self.execute(other, &kind));
                vec![(node, a), (other, b)]
            } else {
                vec![(node, self.execute(node, &kind).await)]
            };
            let complete_ms = self.history.now_ms();
            for (node, outcome) in answers {
                self.remember(&kind, &outcome, &shared);
                self.history.record(Op {
                    seq: 0,
                    client: index,
                    node,
                    kind: kind.clone(),
                    invoke_ms,
                    complete_ms,
                    outcome,
                });
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..20))).await;
        }
    }

    /// Shares an acknowledged submit's job and key with the other clients.
    fn remember(&self, kind: &OpKind, outcome: &Outcome, shared: &Mutex<Shared>) {
        let (OpKind::Submit { key, name }, Outcome::Ok { job, no_change, .. }) = (kind, outcome)
        else {
            return;
        };
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        if !no_change {
            shared.jobs.push(*job);
        }
        if let Some(key) = key
            .as_ref()
            .filter(|k| !shared.keys.iter().any(|(o, _)| o == *k))
        {
            shared.keys.push((key.clone(), name.clone()));
        }
    }

    fn choose(
        &self,
        index: usize,
        counter: u64,
        rng: &mut StdRng,
        shared: &Mutex<Shared>,
    ) -> OpKind {
        let shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        let roll = rng.gen_range(0..100);
        let fresh = format!("c{index}-{counter}");
        if shared.jobs.is_empty() || roll < 25 {
            let key = rng.gen_bool(0.6).then(|| format!("k-{fresh}"));
            return OpKind::Submit { key, name: fresh };
        }
        if roll < 35 && !shared.keys.is_empty() {
            let (key, name) = shared.keys[rng.gen_range(0..shared.keys.len())].clone();
            // Same key: same body (a retry) or a different body (must be refused with 409).
            let name = if rng.gen_bool(0.6) {
                name
            } else {
                format!("{name}-other")
            };
            return OpKind::Submit {
                key: Some(key),
                name,
            };
        }
        // Recent jobs get most of the traffic, so each job sees a short, checkable history.
        let recent = shared.jobs.len().saturating_sub(8);
        let job = shared.jobs[rng.gen_range(recent..shared.jobs.len())];
        match (roll, &self.jobs) {
            (35..=49, _) => OpKind::Cancel { job },
            (50..=74, _) | (_, Jobs::RealWork) => OpKind::Read { job },
            (_, Jobs::ClientCompleted(_)) => OpKind::Complete {
                job,
                success: rng.gen_bool(0.8),
            },
        }
    }

    async fn execute(&self, node: usize, kind: &OpKind) -> Outcome {
        let client = &self.clients[node];
        match kind {
            OpKind::Submit { key, name } => {
                let body = request(name, matches!(self.jobs, Jobs::RealWork));
                match client.submit(&body, key.as_deref()).await {
                    Ok(answer) => job_ok(&answer.job, answer.duplicate),
                    Err(err) => classify(&err),
                }
            }
            OpKind::Cancel { job } => match client.cancel(*job, &CancelJobRequest::default()).await
            {
                Ok(answer) => job_ok(&answer.job, answer.outcome != CancelOutcome::Cancelled),
                Err(err) => classify(&err),
            },
            OpKind::Read { job } => match client.job(*job, false).await {
                Ok(view) => job_ok(&view, false),
                Err(err) => classify(&err),
            },
            OpKind::Complete { job, success } => {
                let Jobs::ClientCompleted(completer) = &self.jobs else {
                    return Outcome::Failed("no completions when workers run the jobs".into());
                };
                match completer.complete(client, *job, *success).await {
                    Ok(view) => job_ok(&view, false),
                    Err(err) => classify(&err),
                }
            }
        }
    }
}

/// The request body the workload sends for a job name (exposed for checks).
pub fn body_for(name: &str, real_work: bool) -> SubmitJobRequest {
    request(name, real_work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_work_bodies_follow_the_name_and_a_fifth_need_an_extension() {
        let names: Vec<String> = (0..1000).map(|i| format!("c0-{i}")).collect();
        let short = names
            .iter()
            .filter(|n| request(n, true).timeout_ms == Some(SHORT_TIMEOUT_MS))
            .count();
        assert!((150..250).contains(&short), "{short}");
        for name in &names {
            assert_eq!(request(name, true), request(name, true));
            let body = request(name, true);
            let script = &body.workflows[0].command[2];
            let rounds: u64 = script
                .split("-lt ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            // Rounds of 100 ms: a short-timeout job runs longer than its timeout.
            if body.timeout_ms == Some(SHORT_TIMEOUT_MS) {
                assert!(rounds * 100 > SHORT_TIMEOUT_MS as u64, "{script}");
            } else {
                assert!((1..=5).contains(&rounds), "{script}");
            }
        }
        assert_eq!(request("x", false).workflows[0].command, vec!["true"]);
    }
}
