//! A proposal made ready for [`apply`](crate::apply) away from the state: the work `apply`
//! would do from a submit's spec alone (its body hash and its packed form) is done here, so a
//! caller can do it on another thread while the previous proposal is applied, or before it
//! takes the lock on the state (ADR 0023).
//!
//! Applying a prepared proposal gives exactly what applying the proposal gives: what is
//! computed here is a pure function of the event, and only this module computes it.

use crate::codec::body_hash;
use crate::{decode_proposal, BodyHash, Event, Proposal, Result, StoredSpec};

/// What `apply` needs of one `JobSubmitted` event that depends on its spec alone.
pub(crate) struct ReadySubmit {
    /// [`body_hash`] of the spec, for a keyed submit that does not directly follow the
    /// reservation of its key (`apply` takes a reservation's hash for the submit right after
    /// it, ADR 0025, and computes the hash itself if that reservation turns out not fresh).
    pub body_hash: Option<BodyHash>,
    /// The spec as a job stores it.
    pub stored: StoredSpec,
}

/// A proposal with the spec-only work of its submits done; see
/// [`apply_prepared`](crate::apply_prepared).
pub struct Prepared {
    pub(crate) proposal: Proposal,
    /// One slot per event: `Some` for a `JobSubmitted`, taken by `apply`.
    pub(crate) submits: Vec<Option<ReadySubmit>>,
}

impl Prepared {
    /// Does the spec-only work of every submit in `proposal`.
    pub fn new(proposal: Proposal) -> Prepared {
        let events = &proposal.events;
        let submits = events
            .iter()
            .enumerate()
            .map(|(position, event)| match event {
                Event::JobSubmitted {
                    idempotency_key,
                    spec,
                } => {
                    let reserved_before = |key| {
                        let before = position.checked_sub(1).and_then(|at| events.get(at));
                        matches!(before, Some(Event::IdempotencyReserved { key: reserved, .. }) if reserved == key)
                    };
                    let needs_hash = idempotency_key
                        .as_ref()
                        .is_some_and(|key| !reserved_before(key));
                    Some(ReadySubmit {
                        body_hash: needs_hash.then(|| body_hash(spec)),
                        stored: StoredSpec::new(spec),
                    })
                }
                _ => None,
            })
            .collect();
        Prepared { proposal, submits }
    }

    /// [`decode_proposal`] followed by [`Prepared::new`].
    pub fn decode(bytes: &[u8]) -> Result<Prepared> {
        decode_proposal(bytes).map(Prepared::new)
    }

    /// The proposal.
    pub fn proposal(&self) -> &Proposal {
        &self.proposal
    }
}
