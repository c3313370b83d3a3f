//! Errors of the HTTP client: the server's answer in the API's error shape, or why no answer
//! could be had.

use crate::api::{ErrorCode, ErrorDetail};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error (the API's error shape). Whether state changed is
    /// given by the code (e.g. `not_found`, `idempotency_conflict`: nothing changed).
    #[error("{url}: HTTP {status}: {}{}", detail.message, field_suffix(detail))]
    Api {
        /// The URL that answered.
        url: String,
        /// HTTP status.
        status: u16,
        /// The error object.
        detail: ErrorDetail,
    },
    /// No server could be reached (connection refused, timeouts) before the retry window
    /// closed. A non-idempotent request may or may not have been applied.
    #[error("no steward server reachable (tried {tried}): {last}")]
    Unreachable {
        /// The base URLs tried, comma-separated.
        tried: String,
        /// The last transport error.
        last: String,
    },
    /// The server's answer could not be decoded.
    #[error("{url}: unexpected answer (HTTP {status}): {message}")]
    Decode {
        /// The URL that answered.
        url: String,
        /// HTTP status.
        status: u16,
        /// What was wrong.
        message: String,
    },
    /// The client was given no base URL or an unusable one.
    #[error("invalid server URL: {0}")]
    InvalidUrl(String),
}

fn field_suffix(detail: &ErrorDetail) -> String {
    detail
        .field
        .as_ref()
        .map(|field| format!(" (field `{field}`)"))
        .unwrap_or_default()
}

impl ClientError {
    /// The API error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { detail, .. } => Some(detail.code),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Result of a client call.
pub type ClientResult<T> = std::result::Result<T, ClientError>;
