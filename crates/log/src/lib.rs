//! steward's segmented write-ahead log: CRC-framed records, group commit, torn-tail recovery.
#![deny(missing_docs)]
