//! `steward log dump DIR [--from N] [--to M] [--decode] [--json]`: one line per record with
//! index, term, kind, payload size and CRC, or with `--decode` the events inside (`decode`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use steward_log::{read_dir_records, DirRecord};

use super::{decode, progress};

/// Arguments of `steward log dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The log directory.
    dir: PathBuf,
    /// First index to print (inclusive).
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Last index to print (inclusive).
    #[arg(long, default_value_t = u64::MAX)]
    to: u64,
    /// JSON lines instead of text.
    #[arg(long)]
    json: bool,
    /// Decode payloads: one line per event (proposals), blank and membership entries.
    #[arg(long)]
    decode: bool,
}

#[derive(Serialize)]
struct JsonRecord<'a> {
    index: u64,
    term: u64,
    kind: u8,
    size: usize,
    crc: u32,
    segment: &'a str,
    offset: u64,
}

/// Prints the records of `args.dir` in range.
pub fn run(args: &DumpArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let end = args.to.saturating_add(1);
    let mut records = read_dir_records(&args.dir, args.from..end)
        .with_context(|| format!("cannot read log directory {}", args.dir.display()))?;
    let bar = progress::bar(records.bytes_total(), "dumping");
    if args.decode && !args.json {
        decode::write_header(out)?;
    } else if !args.json {
        writeln!(
            out,
            "{:>12} {:>8} {:>4} {:>10}  {:<10}  segment:offset",
            "index", "term", "kind", "size", "crc"
        )?;
    }
    while let Some(record) = records.next() {
        let record = record?;
        if args.decode {
            decode::write_record(&record, args.json, out)?;
        } else {
            write_record(&record, args.json, out)?;
        }
        bar.set_position(records.bytes_done());
    }
    bar.finish_and_clear();
    Ok(())
}

fn write_record(r: &DirRecord, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if json {
        let line = JsonRecord {
            index: r.index.0,
            term: r.term,
            kind: r.kind,
            size: r.payload.len(),
            crc: r.crc,
            segment: &r.segment,
            offset: r.offset,
        };
        serde_json::to_writer(&mut *out, &line)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:>12} {:>8} {:>4} {:>10}  0x{:08x}  {}:{}",
            r.index,
            r.term,
            r.kind,
            r.payload.len(),
            r.crc,
            r.segment,
            r.offset
        )?;
    }
    Ok(())
}
