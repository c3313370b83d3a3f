//! Binary formats of the state machine: the proposal payload in WAL records of kind 1, the
//! snapshot, and the hashes computed over canonical encodings (state hash, body hash).
//!
//! Layout of both formats (all integers little-endian):
//!
//! ```text
//! proposal: [magic "STEV"][schema version u16][bincode 2 standard: Proposal]
//! snapshot: [magic "STSN"][format version u16][bincode 2 standard: Records]
//! ```
//!
//! Older versions still read: schema 1 (the same body: version 2 only appended the
//! `WorkflowExited` variant). Snapshot formats 1 and 2 held unpacked job records and are refused
//! (`Error::UnsupportedVersion`, which names the version found).
//!
//! `Records` is the globals, then jobs in id order, idempotency entries in key-map order (a
//! hash of the key, then the key; ADR 0017), workers in id order; the state hash is FNV-1a 64 over exactly the snapshot body, so two states with the
//! same records hash alike on every machine. See `docs/adr/0004-event-schema.md`. This module
//! does no I/O: the caller frames, checksums and stores the bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::state::KeyMap;
use crate::{
    BodyHash, Error, Frozen, Globals, IdempotencyEntry, Job, JobId, JobSpec, Proposal, Result,
    State, Worker, WorkerId, WorkflowId, WorkflowOutput,
};

/// Magic at the start of every encoded proposal.
pub const PROPOSAL_MAGIC: [u8; 4] = *b"STEV";
/// Event schema version written by this build; it also reads every version from
/// [`EVENT_SCHEMA_VERSION_OLDEST`].
pub const EVENT_SCHEMA_VERSION: u16 = 2;
/// Oldest event schema version this build reads.
pub const EVENT_SCHEMA_VERSION_OLDEST: u16 = 1;
/// Magic at the start of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"STSN";
/// Snapshot format version written by this build; it reads only this version. Version 3 packs
/// each job's spec and timeline; versions 1 and 2 (unpacked jobs) are refused with
/// `UnsupportedVersion`.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 3;
/// Oldest snapshot format version this build reads.
pub const SNAPSHOT_FORMAT_VERSION_OLDEST: u16 = 3;
/// Largest encoded proposal accepted by the decoder. Default: 64 MiB.
pub const PROPOSAL_BYTES_MAX: usize = 64 << 20;

const HEADER_BYTES: usize = 6;

/// Upper bound of bincode's decode accounting per encoded byte: the widest value we decode
/// from one byte is a varint `u64` (8 bytes in memory).
const CLAIM_BYTES_PER_BODY_BYTE: usize = 8;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a proposal for a WAL record of kind 1.
pub fn encode_proposal(proposal: &Proposal) -> Result<Vec<u8>> {
    let mut bytes = header(PROPOSAL_MAGIC, EVENT_SCHEMA_VERSION);
    let body =
        bincode::serde::encode_to_vec(proposal, config()).map_err(|source| Error::Encode {
            what: "proposal",
            source,
        })?;
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Decodes a proposal written by [`encode_proposal`]; refuses other magics, other versions,
/// oversized or trailing bytes.
pub fn decode_proposal(bytes: &[u8]) -> Result<Proposal> {
    if bytes.len() > PROPOSAL_BYTES_MAX {
        return Err(Error::TooLarge {
            what: "proposal",
            len: bytes.len(),
            max: PROPOSAL_BYTES_MAX,
        });
    }
    let versions = EVENT_SCHEMA_VERSION_OLDEST..=EVENT_SCHEMA_VERSION;
    let (_, body) = check_header(bytes, "proposal", PROPOSAL_MAGIC, versions)?;
    decode_exact(body, "proposal")
}

/// Encodes the state's records as a snapshot.
pub fn snapshot(state: &State) -> Result<Vec<u8>> {
    encode_snapshot(records_of(state))
}

/// Encodes frozen records as a snapshot: the same bytes [`snapshot`] gives for the state they
/// were frozen from.
pub fn snapshot_frozen(frozen: &Frozen) -> Result<Vec<u8>> {
    encode_snapshot(RecordsRef {
        globals: &frozen.globals,
        jobs: Values(&frozen.jobs),
        idempotency: KeyValues(&frozen.keys),
        workers: Values(&frozen.workers),
        outputs: Values(&frozen.outputs),
    })
}

fn encode_snapshot(records: RecordsRef<'_>) -> Result<Vec<u8>> {
    let mut bytes = header(SNAPSHOT_MAGIC, SNAPSHOT_FORMAT_VERSION);
    bincode::encode_into_std_write(records, &mut bytes, config()).map_err(|source| {
        Error::Encode {
            what: "snapshot",
            source,
        }
    })?;
    Ok(bytes)
}

/// Rebuilds a state from a snapshot written by [`snapshot`].
pub fn restore(bytes: &[u8]) -> Result<State> {
    let versions = SNAPSHOT_FORMAT_VERSION_OLDEST..=SNAPSHOT_FORMAT_VERSION;
    let (_, body) = check_header(bytes, "snapshot", SNAPSHOT_MAGIC, versions)?;
    let records: SharedRecords = decode_exact_borrowed(body, "snapshot")?;
    State::from_shared(
        records.globals,
        records.jobs,
        records.idempotency,
        records.workers,
        records.outputs,
    )
}

/// FNV-1a 64 over the snapshot body: equal on every machine for equal records.
pub fn state_hash(state: &State) -> u64 {
    let mut hasher = Fnv64(FNV_OFFSET_BASIS);
    // As in `fnv_of`: the writer never fails and every length is known.
    if let Err(error) = bincode::encode_into_writer(records_of(state), &mut hasher, config()) {
        panic!("invariant: canonical encoding failed: {error}");
    }
    hasher.0
}

/// FNV-1a 64 of the spec's canonical encoding; an idempotent resubmission must hash alike.
pub fn body_hash(spec: &JobSpec) -> BodyHash {
    BodyHash(fnv_of(spec))
}

impl State {
    /// [`snapshot`] as a method.
    pub fn snapshot(&self) -> Result<Vec<u8>> {
        snapshot(self)
    }

    /// [`restore`] as an associated function.
    pub fn restore(bytes: &[u8]) -> Result<State> {
        restore(bytes)
    }

    /// [`state_hash`] as a method.
    pub fn state_hash(&self) -> u64 {
        state_hash(self)
    }
}

fn header(magic: [u8; 4], version: u16) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(&magic);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes
}

/// Checks magic and version; returns the version found and the body.
fn check_header<'b>(
    bytes: &'b [u8],
    what: &'static str,
    magic: [u8; 4],
    versions: std::ops::RangeInclusive<u16>,
) -> Result<(u16, &'b [u8])> {
    if bytes.len() < HEADER_BYTES {
        return Err(Error::Truncated {
            what,
            len: bytes.len(),
        });
    }
    let (found_magic, rest) = bytes.split_at(4);
    if found_magic != magic {
        let mut found = [0u8; 4];
        found.copy_from_slice(found_magic);
        return Err(Error::BadMagic { what, found });
    }
    let (found_version, body) = rest.split_at(2);
    let found = u16::from_le_bytes([found_version[0], found_version[1]]);
    if !versions.contains(&found) {
        return Err(Error::UnsupportedVersion {
            what,
            found,
            supported: *versions.end(),
        });
    }
    Ok((found, body))
}

/// Decodes the whole body. bincode allocates a string's or byte vector's claimed length before
/// reading it, so a damaged length prefix could ask for exabytes and abort the process; a decode
/// limit makes such a claim a `LimitExceeded` error instead. bincode counts every decoded value
/// at its in-memory size (a one-byte varint `u64` counts 8), so a valid body claims at most
/// [`CLAIM_BYTES_PER_BODY_BYTE`] times its length; the limit is the smallest tier above that.
fn decode_exact<T: serde::de::DeserializeOwned>(body: &[u8], what: &'static str) -> Result<T> {
    let claim_max = body.len().saturating_mul(CLAIM_BYTES_PER_BODY_BYTE);
    let decoded = match claim_max {
        claim if claim <= 1 << 20 => decode_limited::<T, { 1 << 20 }>(body),
        claim if claim <= 1 << 24 => decode_limited::<T, { 1 << 24 }>(body),
        claim if claim <= 1 << 28 => decode_limited::<T, { 1 << 28 }>(body),
        claim if claim <= 1 << 32 => decode_limited::<T, { 1 << 32 }>(body),
        claim if claim <= 1 << 36 => decode_limited::<T, { 1 << 36 }>(body),
        _ => decode_limited::<T, { 1 << 40 }>(body),
    };
    let (value, read) = decoded.map_err(|source| Error::Decode { what, source })?;
    if read != body.len() {
        return Err(Error::TrailingBytes {
            what,
            offset: HEADER_BYTES + read,
        });
    }
    Ok(value)
}

fn decode_limited<T: serde::de::DeserializeOwned, const LIMIT: usize>(
    body: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(body, config().with_limit::<LIMIT>())
}

/// [`decode_exact`] for types with bincode's own borrowing decoder (the snapshot: each job is
/// one byte string read in place, see `state/job_codec.rs`).
fn decode_exact_borrowed<'b, T: bincode::BorrowDecode<'b, ()>>(
    body: &'b [u8],
    what: &'static str,
) -> Result<T> {
    let claim_max = body.len().saturating_mul(CLAIM_BYTES_PER_BODY_BYTE);
    let decoded = match claim_max {
        claim if claim <= 1 << 20 => decode_borrowed_limited::<T, { 1 << 20 }>(body),
        claim if claim <= 1 << 24 => decode_borrowed_limited::<T, { 1 << 24 }>(body),
        claim if claim <= 1 << 28 => decode_borrowed_limited::<T, { 1 << 28 }>(body),
        claim if claim <= 1 << 32 => decode_borrowed_limited::<T, { 1 << 32 }>(body),
        claim if claim <= 1 << 36 => decode_borrowed_limited::<T, { 1 << 36 }>(body),
        _ => decode_borrowed_limited::<T, { 1 << 40 }>(body),
    };
    let (value, read) = decoded.map_err(|source| Error::Decode { what, source })?;
    if read != body.len() {
        return Err(Error::TrailingBytes {
            what,
            offset: HEADER_BYTES + read,
        });
    }
    Ok(value)
}

fn decode_borrowed_limited<'b, T: bincode::BorrowDecode<'b, ()>, const LIMIT: usize>(
    body: &'b [u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    bincode::borrow_decode_from_slice(body, config().with_limit::<LIMIT>())
}

/// Encodes the values of a map as a sequence (a length, then each value), without cloning them.
struct Values<'a, K, V>(&'a BTreeMap<K, V>);

impl<K, V: bincode::Encode> bincode::Encode for Values<'_, K, V> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> std::result::Result<(), bincode::error::EncodeError> {
        (self.0.len() as u64).encode(encoder)?;
        self.0.values().try_for_each(|value| value.encode(encoder))
    }
}

/// [`Values`] of the idempotency entries, in key-map order.
struct KeyValues<'a>(&'a KeyMap);

impl bincode::Encode for KeyValues<'_> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> std::result::Result<(), bincode::error::EncodeError> {
        (self.0.len() as u64).encode(encoder)?;
        self.0.values().try_for_each(|value| value.encode(encoder))
    }
}

/// Twin of [`crate::Records`] that decodes each job straight into its shared allocation
/// (same bytes).
#[derive(bincode::BorrowDecode)]
struct SharedRecords {
    globals: Globals,
    jobs: Vec<Arc<Job>>,
    idempotency: Vec<IdempotencyEntry>,
    workers: Vec<Worker>,
    outputs: Vec<WorkflowOutput>,
}

/// Borrowed twin of [`crate::Records`]: encodes to the same bytes.
#[derive(bincode::Encode)]
struct RecordsRef<'a> {
    globals: &'a Globals,
    jobs: Values<'a, JobId, Arc<Job>>,
    idempotency: KeyValues<'a>,
    workers: Values<'a, WorkerId, Worker>,
    outputs: Values<'a, (JobId, WorkflowId), WorkflowOutput>,
}

fn records_of(state: &State) -> RecordsRef<'_> {
    RecordsRef {
        globals: &state.globals,
        jobs: Values(&state.jobs),
        idempotency: KeyValues(&state.keys),
        workers: Values(&state.workers),
        outputs: Values(&state.outputs),
    }
}

/// FNV-1a 64 as a bincode writer, so hashing needs no intermediate buffer.
struct Fnv64(u64);

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl bincode::enc::write::Writer for Fnv64 {
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), bincode::error::EncodeError> {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(FNV_PRIME);
        }
        Ok(())
    }
}

pub(crate) fn fnv_of<T: Serialize>(value: &T) -> u64 {
    let mut hasher = Fnv64(FNV_OFFSET_BASIS);
    // Our types derive Serialize, every sequence has a known length and the writer never
    // fails, so encoding cannot fail; if it ever did, that is a broken internal invariant.
    if let Err(error) = bincode::serde::encode_into_writer(value, &mut hasher, config()) {
        panic!("invariant: canonical encoding failed: {error}");
    }
    hasher.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, WorkerId};

    fn sample() -> Proposal {
        Proposal {
            stamp_ms: 1_700_000_000_000,
            events: vec![Event::WorkerRegistered {
                worker: WorkerId(7),
                cores: 4,
                address: "127.0.0.1:9000".into(),
            }],
        }
    }

    /// The key an entry shares with its slot and job is written inline, as a plain key was
    /// before it was shared: snapshots and the view keep their format.
    #[test]
    fn a_shared_key_is_encoded_as_the_key_itself() {
        let key = crate::IdempotencyKey::new("ci", "run-7");
        let entry = crate::IdempotencyEntry {
            key: std::sync::Arc::new(key.clone()),
            body_hash: crate::BodyHash(9),
            job: Some(crate::JobId(42_000)),
            reserved_at_ms: 5,
            committed_at_ms: Some(6),
            expires_at_ms: 7,
        };
        let fields = (&key, entry.body_hash, entry.job, 5u64, Some(6u64), 7u64);
        let native = bincode::encode_to_vec(&entry, config()).unwrap();
        let inline = bincode::serde::encode_to_vec(fields, config()).unwrap();
        assert_eq!(native, inline, "snapshot form");
        let serde_form = bincode::serde::encode_to_vec(&entry, config()).unwrap();
        assert_eq!(serde_form, inline, "view form");
    }

    #[test]
    fn proposal_round_trips() {
        let bytes = encode_proposal(&sample()).unwrap();
        assert_eq!(&bytes[..4], b"STEV");
        assert_eq!(decode_proposal(&bytes).unwrap(), sample());
    }

    #[test]
    fn decoder_refuses_damaged_input() {
        let bytes = encode_proposal(&sample()).unwrap();
        assert!(matches!(
            decode_proposal(&bytes[..3]),
            Err(Error::Truncated { .. })
        ));
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(decode_proposal(&bad), Err(Error::BadMagic { .. })));
        let mut bad = bytes.clone();
        bad[4] = 9;
        assert!(matches!(
            decode_proposal(&bad),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
        let mut bad = bytes.clone();
        bad.push(0);
        assert!(matches!(
            decode_proposal(&bad),
            Err(Error::TrailingBytes { .. })
        ));
        assert!(matches!(
            decode_proposal(&bytes[..bytes.len() - 2]),
            Err(Error::Decode { .. })
        ));
    }

    #[test]
    fn a_huge_claimed_length_is_an_error_not_an_abort() {
        // A proposal whose first event is `IdempotencyReserved` with a namespace claiming
        // 2^62 bytes: without a decode limit bincode would try to allocate it.
        let mut bytes = b"STEV\x01\x00".to_vec();
        bytes.extend_from_slice(&[0x00, 0x01, 0x00]); // stamp 0, one event, variant 0
        bytes.push(0xfd); // varint u64 follows
        bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(matches!(decode_proposal(&bytes), Err(Error::Decode { .. })));
        let mut snapshot_bytes = SNAPSHOT_MAGIC.to_vec();
        snapshot_bytes.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
        snapshot_bytes.extend_from_slice(&[0xfd]);
        snapshot_bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(restore(&snapshot_bytes).is_err());
    }

    #[test]
    fn unpacked_snapshot_formats_are_refused_by_version() {
        // Versions 1 and 2 held each job's spec and timeline unpacked; this build cannot read
        // them and says so before looking at the body.
        for found in [1u16, 2] {
            let mut bytes = snapshot(&State::default()).unwrap();
            bytes[4..6].copy_from_slice(&found.to_le_bytes());
            assert!(matches!(
                restore(&bytes),
                Err(Error::UnsupportedVersion {
                    what: "snapshot",
                    found: f,
                    supported: SNAPSHOT_FORMAT_VERSION,
                }) if f == found
            ));
        }
    }

    #[test]
    fn large_states_of_small_numbers_restore() {
        // Many jobs encode mostly one-byte varints, which bincode's decode accounting
        // counts at eight bytes each: the decode limit must allow for that.
        let mut state = State::default();
        let spec = JobSpec::new(
            "j",
            vec![crate::WorkflowSpec::new("w", vec!["true".into()])],
        );
        for index in 1..=14 {
            let events = (0..1000)
                .map(|_| crate::Event::JobSubmitted {
                    idempotency_key: None,
                    spec: spec.clone(),
                })
                .collect();
            let proposal = Proposal {
                stamp_ms: 1,
                events,
            };
            crate::apply(&mut state, crate::LogIndex(index), &proposal);
        }
        let bytes = snapshot(&state).unwrap();
        // Just under the smallest limit tier when counted byte for byte, well over it when
        // counted the way bincode does.
        assert!(
            bytes.len() > 900_000 && bytes.len() < 1 << 20,
            "{}",
            bytes.len()
        );
        let restored = restore(&bytes).unwrap();
        assert_eq!(state_hash(&restored), state_hash(&state));
        assert_eq!(restored.jobs().count(), 14_000);
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        let mut hasher = Fnv64(FNV_OFFSET_BASIS);
        bincode::enc::write::Writer::write(&mut hasher, b"a").unwrap();
        assert_eq!(hasher.0, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn hashes_are_pinned() {
        // Pinned literals: the same records must hash alike on every machine and every build;
        // a change here is a change of the canonical encoding and needs a version bump.
        let empty = State::default();
        let spec = JobSpec::new(
            "build",
            vec![crate::WorkflowSpec::new(
                "compile",
                vec!["make".into(), "all".into()],
            )],
        );
        let mut state = State::default();
        let proposal = Proposal {
            stamp_ms: 1_700_000_000_000,
            events: vec![
                crate::Event::WorkerRegistered {
                    worker: WorkerId(7),
                    cores: 4,
                    address: "127.0.0.1:9000".into(),
                },
                crate::Event::JobSubmitted {
                    idempotency_key: None,
                    spec: spec.clone(),
                },
            ],
        };
        crate::apply(&mut state, crate::LogIndex(1), &proposal);
        let hashes = (state_hash(&empty), state_hash(&state), body_hash(&spec).0);
        let pinned = (
            0x3de7_b582_6ab2_0be6,
            0xd61b_6448_713f_fb1d,
            0x0588_4fcd_61ff_4e86,
        );
        assert_eq!(hashes, pinned, "{hashes:#x?}");
        let restored = restore(&snapshot(&state).unwrap()).unwrap();
        assert_eq!(state_hash(&restored), state_hash(&state));
    }
}
