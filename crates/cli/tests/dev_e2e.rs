//! End to end through the binary: `steward dev` on free loopback ports in a temporary working
//! directory, then `steward job …` and `steward cluster status` finding it through the
//! discovery file with no flags, `--output json` parsed back, documented exit codes, and a
//! restart (SIGINT, start again) that keeps the data.

// Tests fail loudly on any unexpected error; that is their job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");

/// A `steward dev` child process, killed if the test fails midway.
struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        // Already exited (the normal path) or killed now: either way nothing is left running.
        let _killed = self.0.kill();
        let _reaped = self.0.wait();
    }
}

fn start_dev(dir: &Path) -> Dev {
    let child = Command::new(STEWARD)
        .args([
            "dev",
            "--api-port-base",
            "0",
            "--raft-port-base",
            "0",
            "--test-mode",
            // Jobs must stay pending for this test; the worker tests run one.
            "--no-worker",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dev = Dev(child);
    wait_for_leader(dir);
    dev
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

fn wait_for_leader(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if dir.join(".steward/dev/cluster.json").exists() {
            let out = steward(dir, &["cluster", "status", "--output", "json"]);
            if out.status.success() && json(&out)["cluster"]["leader_id"].is_u64() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "steward dev did not elect a leader"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(mut dev: Dev) {
    let pid = nix::unistd::Pid::from_raw(dev.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while dev.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "steward dev ignored Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn dev_cluster_serves_the_job_cli_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dev = start_dev(dir.path());

    let out = steward(
        dir.path(),
        &[
            "job", "submit", "-o", "json", "--name", "hello", "--", "echo", "hi",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let submitted = json(&out);
    assert_eq!(submitted["duplicate"], false);
    let id = submitted["job"]["id"].as_u64().unwrap();
    let id_text = id.to_string();

    let out = steward(dir.path(), &["job", "status", &id_text, "--output", "json"]);
    let job = json(&out);
    assert_eq!(job["id"], id);
    assert_eq!(job["name"], "hello");
    assert_eq!(job["status"], "pending");
    assert_eq!(
        job["workflows"][0]["command"],
        serde_json::json!(["echo", "hi"])
    );

    let out = steward(dir.path(), &["job", "list", "-o", "json"]);
    let ids: Vec<u64> = json(&out)["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![id]);

    // The same idempotency key twice: one job.
    let keyed = [
        "job",
        "submit",
        "-o",
        "json",
        "--idempotency-key",
        "k1",
        "--",
        "true",
    ];
    let first = json(&steward(dir.path(), &keyed));
    let second = json(&steward(dir.path(), &keyed));
    assert_eq!(first["job"]["id"], second["job"]["id"]);
    assert_eq!(second["duplicate"], true);
    // Same key, another body: conflict, exit 4.
    let out = steward(
        dir.path(),
        &["job", "submit", "--idempotency-key", "k1", "--", "false"],
    );
    assert_eq!(out.status.code(), Some(4));

    // Bad input: exit 2 naming the field; unknown job: exit 3.
    let out = steward(
        dir.path(),
        &["job", "submit", "-o", "json", "--cores", "0", "--", "x"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json(&out)["error"]["field"], "workflows[0].cores");
    assert_eq!(
        steward(dir.path(), &["job", "status", "424242"])
            .status
            .code(),
        Some(3)
    );

    // Cancel, then wait: the job ended cancelled, so `wait` exits 5.
    let out = steward(dir.path(), &["job", "cancel", &id_text, "-o", "json"]);
    assert_eq!(json(&out)["outcome"], "cancelled");
    let out = steward(dir.path(), &["job", "wait", &id_text, "--timeout", "10s"]);
    assert_eq!(out.status.code(), Some(5));
    let out = steward(dir.path(), &["job", "history", &id_text, "-o", "json"]);
    let kinds: Vec<String> = json(&out)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains(&"cancel_requested".to_owned()), "{kinds:?}");

    // Restart with the same data: the jobs are still there.
    stop(dev);
    let _dev = start_dev(dir.path());
    let out = steward(dir.path(), &["job", "status", &id_text, "-o", "json"]);
    assert!(
        out.status.success(),
        "{:?}: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["status"], "cancelled");
    let out = steward(dir.path(), &["cluster", "status", "-o", "json"]);
    assert_eq!(json(&out)["nodes"].as_array().unwrap().len(), 3);
}
