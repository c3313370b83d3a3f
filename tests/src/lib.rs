//! Integration tests and the crash-recovery harness for steward.
//!
//! Tests that drive real processes live in `tests/tests/`; shared helpers live here.
#![deny(missing_docs)]
