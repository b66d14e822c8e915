//! [`ClientError`]: everything a registry call can fail with, precise enough to act on
//! (retry, re-authenticate, report a corrupt blob) and never carrying a secret.

use std::time::Duration;

use hyper::StatusCode;

use super::challenge::ChallengeError;
use super::credentials::CredentialError;
use super::layout::LayoutError;
use crate::digest::Digest;

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The registry address or a URL it sent cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS could not be set up (an unreadable CA file, say).
    #[error("TLS: {0}")]
    Tls(String),
    /// No connection, a reset, or a broken response: the transport failed.
    #[error("{method} {url}: {reason}")]
    Transport {
        /// The request's method.
        method: String,
        /// The request's URL (never with credentials).
        url: String,
        /// The underlying error, as text.
        reason: String,
    },
    /// No response head within the configured timeout.
    #[error("{method} {url}: no answer within {timeout:?}")]
    Timeout {
        /// The request's method.
        method: String,
        /// The request's URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The registry answered with an error status.
    #[error("{method} {url}: {status}{}", code_text(.code, .message))]
    Status {
        /// The request's method.
        method: String,
        /// The request's URL.
        url: String,
        /// The status.
        status: StatusCode,
        /// The first OCI error code of the body, when there is one.
        code: Option<String>,
        /// Its message.
        message: Option<String>,
    },
    /// Credentials were refused, or none were found for a registry that wants them.
    #[error("{url}: authentication failed: {reason}")]
    Unauthorized {
        /// The request's URL.
        url: String,
        /// What the registry or token server said.
        reason: String,
    },
    /// A token server answered but gave no usable token.
    #[error("token server {realm}: {reason}")]
    Token {
        /// The token server's URL.
        realm: String,
        /// What went wrong.
        reason: String,
    },
    /// A challenge header could not be read.
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
    /// The credential files or helpers failed.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// An OCI layout could not be read or written.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Content did not hash to the digest it was fetched by: corrupt or tampered.
    #[error("content of {expected} hashed to {actual}: corrupt or tampered data, discarded")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// What the bytes hashed to.
        actual: Digest,
    },
    /// Content did not have the size its descriptor or `Content-Length` promised.
    #[error("{what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was read.
        what: String,
        /// Promised size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// The registry broke the protocol (a missing `Location`, an unparsable document, ...).
    #[error("{0}")]
    Protocol(String),
    /// Local I/O (files being pushed or pulled).
    #[error("{what}: {source}")]
    Io {
        /// The file or operation.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn code_text(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(code), Some(message)) => format!(" ({code}: {message})"),
        (Some(code), None) => format!(" ({code})"),
        _ => String::new(),
    }
}

impl ClientError {
    /// True for failures worth retrying: transport errors, timeouts, 429 and 5xx answers.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } | ClientError::Timeout { .. } => true,
            ClientError::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            _ => false,
        }
    }

    /// The status of a [`ClientError::Status`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            what: what.into(),
            source,
        }
    }
}
