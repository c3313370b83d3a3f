//! Tests for `steward log dump --decode`, `log replay` and `log diff` on a WAL written here
//! through `steward_log::Wal`, with proposals made by `steward_statemachine::decide` and stamped
//! like the leader does, so no cluster is needed. Text output is compared with
//! `tests/fixtures/replay/*.txt` after the temporary path is replaced by `$DIR`; run with
//! `STEWARD_UPDATE_SNAPSHOTS=1` to rewrite the fixtures, then review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::path::Path;
use std::process::Command as Process;

use steward_log::{Record, Wal, WalOptions};
use steward_statemachine::{
    apply, decide, encode_proposal, state_hash, Command, IdempotencyKey, JobId, JobSpec, LogIndex,
    NodeId, Outcome, Proposal, ReportKind, State, Term, WorkerId, WorkerReport, WorkflowId,
    WorkflowRef, WorkflowSpec,
};

/// 2026-11-23T03:10:00Z: the log's first stamp.
const START_MS: u64 = 1_795_403_400_000;

/// Builds a log the way a leader does: decide, stamp, apply, record.
struct Leader {
    state: State,
    now_ms: u64,
    term: u64,
    records: Vec<Record>,
    proposals: Vec<(LogIndex, Proposal)>,
}

impl Leader {
    fn new() -> Leader {
        Leader {
            state: State::default(),
            now_ms: START_MS,
            term: 1,
            records: Vec::new(),
            proposals: Vec::new(),
        }
    }

    fn next_index(&self) -> u64 {
        self.records.len() as u64 + 1
    }

    fn blank(&mut self) {
        let index = self.next_index();
        self.records
            .push(Record::new(index, self.term, 2, Vec::<u8>::new()));
    }

    fn exec(&mut self, command: Command) -> Outcome {
        let events = decide(&self.state, command, self.now_ms).expect("command accepted");
        let index = LogIndex(self.next_index());
        let proposal = Proposal {
            stamp_ms: self.now_ms,
            events,
        };
        let report = apply(&mut self.state, index, &proposal);
        let payload = encode_proposal(&proposal).unwrap();
        self.records
            .push(Record::new(index.0, self.term, 1, payload));
        self.proposals.push((index, proposal));
        Outcome::for_command(&report.outcomes)
    }

    fn elect(&mut self, term: u64, node: u64) {
        self.term = term;
        self.blank();
        self.exec(Command::BecomeLeader {
            term: Term(term),
            node: NodeId(node),
        });
    }

    fn submit(&mut self, name: &str, workflows: usize, key: Option<&str>) -> JobId {
        let workflows = (0..workflows)
            .map(|n| WorkflowSpec::new(format!("step{n}"), vec!["true".into()]))
            .collect();
        let command = Command::SubmitJob {
            idempotency_key: key.map(|key| IdempotencyKey::new("ci", key)),
            spec: JobSpec::new(name, workflows),
        };
        match self.exec(command) {
            Outcome::JobAccepted { job } => job,
            other => panic!("submit refused: {other:?}"),
        }
    }

    fn dispatch(&mut self, job: JobId, workflow: u32, worker: u64) {
        self.exec(Command::DispatchWorkflow {
            job,
            workflow: WorkflowId(workflow),
            worker: Some(WorkerId(worker)),
        });
    }

    fn report(&mut self, job: JobId, workflow: u32, worker: u64, kind: ReportKind) {
        let attempt = self
            .state
            .job(job)
            .unwrap()
            .workflow(WorkflowId(workflow))
            .unwrap()
            .attempt;
        let target = WorkflowRef {
            job,
            workflow: WorkflowId(workflow),
            attempt,
        };
        self.exec(Command::Report(WorkerReport {
            worker: WorkerId(worker),
            target,
            kind,
            exit: None,
        }));
    }

    fn run_to_end(&mut self, job: JobId, workflow: u32, worker: u64) {
        self.report(job, workflow, worker, ReportKind::Started);
        self.now_ms += 20_000;
        self.report(job, workflow, worker, ReportKind::Progress { progress: 5 });
        self.now_ms += 20_000;
        self.report(job, workflow, worker, ReportKind::Completed);
    }

    fn write(&self, dir: &Path) {
        let (wal, _) = Wal::open(dir, WalOptions::default()).unwrap();
        wal.append(self.records.clone()).unwrap();
    }
}

/// Two leaders, two workers, three jobs: one succeeds, one loses its worker at 03:12 and is
/// retried after a leader change, one is cancelled. Returns the leader and the three jobs.
fn scenario() -> (Leader, [JobId; 3]) {
    let mut leader = Leader::new();
    leader.elect(1, 1);
    for worker in [1, 2] {
        leader.exec(Command::RegisterWorker {
            worker: WorkerId(worker),
            cores: 4,
            address: format!("10.0.0.{worker}:9000"),
        });
    }
    let build = leader.submit("build", 2, Some("build-42"));
    let test = leader.submit("test", 1, None);
    leader.dispatch(build, 0, 1);
    leader.dispatch(test, 0, 2);
    leader.run_to_end(build, 0, 1);
    leader.report(test, 0, 2, ReportKind::Started);
    leader.now_ms = START_MS + 120_000;
    leader.exec(Command::WorkerLost {
        worker: WorkerId(2),
    });
    leader.now_ms += 5_000;
    leader.elect(2, 2);
    leader.dispatch(build, 1, 1);
    leader.dispatch(test, 0, 1);
    leader.run_to_end(build, 1, 1);
    leader.run_to_end(test, 0, 1);
    let deploy = leader.submit("deploy", 1, Some("deploy-7"));
    leader.now_ms += 1_000;
    leader.exec(Command::CancelJob {
        job: deploy,
        fence_token: None,
    });
    (leader, [build, test, deploy])
}

fn steward(args: &[&str], dirs: &[&Path]) -> (i32, String) {
    let output = Process::new(env!("CARGO_BIN_EXE_steward"))
        .arg("log")
        .args(args)
        .args(dirs)
        .output()
        .unwrap();
    let mut stdout = String::from_utf8(output.stdout).unwrap();
    for (n, dir) in dirs.iter().enumerate() {
        let name = if n == 0 { "$DIR" } else { "$DIR_B" };
        stdout = stdout.replace(dir.to_str().unwrap(), name);
    }
    let stderr = String::from_utf8(output.stderr).unwrap();
    let code = output.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 5, "exit {code}: {stderr}");
    (code, stdout)
}

fn assert_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/replay")
        .join(format!("{name}.txt"));
    if std::env::var_os("STEWARD_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "missing fixture {} ({e}); run with STEWARD_UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

fn written_scenario() -> (tempfile::TempDir, Leader, [JobId; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let (leader, jobs) = scenario();
    leader.write(dir.path());
    (dir, leader, jobs)
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn dump_decode_shows_events_as_text_and_json() {
    let (dir, _, _) = written_scenario();
    let (_, out) = steward(&["dump", "--decode"], &[dir.path()]);
    assert_snapshot("dump_decode", &out);
    let (_, out) = steward(
        &["dump", "--decode", "--json", "--from", "1", "--to", "3"],
        &[dir.path()],
    );
    assert_snapshot("dump_decode_json", &out);
}

#[test]
fn replay_summary_at_the_end_and_at_an_index() {
    let (dir, _, _) = written_scenario();
    let (_, out) = steward(&["replay"], &[dir.path()]);
    assert_snapshot("replay_summary", &out);
    let (_, out) = steward(&["replay", "--until-index", "12"], &[dir.path()]);
    assert_snapshot("replay_until_index", &out);
}

#[test]
fn replay_job_timeline_shows_workers_attempts_and_fences() {
    let (dir, _, [_, test, _]) = written_scenario();
    let (_, out) = steward(&["replay", "--job", &test.0.to_string()], &[dir.path()]);
    assert_snapshot("replay_job", &out);
}

#[test]
fn replay_hash_equals_the_in_memory_fold_at_every_stop() {
    let (dir, leader, _) = written_scenario();
    let (_, out) = steward(&["replay", "--json"], &[dir.path()]);
    let end = json(&out);
    assert_eq!(
        end["summary"]["state_hash"].as_u64(),
        Some(state_hash(&leader.state))
    );
    for stop in [3, 9, 17] {
        let mut state = State::default();
        let prefix = leader.proposals.iter().filter(|(index, _)| index.0 <= stop);
        steward_statemachine::fold(&mut state, prefix.map(|(index, p)| (*index, p)));
        let (_, out) = steward(
            &["replay", "--json", "--until-index", &stop.to_string()],
            &[dir.path()],
        );
        let value = json(&out);
        assert_eq!(
            value["summary"]["state_hash"].as_u64(),
            Some(state_hash(&state))
        );
        assert_eq!(value["replay"]["last_index"].as_u64(), Some(stop));
    }
}

#[test]
fn until_time_stops_before_the_first_later_stamp() {
    let (dir, leader, _) = written_scenario();
    // The worker loss is stamped 03:12:00; the entries just before it are earlier.
    let (lost_index, lost) = leader
        .proposals
        .iter()
        .find(|(_, p)| p.stamp_ms == START_MS + 120_000)
        .unwrap();
    let before = leader
        .proposals
        .iter()
        .rev()
        .find(|(_, p)| p.stamp_ms < lost.stamp_ms)
        .unwrap()
        .0;
    for (time, expected) in [
        ("2026-11-23T03:11:59.999Z", before.0),
        ("2026-11-23T03:12:00Z", lost_index.0),
        ("1795403520000", lost_index.0),
        ("2026-11-23T05:12:00+02:00", lost_index.0),
    ] {
        let (_, out) = steward(&["replay", "--json", "--until-time", time], &[dir.path()]);
        let value = json(&out);
        assert_eq!(
            value["summary"]["last_applied"].as_u64(),
            Some(expected),
            "{time}"
        );
    }
}

#[test]
fn diff_of_identical_replicas_and_of_a_shorter_one() {
    let (dir_a, leader, _) = written_scenario();
    let dir_b = tempfile::tempdir().unwrap();
    leader.write(dir_b.path());
    let (code, out) = steward(&["diff"], &[dir_a.path(), dir_b.path()]);
    assert_eq!(code, 0);
    assert_snapshot("diff_identical", &out);
    let dir_c = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir_c.path(), WalOptions::default()).unwrap();
    wal.append(leader.records[..20].to_vec()).unwrap();
    let (code, out) = steward(&["diff"], &[dir_a.path(), dir_c.path()]);
    assert_eq!(code, 0);
    assert!(out.contains("identical up to index 20"), "{out}");
    assert!(out.contains("A is longer: 21..="), "{out}");
}

#[test]
fn diff_finds_a_planted_divergence() {
    let (dir_a, leader, _) = written_scenario();
    let planted = 17;
    let mut records = leader.records.clone();
    let (_, proposal) = &leader
        .proposals
        .iter()
        .find(|(i, _)| i.0 == planted)
        .unwrap();
    let mut changed = proposal.clone();
    changed.stamp_ms += 1;
    let payload = encode_proposal(&changed).unwrap();
    let original = &records[planted as usize - 1];
    records[planted as usize - 1] = Record::new(planted, original.term, 1, payload);
    let dir_b = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir_b.path(), WalOptions::default()).unwrap();
    wal.append(records).unwrap();
    let (code, out) = steward(&["diff"], &[dir_a.path(), dir_b.path()]);
    assert_eq!(code, 5);
    assert!(
        out.contains(&format!("records differ first at index {planted}:")),
        "{out}"
    );
    assert!(
        out.contains(&format!("states differ first after index {planted}:")),
        "{out}"
    );
    assert_snapshot("diff_planted", &out);
}

#[test]
fn data_directory_layout_is_accepted() {
    let root = tempfile::tempdir().unwrap();
    let (leader, _) = scenario();
    leader.write(&root.path().join("wal"));
    let (_, out) = steward(&["replay"], &[root.path()]);
    assert!(out.starts_with("wal:              $DIR/wal\n"), "{out}");
    assert!(out.contains("started from:     empty state"), "{out}");
}
