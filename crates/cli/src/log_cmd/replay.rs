//! `steward log replay DIR [--until-index N | --until-time T] [--job ID] [--json]`: folds a
//! replica's log offline and prints the state summary at that point, or one job's timeline.
//!
//! The fold is `steward_statemachine`'s own (`replay_source::Folder`), so the state hash printed
//! is the one the node computes for the same prefix (except with `--job`, which keeps full
//! timelines). A second thread reads, decodes and prepares the records while the first folds
//! them, as a node's restart does (ADR 0023). Read-only.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use steward_statemachine::{JobId, JobView, LogIndex, StopAt, Summary};

use super::replay_source::{start, FoldStats, Folder, Ready, Source, Start};
use super::replay_time::{format_ms, parse_time};

/// Arguments of `steward log replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A node data directory (with `wal/` and `snapshots/`) or a WAL directory.
    dir: PathBuf,
    /// Stop after this log index (inclusive).
    #[arg(long, conflicts_with = "until_time")]
    until_index: Option<u64>,
    /// Stop before the first proposal stamped after this time: RFC 3339
    /// (`2026-11-23T03:12:00Z`) or unix milliseconds.
    #[arg(long, value_parser = parse_time)]
    until_time: Option<u64>,
    /// Print this job's timeline instead of the summary.
    #[arg(long)]
    job: Option<u64>,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// How the replay went: where it started and stopped.
#[derive(Debug, Serialize)]
struct Provenance {
    wal_dir: PathBuf,
    snapshot: Option<PathBuf>,
    start_index: u64,
    last_index: u64,
    proposals: u64,
    events: u64,
    blanks: u64,
    memberships: u64,
    undecodable: u64,
}

/// Runs the replay and prints the answer.
pub fn run(args: &ReplayArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let source = Source::locate(&args.dir)?;
    let mut records = source.records()?;
    let first = match records.peek() {
        Some(Ok(record)) => Some(record.index.0),
        _ => None,
    };
    let start = start(&source, first, args.job.is_some())?;
    let stop = match (args.until_index, args.until_time) {
        (Some(index), _) => StopAt::Index(LogIndex(index)),
        (None, Some(time_ms)) => StopAt::Time(time_ms),
        (None, None) => StopAt::End,
    };
    if let StopAt::Index(LogIndex(index)) = stop {
        if index < start.index {
            anyhow::bail!(
                "index {index} is before the oldest history available: the WAL starts after \
                 the snapshot at index {}",
                start.index
            );
        }
    }
    let (snapshot, start_index) = (start.snapshot.clone(), start.index);
    let folder = fold(&source, start, stop, &mut records)?;
    let stats = folder.stats();
    let provenance = Provenance {
        wal_dir: source.wal_dir.clone(),
        snapshot,
        start_index,
        last_index: stats.last_index,
        proposals: stats.proposals,
        events: stats.events,
        blanks: stats.blanks,
        memberships: stats.memberships,
        undecodable: stats.undecodable,
    };
    match args.job {
        Some(job) => write_job(&folder, JobId(job), &provenance, args.json, out),
        None => write_summary(&folder, &provenance, args.json, out),
    }
}

fn fold(
    source: &Source,
    start: Start,
    stop: StopAt,
    records: &mut (impl Iterator<Item = steward_log::Result<steward_log::DirRecord>> + Send),
) -> anyhow::Result<Folder> {
    let start_index = start.index;
    let mut folder = Folder::new(start, stop);
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel(READ_AHEAD_ENTRIES);
        std::thread::Builder::new()
            .name("wal-replay".to_owned())
            .spawn_scoped(scope, move || read_ahead(records, start_index, &sender))
            .context("cannot start the thread that reads the log")?;
        // Leaving this closure drops `receiver`, which stops the reader at its next send.
        for read in receiver {
            let (index, ready) =
                read.with_context(|| format!("cannot read {}", source.wal_dir.display()))?;
            if !folder.feed_ready(index, ready) {
                break;
            }
        }
        anyhow::Ok(())
    })?;
    Ok(folder)
}

/// Entries read and made ready ahead of the fold: enough to keep both threads busy, few enough
/// that a stop point early in a long log wastes little.
const READ_AHEAD_ENTRIES: usize = 256;

/// Reads, decodes and prepares the records after `start_index` and hands them over in order,
/// so that the folding thread only applies (as a node's restart does, ADR 0023).
fn read_ahead(
    records: &mut (impl Iterator<Item = steward_log::Result<steward_log::DirRecord>> + Send),
    start_index: u64,
    sender: &mpsc::SyncSender<steward_log::Result<(u64, Ready)>>,
) {
    for record in records {
        let read = match record {
            Ok(record) if record.index.0 <= start_index => continue,
            Ok(record) => Ok((record.index.0, Ready::of(&record))),
            Err(e) => Err(e),
        };
        if sender.send(read).is_err() {
            return;
        }
    }
}

fn write_provenance(p: &Provenance, stats: &FoldStats, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "wal:              {}", p.wal_dir.display())?;
    match &p.snapshot {
        Some(path) => writeln!(
            out,
            "started from:     snapshot {} (index {})",
            path.display(),
            p.start_index
        )?,
        None => writeln!(out, "started from:     empty state")?,
    }
    writeln!(
        out,
        "folded:           through index {} ({} proposals, {} events, {} blank, {} membership)",
        p.last_index, p.proposals, p.events, p.blanks, p.memberships
    )?;
    if let Some(first) = stats.first_undecodable {
        writeln!(
            out,
            "undecodable:      {} entries skipped, the first at index {first}",
            p.undecodable
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    replay: &'a Provenance,
    summary: &'a Summary,
}

fn write_summary(
    folder: &Folder,
    provenance: &Provenance,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let summary = folder.replayer().summary();
    if json {
        serde_json::to_writer(
            &mut *out,
            &JsonSummary {
                replay: provenance,
                summary: &summary,
            },
        )?;
        writeln!(out)?;
        return Ok(());
    }
    write_provenance(provenance, &folder.stats(), out)?;
    writeln!(
        out,
        "last applied:     index {} at {}",
        summary.last_applied,
        format_ms(summary.last_stamp_ms)
    )?;
    let leader = summary
        .leader
        .map_or_else(|| "none".to_owned(), |node| format!("node {node}"));
    writeln!(out, "term:             {}", summary.term)?;
    writeln!(out, "leader:           {leader}")?;
    writeln!(out, "fence:            {}", summary.fence_token)?;
    writeln!(out, "jobs:             {}", summary.jobs_total)?;
    for (status, count) in &summary.jobs_by_status {
        writeln!(out, "  {:<16}{count}", status.to_string())?;
    }
    writeln!(
        out,
        "idempotency keys: {} live (bound {})",
        summary.live_idempotency_keys, summary.idempotency_live_keys_max
    )?;
    let workers: u64 = summary.workers_by_status.values().sum();
    writeln!(out, "workers:          {workers}")?;
    for (status, count) in &summary.workers_by_status {
        writeln!(out, "  {:<16}{count}", status.to_string())?;
    }
    writeln!(out, "state hash:       0x{:016x}", summary.state_hash)?;
    Ok(())
}

#[derive(Serialize)]
struct JsonTimelineEntry {
    index: u64,
    at_ms: u64,
    at: String,
    /// Unknown for entries the snapshot the replay started from already covered.
    fence_token: Option<u64>,
    what: String,
}

#[derive(Serialize)]
struct JsonJob<'a> {
    replay: &'a Provenance,
    job: &'a JobView,
    timeline: Vec<JsonTimelineEntry>,
}

fn write_job(
    folder: &Folder,
    job: JobId,
    provenance: &Provenance,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let state = folder.replayer().state();
    let (Some(view), Some(timeline)) = (state.job_view(job), state.timeline(job)) else {
        anyhow::bail!(
            "job {job} does not exist at index {}",
            provenance.last_index
        );
    };
    let entries: Vec<JsonTimelineEntry> = timeline
        .iter()
        .map(|entry| JsonTimelineEntry {
            index: entry.index.0,
            at_ms: entry.at_ms,
            at: format_ms(entry.at_ms),
            fence_token: (provenance.snapshot.is_none() || entry.index.0 > provenance.start_index)
                .then(|| folder.replayer().fence_at(entry.index).0),
            what: entry.what.to_string(),
        })
        .collect();
    if json {
        serde_json::to_writer(
            &mut *out,
            &JsonJob {
                replay: provenance,
                job: &view,
                timeline: entries,
            },
        )?;
        writeln!(out)?;
        return Ok(());
    }
    write_provenance(provenance, &folder.stats(), out)?;
    write_job_text(&view, &entries, provenance.snapshot.is_some(), out)
}

fn write_job_text(
    view: &JobView,
    entries: &[JsonTimelineEntry],
    from_snapshot: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(out, "job {} {:?}: {}", view.id, view.name, view.status)?;
    writeln!(out, "  submitted:      {}", format_ms(view.submitted_at_ms))?;
    if let Some(finished) = view.finished_at_ms {
        writeln!(out, "  finished:       {}", format_ms(finished))?;
    }
    if let Some(key) = &view.idempotency_key {
        writeln!(out, "  idempotency key: {key}")?;
    }
    writeln!(
        out,
        "  timeout:        {} ms + {} ms extensions; retries used {}",
        view.timeout_ms, view.total_extensions_granted_ms, view.retries_used
    )?;
    for workflow in &view.workflows {
        let worker = workflow
            .worker
            .map_or_else(|| "-".to_owned(), |worker| worker.to_string());
        writeln!(
            out,
            "  workflow {} {:?}: {} attempt {} worker {worker} progress {} retries {}",
            workflow.id,
            workflow.name,
            workflow.status,
            workflow.attempt,
            workflow.progress,
            workflow.retries_used
        )?;
    }
    if view.compacted || (from_snapshot && entries.is_empty()) {
        writeln!(out, "  (timeline compacted in the snapshot)")?;
    }
    writeln!(out, "{:>12}  {:<24}  {:>5}  what", "index", "time", "fence")?;
    for entry in entries {
        let fence = entry
            .fence_token
            .map_or_else(|| "-".to_owned(), |fence| fence.to_string());
        writeln!(
            out,
            "{:>12}  {:<24}  {fence:>5}  {}",
            entry.index, entry.at, entry.what
        )?;
    }
    Ok(())
}
