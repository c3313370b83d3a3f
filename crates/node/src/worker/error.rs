//! The worker agent's error type.
//!
//! Transient failures talking to managers are not errors here: the agent retries them. Only
//! what stops the agent (bad configuration, a listener it cannot bind) surfaces.

/// Why the worker agent could not start or keep running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A configuration value is invalid.
    #[error("worker config: `{field}`: {message}")]
    Config {
        /// The offending field or flag.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// Binding or serving the agent's own HTTP endpoint failed.
    #[error("worker endpoint {what}: {message}")]
    Endpoint {
        /// The operation and address.
        what: String,
        /// The OS error.
        message: String,
    },
}

/// The agent's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
