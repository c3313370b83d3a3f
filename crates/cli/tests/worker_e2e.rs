//! Workers through the binary: `steward dev` with its local worker runs a real command end to
//! end (`job submit`, `job wait`, `job logs`, `worker list`); `steward worker --cores 0`
//! refuses; and a worker process SIGKILLed mid-run is declared lost (its lease runs out) and its
//! workflow runs again on another worker, attempts and fences in the timeline.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");

/// A child process, killed (SIGKILL) and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // Already exited or killed now: either way nothing is left running.
        let _killed = self.0.kill();
        let _reaped = self.0.wait();
    }
}

fn spawn(dir: &Path, args: &[&str]) -> Proc {
    let child = Command::new(STEWARD)
        .args(args)
        .current_dir(dir)
        .env_remove("STEWARD_SERVER")
        .env("STEWARD_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc(child)
}

fn steward(dir: &Path, args: &[&str]) -> Output {
    Command::new(STEWARD)
        .args(args)
        .current_dir(dir)
        .env_remove("STEWARD_SERVER")
        .output()
        .unwrap()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}): stdout {} stderr {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn start_dev(dir: &Path, extra: &[&str]) -> Proc {
    let mut args = vec!["dev", "--api-port-base", "0", "--raft-port-base", "0"];
    args.extend_from_slice(extra);
    let dev = spawn(dir, &args);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if dir.join(".steward/dev/cluster.json").exists() {
            let out = steward(dir, &["cluster", "status", "--output", "json"]);
            if out.status.success() && json(&out)["cluster"]["leader_id"].is_u64() {
                return dev;
            }
        }
        assert!(Instant::now() < deadline, "no leader within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn api_addrs(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(".steward/dev/cluster.json")).unwrap();
    let discovery: Value = serde_json::from_str(&text).unwrap();
    discovery["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["api_addr"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(",")
}

fn submit(dir: &Path, command: &[&str]) -> String {
    let mut args = vec!["job", "submit", "-o", "json", "--"];
    args.extend_from_slice(command);
    let out = steward(dir, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)["job"]["id"].as_u64().unwrap().to_string()
}

#[test]
fn cores_zero_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = steward(
        dir.path(),
        &["worker", "--join", "127.0.0.1:1", "--cores", "0"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 1 core"), "{stderr}");
}

#[test]
fn dev_runs_a_real_command_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let _dev = start_dev(dir.path(), &["--nodes", "1"]);
    let id = submit(dir.path(), &["echo", "hello"]);
    let out = steward(dir.path(), &["job", "wait", &id, "--timeout", "30s"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = steward(dir.path(), &["job", "logs", &id]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hello\n") && text.contains("exit 0"),
        "{text}"
    );

    let out = steward(dir.path(), &["worker", "list", "-o", "json"]);
    let workers = json(&out)["workers"].as_array().unwrap().clone();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0]["id"], 100);
    assert_eq!(workers[0]["status"], "live");
}

#[test]
fn a_killed_worker_is_lost_and_its_workflow_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let _dev = start_dev(dir.path(), &["--nodes", "1", "--no-worker"]);
    let join = api_addrs(dir.path());
    let worker = |id: &str| {
        let args = [
            "worker",
            "--join",
            &join,
            "--cores",
            "1",
            "--id",
            id,
            "--lease-ms",
            "1000",
        ];
        spawn(dir.path(), &args)
    };
    let mut first = worker("101");
    let id = submit(dir.path(), &["sh", "-c", "sleep 2; echo done"]);
    // Wait until worker 101 runs it, then SIGKILL that worker.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = json(&steward(dir.path(), &["job", "status", &id, "-o", "json"]));
        if job["workflows"][0]["status"] == "running" {
            assert_eq!(job["workflows"][0]["worker"], 101);
            break;
        }
        assert!(Instant::now() < deadline, "never started: {job}");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.0.kill().unwrap();
    let _second = worker("102");
    let out = steward(dir.path(), &["job", "wait", &id, "--timeout", "30s"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let job = json(&steward(dir.path(), &["job", "status", &id, "-o", "json"]));
    assert_eq!(job["workflows"][0]["worker"], 102, "{job}");
    assert_eq!(job["workflows"][0]["attempt"], 2, "{job}");
    let history = json(&steward(dir.path(), &["job", "history", &id, "-o", "json"]));
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let dispatches = kinds.iter().filter(|k| **k == "dispatched").count();
    assert_eq!(dispatches, 2, "{history:#}");
    // Each dispatch line names its attempt, worker and the fence token it carried.
    let dispatched: Vec<(u64, u64, u64)> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "dispatched")
        .map(|e| {
            let d = &e["detail"];
            (
                d["attempt"].as_u64().unwrap(),
                d["worker"].as_u64().unwrap(),
                d["fence_token"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(dispatched[0].0, 1, "{history:#}");
    assert_eq!(dispatched[0].1, 101, "{history:#}");
    assert_eq!(dispatched[1].0, 2, "{history:#}");
    assert_eq!(dispatched[1].1, 102, "{history:#}");
    assert!(dispatched[1].2 >= dispatched[0].2, "{history:#}");
    let workers = json(&steward(dir.path(), &["worker", "list", "-o", "json"]));
    let lost = workers["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == 101)
        .unwrap()
        .clone();
    assert_eq!(lost["status"], "lost", "{workers:#}");
}

#[test]
fn a_restarted_worker_loses_its_old_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let _dev = start_dev(dir.path(), &["--nodes", "1", "--no-worker"]);
    let join = api_addrs(dir.path());
    // A long lease: only the re-registration can declare the old attempt lost.
    let args = [
        "worker",
        "--join",
        &join,
        "--cores",
        "1",
        "--id",
        "201",
        "--lease-ms",
        "60000",
    ];
    let mut first = spawn(dir.path(), &args);
    let id = submit(dir.path(), &["sh", "-c", "sleep 1; echo again"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while json(&steward(dir.path(), &["job", "status", &id, "-o", "json"]))["workflows"][0]
        ["status"]
        != "running"
    {
        assert!(Instant::now() < deadline, "never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.0.kill().unwrap();
    let _restarted = spawn(dir.path(), &args);
    let out = steward(dir.path(), &["job", "wait", &id, "--timeout", "30s"]);
    assert_eq!(out.status.code(), Some(0));
    let job = json(&steward(dir.path(), &["job", "status", &id, "-o", "json"]));
    assert_eq!(job["workflows"][0]["attempt"], 2, "{job}");
    assert_eq!(job["workflows"][0]["worker"], 201, "{job}");
}
