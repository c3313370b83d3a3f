//! steward's runtime: openraft glue, transport, HTTP API, leader duties.
#![deny(missing_docs)]
