//! A committed entry made ready for the fold before the state is locked: its proposal decoded
//! and prepared (ADR 0023), so the write lock covers only `apply` itself.

use openraft::{EntryPayload, Membership};
use steward_statemachine::Prepared;

use crate::raft::{NodeId, PeerNode, TypeConfig};

/// What applying one entry takes.
pub enum Ready {
    /// A blank entry, or a proposal that does not decode: nothing to fold.
    Nothing,
    /// A proposal, decoded and prepared.
    Proposal(Prepared),
    /// A membership change.
    Membership(Membership<NodeId, PeerNode>),
}

impl Ready {
    /// Decodes and prepares the payload of entry `index`. Every replica decodes the same bytes
    /// the same way, so a bad payload is skipped identically everywhere; it is logged, never a
    /// panic.
    pub fn of(index: u64, payload: EntryPayload<TypeConfig>) -> Ready {
        match payload {
            EntryPayload::Blank => Ready::Nothing,
            EntryPayload::Normal(bytes) => match Prepared::decode(&bytes.0) {
                Ok(prepared) => Ready::Proposal(prepared),
                Err(e) => {
                    tracing::error!(index, error = %e, "undecodable proposal");
                    Ready::Nothing
                }
            },
            EntryPayload::Membership(membership) => Ready::Membership(membership),
        }
    }
}
