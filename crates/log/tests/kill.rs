//! Real-process crash test: a child process (this test binary re-invoked with an environment
//! variable) appends with `SyncPolicy::Always` from several threads and prints every
//! acknowledged index; the parent SIGKILLs it at a random moment, reopens the log and checks
//! that every acknowledged record is present and intact. Several rounds on the same directory,
//! driven by one seed (printed; set `STEWARD_LOG_KILL_SEED` to replay the same kill delays).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use steward_log::{LogIndex, Record, Wal, WalOptions};

const CHILD_DIR_ENV: &str = "STEWARD_LOG_KILL_CHILD_DIR";
const SEED_ENV: &str = "STEWARD_LOG_KILL_SEED";
const ROUNDS: usize = 6;
const CHILD_THREADS: u64 = 4;
/// The child stops by itself after this long, in case the parent died.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

fn options() -> WalOptions {
    // Small segments so kills also land around segment rolls.
    WalOptions {
        segment_bytes_max: 64 << 10,
        ..WalOptions::default()
    }
}

/// The record the child writes at `index`: fully determined by the index.
fn expected(index: u64) -> Record {
    let len = 16 + (index % 200) as usize;
    let payload: Vec<u8> = (0..len).map(|j| (index * 7 + j as u64) as u8).collect();
    Record::new(index, 1 + index / 1000, (index % 3) as u8 + 1, payload)
}

/// The child's body; a no-op in a normal test run.
#[test]
fn child_appender() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let (wal, _) = Wal::open(Path::new(&dir), options()).unwrap();
    let wal = Arc::new(wal);
    let started = Instant::now();
    let handles: Vec<_> = (0..CHILD_THREADS)
        .map(|_| {
            let wal = Arc::clone(&wal);
            thread::spawn(move || {
                while started.elapsed() < CHILD_LIFETIME {
                    let ticket = wal.append_next(|next| vec![expected(next.0)]).unwrap();
                    let index = ticket.last_index().unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {index}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

fn seed() -> u64 {
    match std::env::var(SEED_ENV) {
        Ok(s) => s.parse().expect("STEWARD_LOG_KILL_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}

/// Runs the child until a random moment after its first acknowledgement, SIGKILLs it, and
/// returns the indices it acknowledged.
fn run_child_and_kill(dir: &Path, delay: Duration) -> Vec<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_appender",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let reader = {
        let acked = Arc::clone(&acked);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may put its "test child_appender ... " prefix on the first line.
                if let Some(index) = line
                    .split("ack ")
                    .nth(1)
                    .and_then(|s| s.trim().parse().ok())
                {
                    acked.lock().unwrap().push(index);
                    // Only the first send matters; later ones find the receiver gone or full.
                    let _ = first_tx.send(());
                }
            }
        })
    };
    first_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("child acknowledged nothing");
    thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    acked
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_record() {
    let seed = seed();
    println!("kill test seed {seed} (replay with {SEED_ENV}={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // A real disk, not tmpfs: fdatasync must mean something here.
    let dir = tempfile::tempdir().unwrap();
    let mut total_acked = 0;
    for round in 0..ROUNDS {
        let delay = Duration::from_millis(rng.gen_range(1..250));
        let acked = run_child_and_kill(dir.path(), delay);
        let (wal, report) = Wal::open(dir.path(), options())
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: reopen failed: {e}"));
        for &index in &acked {
            let got = wal.read(LogIndex(index)).unwrap();
            assert_eq!(
                got,
                Some(expected(index)),
                "seed {seed} round {round}: acknowledged record {index} lost or damaged"
            );
        }
        // Unacknowledged records that survived must be intact too, and the log contiguous.
        for (i, record) in wal.iter(0..u64::MAX).enumerate() {
            let record = record.unwrap();
            assert_eq!(record.index.0, i as u64 + 1);
            assert_eq!(
                record,
                expected(record.index.0),
                "seed {seed} round {round}"
            );
        }
        println!(
            "round {round}: killed after {delay:?}, {} acknowledged, log now ends at {:?}, torn tail {:?}",
            acked.len(),
            wal.last_index(),
            report.torn_tail.map(|t| t.bytes_dropped)
        );
        total_acked += acked.len();
    }
    assert!(total_acked > 0);
}
