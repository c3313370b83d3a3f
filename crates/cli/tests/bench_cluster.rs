//! Smoke test of `steward bench cluster --quick` (about a minute): both systems start, take the
//! load at every client count, go through a leader kill and a follower restart, and produce
//! numbers, as JSON and Markdown. It asserts no speed:
//! timings belong to the benchmark's own report, not to the test suite.
//!
//! It needs etcd 3.4 on the PATH, which `scripts/install-deps.sh` (run by CI and by the
//! README's test command) installs through `scripts/install-bench-deps.sh`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const CLIENT_COUNTS: [u64; 4] = [1, 16, 64, 256];

fn etcd_on_path() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join("etcd").is_file())
}

fn number(value: &Value, field: &str) -> f64 {
    value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("`{field}` is not a number in {value}"))
}

#[test]
fn quick_run_measures_both_systems_at_every_client_count() {
    assert!(
        etcd_on_path(),
        "etcd is not on the PATH: run ./scripts/install-bench-deps.sh (the README's set-up \
         command ./scripts/install-deps.sh does)"
    );
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let json = dir.path().join("report.json");
    let markdown = dir.path().join("report.md");
    let output = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["bench", "cluster", "--quick", "--dir"])
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&markdown)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench cluster failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["setting"]["quick"], true);
    let points = report["points"].as_array().unwrap();
    for system in ["steward", "etcd"] {
        for clients in CLIENT_COUNTS {
            let point = points
                .iter()
                .find(|p| p["system"] == system && p["clients"] == clients)
                .unwrap_or_else(|| panic!("no {system} point at {clients} clients"));
            assert!(number(point, "writes") > 0.0, "{point}");
            assert!(number(point, "writes_per_second") > 0.0, "{point}");
            assert!(number(point, "p50_ms") > 0.0, "{point}");
            assert!(
                number(point, "p99_ms") >= number(point, "p50_ms"),
                "{point}"
            );
            assert!(
                number(point, "server_cpu_seconds_per_1000") > 0.0,
                "{point}"
            );
        }
    }
    for system in ["steward", "etcd"] {
        let failover = report["failovers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["system"] == system)
            .unwrap_or_else(|| panic!("no {system} failover"));
        let trials = failover["trials"].as_array().unwrap();
        assert_eq!(trials.len(), 1, "{failover}");
        assert!(number(&trials[0], "writes_before") > 0.0, "{failover}");
        assert!(number(&trials[0], "errors") >= 0.0, "{failover}");
        let cases: Vec<&Value> = report["recoveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["system"] == system)
            .collect();
        // steward: without and with a snapshot; etcd: one case.
        assert_eq!(cases.len(), if system == "steward" { 2 } else { 1 });
        for case in cases {
            assert!(number(case, "writes") > 0.0, "{case}");
            assert!(number(case, "median_restart_ms") > 0.0, "{case}");
            assert!(number(case, "data_bytes") > 0.0, "{case}");
        }
    }
    let verdicts = report["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 4, "{verdicts:?}");
    assert!(
        verdicts[..2].iter().all(|v| v["met"].is_boolean()),
        "the throughput and latency targets have their inputs: {verdicts:?}"
    );
    assert!(
        verdicts[3]["met"].is_null(),
        "a quick run's small log cannot claim the restart target: {verdicts:?}"
    );
    assert_eq!(std::fs::read_to_string(&markdown).unwrap(), stdout);
    assert!(stdout.contains("| 256 | etcd |"), "{stdout}");
    assert!(
        !Path::new(report["setting"]["dir"].as_str().unwrap()).exists(),
        "the run directory is removed"
    );
}
