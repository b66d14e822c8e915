//! Why a benchmark step failed: every answer is verified, so a wrong status, header, length,
//! digest or byte is an error with the step that saw it, not a silently fast result.

use crate::digest::Digest;

/// A failed benchmark step or invalid setup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The `--url` is not `http://HOST[:PORT][/PREFIX]`.
    #[error("invalid registry URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An option is out of range (e.g. a zero size).
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host and port.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The client could not be set up for a URL (an unreadable `--cacert` file, …).
    #[error("cannot set up the client for {url}: {source}")]
    Setup {
        /// The URL.
        url: String,
        /// The client's error (boxed: it is large, and rare).
        source: Box<crate::client::ClientError>,
    },
    /// The request failed before an answer came (connection refused or reset, TLS
    /// handshake, …), as the registry client reports it.
    #[error("{step}: {source}")]
    Client {
        /// The step.
        step: &'static str,
        /// The client's error (boxed: it is large, and rare).
        source: Box<crate::client::ClientError>,
    },
    /// A response body failed midway (connection reset, malformed chunk, …).
    #[error("{step}: HTTP error: {source}")]
    Http {
        /// The step (e.g. "monolithic PUT").
        step: &'static str,
        /// hyper's error.
        source: hyper::Error,
    },
    /// A request could not be built (e.g. a `Location` with characters invalid in a URI).
    #[error("{step}: cannot build request: {source}")]
    Request {
        /// The step.
        step: &'static str,
        /// The builder's error.
        source: hyper::http::Error,
    },
    /// The server answered with another status than the protocol requires.
    #[error("{step}: expected status {expected}, got {got}")]
    Status {
        /// The step.
        step: &'static str,
        /// The status required.
        expected: u16,
        /// The status received.
        got: u16,
    },
    /// A required header is missing or not valid text.
    #[error("{step}: missing or unreadable {header} header")]
    MissingHeader {
        /// The step.
        step: &'static str,
        /// The header's name.
        header: &'static str,
    },
    /// A header has a value other than the one the request implies.
    #[error("{step}: {header} is {got:?}, expected {expected:?}")]
    HeaderMismatch {
        /// The step.
        step: &'static str,
        /// The header's name.
        header: &'static str,
        /// The value required.
        expected: String,
        /// The value received.
        got: String,
    },
    /// A `Location` header that does not resolve to a URL on the same server.
    #[error("{step}: unusable Location {location:?}")]
    BadLocation {
        /// The step.
        step: &'static str,
        /// The header's value.
        location: String,
    },
    /// The body had another length than required.
    #[error("{step}: received {got} bytes, expected {expected}")]
    LengthMismatch {
        /// The step.
        step: &'static str,
        /// The length required.
        expected: u64,
        /// The length received (counting stops just past `expected`).
        got: u64,
    },
    /// The body's digest is not the blob's.
    #[error("{step}: received bytes have digest {got}, expected {expected}")]
    DigestMismatch {
        /// The step.
        step: &'static str,
        /// The blob's digest.
        expected: Digest,
        /// The digest of what arrived.
        got: Digest,
    },
    /// A range reply differs from the bytes pushed.
    #[error("{step}: bytes at offset {offset} differ from the content pushed")]
    ContentMismatch {
        /// The step.
        step: &'static str,
        /// Blob offset of the range.
        offset: u64,
    },
    /// The server did not answer within the request timeout.
    #[error("{step}: no answer within {seconds} s")]
    Timeout {
        /// The step.
        step: &'static str,
        /// The timeout.
        seconds: u64,
    },
    /// `/proc/PID/...` of the server could not be read or parsed.
    #[error("server process {pid}: cannot read {file}: {reason}")]
    Process {
        /// The process id.
        pid: u32,
        /// The file under /proc/PID.
        file: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A worker task panicked or was cancelled.
    #[error("worker task failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}
