//! Snapshot tests for `steward log inspect | verify | dump | repair`: the text output of each
//! command on a known directory is compared with `tests/fixtures/log/*.txt` after the temporary
//! path is replaced by `$DIR`. Run with `STEWARD_UPDATE_SNAPSHOTS=1` to rewrite the fixtures,
//! then review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::Command;

use steward_log::{LogIndex, Record, Wal, WalOptions};

/// A log with 40 records in three 4 KiB segments and a vote.
fn sample_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let options = WalOptions {
        segment_bytes_max: 4096,
        ..WalOptions::default()
    };
    let (wal, _) = Wal::open(dir.path(), options).unwrap();
    for i in 1..=40u64 {
        let payload: Vec<u8> = (0..(100 + i as usize * 3))
            .map(|b| (b as u64 * i) as u8)
            .collect();
        wal.append(vec![Record::new(i, 1 + i / 15, (i % 3) as u8 + 1, payload)])
            .unwrap();
    }
    wal.save_vote(b"term 3 voted for node 2").unwrap();
    dir
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    paths.sort();
    paths
}

/// Runs `steward log ARGS… DIR` and returns (exit code, stdout with the path normalised).
fn steward_log(dir: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_steward"))
        .arg("log")
        .args(args)
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let normalised = stdout.replace(dir.to_str().unwrap(), "$DIR");
    (output.status.code().unwrap_or(-1), normalised)
}

fn assert_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/log")
        .join(format!("{name}.txt"));
    if std::env::var_os("STEWARD_UPDATE_SNAPSHOTS").is_some() {
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

fn flip_bit(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// Offset of record `index`'s frame, from `dump --json`.
fn record_offset(dir: &Path, index: u64) -> (PathBuf, u64) {
    let (_, out) = steward_log(
        dir,
        &[
            "dump",
            "--json",
            "--from",
            &index.to_string(),
            "--to",
            &index.to_string(),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    (
        dir.join(v["segment"].as_str().unwrap()),
        v["offset"].as_u64().unwrap(),
    )
}

#[test]
fn inspect_clean_log() {
    let dir = sample_log();
    let (code, out) = steward_log(dir.path(), &["inspect"]);
    assert_eq!(code, 0);
    assert_snapshot("inspect_clean", &out);
}

#[test]
fn verify_clean_log_exits_zero() {
    let dir = sample_log();
    let (code, out) = steward_log(dir.path(), &["verify"]);
    assert_eq!(code, 0);
    assert_snapshot("verify_clean", &out);
}

#[test]
fn dump_range_as_text_and_json() {
    let dir = sample_log();
    let (code, out) = steward_log(dir.path(), &["dump", "--from", "14", "--to", "18"]);
    assert_eq!(code, 0);
    assert_snapshot("dump_range", &out);
    let (code, out) = steward_log(dir.path(), &["dump", "--json", "--from", "39"]);
    assert_eq!(code, 0);
    assert_snapshot("dump_json", &out);
}

#[test]
fn verify_reports_torn_tail_separately() {
    let dir = sample_log();
    let (segment, offset) = record_offset(dir.path(), 40);
    flip_bit(&segment, offset + 40);
    let (code, out) = steward_log(dir.path(), &["verify"]);
    assert_eq!(code, 3);
    assert_snapshot("verify_torn", &out);
}

#[test]
fn verify_reports_corruption_with_file_and_offset_and_repair_fixes_it() {
    let dir = sample_log();
    let (segment, offset) = record_offset(dir.path(), 5);
    assert_eq!(segment, segments(dir.path())[0]);
    flip_bit(&segment, offset + 40);
    let (code, out) = steward_log(dir.path(), &["verify"]);
    assert_eq!(code, 4);
    assert_snapshot("verify_corrupt", &out);
    let (code, out) = steward_log(dir.path(), &["inspect"]);
    assert_eq!(code, 0);
    assert_snapshot("inspect_corrupt", &out);
    let (code, out) = steward_log(dir.path(), &["repair"]);
    assert_eq!(code, 0);
    assert_snapshot("repair_corrupt", &out);
    let (code, _) = steward_log(dir.path(), &["verify"]);
    assert_eq!(code, 0);
    let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(wal.last_index(), Some(LogIndex(4)));
}

#[test]
fn repair_of_clean_log_changes_nothing() {
    let dir = sample_log();
    let (code, out) = steward_log(dir.path(), &["repair"]);
    assert_eq!(code, 0);
    assert_snapshot("repair_clean", &out);
}

#[test]
fn missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let output = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["log", "verify"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("nope"), "{stderr}");
}
