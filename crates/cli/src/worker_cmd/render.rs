//! Text output of `steward worker list` and `steward job logs`.
//!
//! It deliberately formats only; JSON output (`-o json`) prints the wire types unchanged.

use std::fmt::Write as _;

use steward_node::worker::protocol::{LogSource, LogsResponse, WorkerListResponse};

/// One line per worker.
pub fn workers(answer: &WorkerListResponse) -> String {
    let mut out =
        String::from("ID                    STATUS    CORES   SEEN      RUNNING  ADDRESS\n");
    for w in &answer.workers {
        let seen = w.last_seen_ms_ago.map_or_else(
            || "-".to_owned(),
            |ms| format!("{:.1}s", ms as f64 / 1000.0),
        );
        let running: Vec<String> = w
            .running
            .iter()
            .map(|t| format!("{}/{}#{}", t.job.0, t.workflow.0, t.attempt.0))
            .collect();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{:<21} {:<9} {:>3}/{:<3} {:<9} {:<8} {}",
            w.id,
            w.status.to_string(),
            w.cores_used,
            w.cores,
            seen,
            if running.is_empty() {
                "-".to_owned()
            } else {
                running.join(",")
            },
            w.address
        );
    }
    if answer.workers.is_empty() {
        out.push_str("(no workers)\n");
    }
    out
}

/// Each attempt's header, then its output tail.
pub fn logs(answer: &LogsResponse) -> String {
    let mut out = String::new();
    for log in &answer.logs {
        let end = match (log.running, log.exit_code, log.signal) {
            (true, _, _) => "running".to_owned(),
            (false, Some(code), _) => format!("exit {code}"),
            (false, None, Some(signal)) => format!("signal {signal}"),
            (false, None, None) => "did not start".to_owned(),
        };
        let source = match log.source {
            LogSource::Worker => "",
            LogSource::Replicated => " (replicated tail: the worker did not answer)",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "== {} (workflow {}, attempt {}) on worker {}: {}, {} ms =={source}",
            log.workflow_name,
            log.target.workflow.0,
            log.target.attempt.0,
            log.worker,
            end,
            log.duration_ms
        );
        out.push_str(&log.tail);
        if !log.tail.is_empty() && !log.tail.ends_with('\n') {
            out.push('\n');
        }
    }
    if answer.logs.is_empty() {
        out.push_str(
            "(no output: the workflows have not run, or their workers are gone and their exit \
             records were dropped)\n",
        );
    }
    out
}
