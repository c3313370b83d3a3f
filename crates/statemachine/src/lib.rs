//! steward's job domain: commands, events and the deterministic fold.
#![deny(missing_docs)]
