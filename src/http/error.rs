//! [`ApiError`]: the one place where every failure becomes an HTTP status and an OCI error code.
//!
//! Handlers return `Result<Response, ApiError>` and use `?` on store, route and token errors;
//! the `From` impls below are the whole mapping. Server-side failures are logged here with their
//! full cause and answered without internals (no paths, no OS messages) in the body.

use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::json;

use super::body::{self, Body};
use super::error_code::{ErrorBody, ErrorCode};
use super::routes::RouteError;
use super::token::TokenError;
use crate::manifest::ManifestError;
use crate::storage::StorageError;
use crate::store::StoreError;

/// An error response: the JSON error body plus any headers it needs.
#[derive(Debug)]
pub struct ApiError {
    body: ErrorBody,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with the code's default message and an optional detail.
    pub fn new(code: ErrorCode, detail: Option<serde_json::Value>) -> Self {
        ApiError {
            body: ErrorBody::new(code, detail),
            headers: Vec::new(),
        }
    }

    /// An error with a specific message.
    pub fn with_message(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            body: ErrorBody::with_message(code, message, None),
            headers: Vec::new(),
        }
    }

    /// Adds a header to the error response (e.g. `Range` and `Location` on a 416, so the
    /// client can resume without another round trip).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.body.status()
    }

    /// The error as a response.
    pub fn into_response(self) -> Response<Body> {
        let json = self.body.to_json();
        let mut response = Response::new(body::full(json.clone()));
        *response.status_mut() =
            StatusCode::from_u16(self.body.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(json.len()));
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }

    /// A server-side failure: logged in full, answered as `code` without internals.
    fn internal(code: ErrorCode, cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %cause, "request failed");
        ApiError::new(code, None)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use ErrorCode::*;
        match e {
            StoreError::BlobUnknown(d) => ApiError::new(BlobUnknown, Some(json!(d.to_string()))),
            StoreError::BlobUploadUnknown(id) => {
                ApiError::new(BlobUploadUnknown, Some(json!(id.to_string())))
            }
            StoreError::BlobUploadBusy(_) => ApiError::with_message(
                BlobUploadInvalid,
                "another request is writing to this upload",
            ),
            StoreError::StorageTooSlow(_) => ApiError::internal(Unavailable, &e)
                .header(RETRY_AFTER, HeaderValue::from_static("5")),
            StoreError::CollectionBusy(_) => ApiError::with_message(
                TooManyRequests,
                "a garbage collection is deciding about content this request needs; retry",
            ),
            StoreError::BlobUploadInterrupted(_) => ApiError::with_message(
                BlobUploadInvalid,
                "upload interrupted by an earlier error; check its status and resume",
            ),
            StoreError::DigestInvalid { expected, actual } => ApiError {
                body: ErrorBody::new(
                    DigestInvalid,
                    Some(json!({ "expected": expected.to_string(), "actual": actual.to_string() })),
                ),
                headers: Vec::new(),
            },
            StoreError::NotAnArchive { claimed, reason } => ApiError {
                body: ErrorBody::with_message(
                    DigestInvalid,
                    format!(
                        "the upload is not a valid tar archive, so no {} digest can name it: \
                         {reason}",
                        claimed.algorithm()
                    ),
                    Some(json!({ "digest": claimed.to_string(), "reason": reason.to_string() })),
                ),
                headers: Vec::new(),
            },
            StoreError::UnsupportedDigest(d) => ApiError::with_message(
                DigestInvalid,
                format!(
                    "digest algorithm {} cannot be used for uploads",
                    d.algorithm()
                ),
            ),
            StoreError::SizeInvalid { expected, actual } => ApiError::new(
                SizeInvalid,
                Some(json!({ "expected": expected, "actual": actual })),
            ),
            StoreError::RangeInvalid { .. } => ApiError::new(RangeNotSatisfiable, None),
            StoreError::ManifestUnknown(reference) => {
                ApiError::new(ManifestUnknown, Some(json!(reference.to_string())))
            }
            StoreError::ManifestInvalid(ManifestError::TooLarge { .. }) => {
                ApiError::new(ManifestTooLarge, None)
            }
            StoreError::ManifestInvalid(e) => {
                ApiError::with_message(ManifestInvalid, e.to_string())
            }
            StoreError::ManifestBlobUnknown(missing) => {
                let mut errors = missing.iter().map(|d| Some(json!(d.to_string())));
                let first = errors.next().flatten();
                let mut body = ErrorBody::new(ManifestBlobUnknown, first);
                for detail in errors {
                    body.push(ManifestBlobUnknown, detail);
                }
                ApiError {
                    body,
                    headers: Vec::new(),
                }
            }
            StoreError::ManifestDigestMismatch { claimed, actual } => ApiError::new(
                DigestInvalid,
                Some(json!({ "expected": claimed.to_string(), "actual": actual.to_string() })),
            ),
            StoreError::NameUnknown(name) => {
                ApiError::new(NameUnknown, Some(json!({ "name": name.to_string() })))
            }
            StoreError::UploadConflict { .. } => ApiError::with_message(
                RangeInvalid,
                "upload changed size underneath this request; check its status",
            ),
            StoreError::Input(e) => {
                tracing::debug!(error = %e, "request body ended early");
                ApiError::with_message(BlobUploadInvalid, "request body could not be read")
            }
            StoreError::Storage(StorageError::Io { ref source, .. }) if is_out_of_space(source) => {
                ApiError::internal(Unavailable, &e)
                    .header(RETRY_AFTER, HeaderValue::from_static("60"))
            }
            StoreError::Storage(ref storage) if is_backend_unavailable(storage) => {
                ApiError::internal(Unavailable, &e)
                    .header(RETRY_AFTER, HeaderValue::from_static("5"))
            }
            other => ApiError::internal(Unknown, &other),
        }
    }
}

/// An object store that is down, throttling or refusing the credentials: 503, retry later. A
/// writer reports it inside an `io::Error` (the `Write` trait), so look there too.
fn is_backend_unavailable(e: &StorageError) -> bool {
    match e {
        StorageError::Unavailable { .. } => true,
        StorageError::Io { source, .. } => source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<StorageError>())
            .is_some_and(is_backend_unavailable),
        _ => false,
    }
}

/// ENOSPC / EDQUOT: the store is full, a condition that can pass (503, not 500).
fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        let message = e.to_string();
        let code = match e {
            RouteError::NotFound => ErrorCode::NotFound,
            RouteError::NameInvalid(_) => ErrorCode::NameInvalid,
            RouteError::DigestInvalid(_) => ErrorCode::DigestInvalid,
            RouteError::TagInvalid(_) => ErrorCode::TagInvalid,
            RouteError::UploadUnknown => ErrorCode::BlobUploadUnknown,
        };
        ApiError::with_message(code, message)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::with_message(ErrorCode::BlobUploadInvalid, e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(ErrorCode::Unknown, &e)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::internal(ErrorCode::Unknown, &e)
    }
}
