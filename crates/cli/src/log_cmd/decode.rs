//! What a WAL record means, and `steward log dump --decode`: kind 1 records are proposals
//! (decoded with `steward_statemachine::decode_proposal`), kind 2 blanks, kind 3 memberships
//! (decoded by `steward-node`, which owns that encoding).
//!
//! A payload that does not decode is shown as such, never fatal: the node skips it the same way.
//! Nothing here folds events (see `replay`).

use std::io::Write;

use serde::Serialize;
use steward_log::DirRecord;
use steward_node::raft::log_store::{
    describe_membership, KIND_BLANK, KIND_MEMBERSHIP, KIND_PROPOSAL,
};
use steward_statemachine::{decode_proposal, Event, Proposal};

use super::replay_time::format_ms;

/// A record's meaning.
#[derive(Debug)]
pub(super) enum Decoded {
    /// A stamped proposal.
    Proposal(Proposal),
    /// A leader's no-op entry.
    Blank,
    /// A membership change, in one line.
    Membership(String),
    /// A payload that does not decode, or an unknown kind.
    Undecodable(String),
}

/// Decodes one record.
pub(super) fn decode(record: &DirRecord) -> Decoded {
    match record.kind {
        KIND_PROPOSAL => match decode_proposal(&record.payload) {
            Ok(proposal) => Decoded::Proposal(proposal),
            Err(e) => Decoded::Undecodable(format!("proposal: {e}")),
        },
        KIND_BLANK => Decoded::Blank,
        KIND_MEMBERSHIP => match describe_membership(&record.payload) {
            Ok(line) => Decoded::Membership(line),
            Err(e) => Decoded::Undecodable(format!(
                "{e} ({} bytes, membership change)",
                record.payload.len()
            )),
        },
        other => Decoded::Undecodable(format!(
            "unknown kind {other} ({} bytes)",
            record.payload.len()
        )),
    }
}

/// One JSON line of `dump --decode --json`.
#[derive(Serialize)]
struct JsonEntry<'a> {
    index: u64,
    term: u64,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stamp_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<&'a [Event]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    membership: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// The header of the text form.
pub(super) fn write_header(out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "{:>12} {:>8}  {:<24}  event", "index", "term", "time")
}

/// Writes one record: one text line per event (blank and membership records one line each), or
/// one JSON line per record.
pub(super) fn write_record(
    record: &DirRecord,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let decoded = decode(record);
    if json {
        let mut entry = JsonEntry {
            index: record.index.0,
            term: record.term,
            kind: "proposal",
            stamp_ms: None,
            events: None,
            membership: None,
            error: None,
        };
        match &decoded {
            Decoded::Proposal(proposal) => {
                entry.stamp_ms = Some(proposal.stamp_ms);
                entry.events = Some(&proposal.events);
            }
            Decoded::Blank => entry.kind = "blank",
            Decoded::Membership(line) => {
                entry.kind = "membership";
                entry.membership = Some(line);
            }
            Decoded::Undecodable(error) => {
                entry.kind = "undecodable";
                entry.error = Some(error);
            }
        }
        serde_json::to_writer(&mut *out, &entry)?;
        writeln!(out)?;
        return Ok(());
    }
    let (index, term) = (record.index.0, record.term);
    let prefix = |time: &str| format!("{index:>12} {term:>8}  {time:<24}");
    match decoded {
        Decoded::Proposal(proposal) => {
            let time = format_ms(proposal.stamp_ms);
            if proposal.events.is_empty() {
                writeln!(out, "{}  (no events)", prefix(&time))?;
            }
            for event in &proposal.events {
                writeln!(out, "{}  {event}", prefix(&time))?;
            }
        }
        Decoded::Blank => writeln!(out, "{}  blank", prefix("-"))?,
        Decoded::Membership(line) => writeln!(out, "{}  membership {line}", prefix("-"))?,
        Decoded::Undecodable(error) => writeln!(out, "{}  undecodable: {error}", prefix("-"))?,
    }
    Ok(())
}
