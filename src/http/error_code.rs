//! The OCI distribution error codes, their HTTP statuses and the JSON error body.
//!
//! Every error the server sends goes through [`ErrorBody`], so the status/code pairing lives in
//! exactly one table ([`ErrorCode::status`]). [`ErrorCode`] names each *kind* of error the server
//! answers; every kind is sent with one of the fourteen codes the OCI distribution spec defines
//! ([`SPEC_CODES`]), never another: where distribution has an extra code (`RANGE_INVALID`,
//! `PAGINATION_NUMBER_INVALID`, `TAG_INVALID`, `UNKNOWN`, `UNAVAILABLE`), the kind keeps
//! distribution's status and takes the spec code that says what the client should do. Statuses
//! follow the distribution registry where the spec leaves them open (for example
//! `BLOB_UPLOAD_INVALID` is 404 there) and the OCI spec where it is explicit (416 for a chunk out
//! of order, 413 for an oversized manifest).

use serde::Serialize;

/// The codes the OCI distribution spec defines: the only ones layerstore sends.
pub const SPEC_CODES: [&str; 14] = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

/// A kind of error the server answers, with its spec code ([`ErrorCode::as_str`]) and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Blob unknown to the repository.
    BlobUnknown,
    /// Upload token or upload request invalid.
    BlobUploadInvalid,
    /// No such upload.
    BlobUploadUnknown,
    /// Missing, malformed or non-matching digest.
    DigestInvalid,
    /// A manifest references a blob or manifest that is not there.
    ManifestBlobUnknown,
    /// Malformed or invalid manifest.
    ManifestInvalid,
    /// Manifest (tag or digest) unknown.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository unknown.
    NameUnknown,
    /// Content length does not match.
    SizeInvalid,
    /// Authentication required.
    Unauthorized,
    /// Access denied.
    Denied,
    /// Operation not supported.
    Unsupported,
    /// Rate limited.
    TooManyRequests,
    /// Pagination parameter invalid (400 `UNSUPPORTED`: an invalid parameter).
    PaginationNumberInvalid,
    /// A manifest reference or `?tag=` that is neither a digest nor a valid tag
    /// (400 `MANIFEST_INVALID`).
    TagInvalid,
    /// A chunk out of order, or an upload whose offset differs from the token's
    /// (416 `BLOB_UPLOAD_INVALID`; the upload is kept).
    RangeInvalid,
    /// A blob byte range outside the blob (416 `UNSUPPORTED`: an invalid parameter).
    RangeNotSatisfiable,
    /// Manifest larger than the registry accepts (413 `MANIFEST_INVALID`).
    ManifestTooLarge,
    /// No such route (404 `UNSUPPORTED`: nothing is implemented there).
    NotFound,
    /// Method not allowed on this route (405 `UNSUPPORTED`).
    MethodNotAllowed,
    /// Server-side failure (500 `UNSUPPORTED`: the operation could not be carried out).
    Unknown,
    /// Storage temporarily unavailable, e.g. out of space or an object store down
    /// (503 `TOOMANYREQUESTS`: retry later).
    Unavailable,
}

impl ErrorCode {
    /// The code string in the JSON body.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid | ErrorCode::RangeInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid | ErrorCode::ManifestTooLarge | ErrorCode::TagInvalid => {
                "MANIFEST_INVALID"
            }
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported
            | ErrorCode::PaginationNumberInvalid
            | ErrorCode::RangeNotSatisfiable
            | ErrorCode::NotFound
            | ErrorCode::MethodNotAllowed
            | ErrorCode::Unknown => "UNSUPPORTED",
            ErrorCode::TooManyRequests | ErrorCode::Unavailable => "TOOMANYREQUESTS",
        }
    }

    /// The HTTP status the code is sent with (when it is the first error of a response).
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadInvalid
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown
            | ErrorCode::NotFound => 404,
            ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid
            | ErrorCode::PaginationNumberInvalid
            | ErrorCode::TagInvalid => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported | ErrorCode::MethodNotAllowed => 405,
            ErrorCode::ManifestTooLarge => 413,
            ErrorCode::RangeInvalid | ErrorCode::RangeNotSatisfiable => 416,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Unknown => 500,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The default human-readable message.
    pub const fn message(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "blob unknown to registry",
            ErrorCode::BlobUploadInvalid => "blob upload invalid",
            ErrorCode::BlobUploadUnknown => "blob upload unknown to registry",
            ErrorCode::DigestInvalid => "provided digest did not match uploaded content",
            ErrorCode::ManifestBlobUnknown => {
                "manifest references a manifest or blob unknown to registry"
            }
            ErrorCode::ManifestInvalid => "manifest invalid",
            ErrorCode::ManifestTooLarge => "manifest too large",
            ErrorCode::ManifestUnknown => "manifest unknown to registry",
            ErrorCode::NameInvalid => "invalid repository name",
            ErrorCode::NameUnknown => "repository name not known to registry",
            ErrorCode::SizeInvalid => "provided length did not match content length",
            ErrorCode::Unauthorized => "authentication required",
            ErrorCode::Denied => "requested access to the resource is denied",
            ErrorCode::Unsupported => "the operation is unsupported",
            ErrorCode::TooManyRequests => "too many requests",
            ErrorCode::PaginationNumberInvalid => "invalid number of results requested",
            ErrorCode::TagInvalid => "invalid tag",
            ErrorCode::RangeInvalid => "chunk out of order: check the upload's offset and resume",
            ErrorCode::RangeNotSatisfiable => "requested range not satisfiable",
            ErrorCode::NotFound => "no such route",
            ErrorCode::MethodNotAllowed => "method not allowed on this route",
            ErrorCode::Unknown => "internal server error",
            ErrorCode::Unavailable => "storage unavailable, retry later",
        }
    }
}

/// One entry of the `errors` array.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorEntry {
    /// The code string.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Machine-readable detail (left out when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// The `{"errors":[…]}` body; its status is that of the first error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody {
    /// The errors, most important first.
    pub errors: Vec<ErrorEntry>,
    #[serde(skip)]
    status: u16,
}

impl ErrorBody {
    /// A body with one error and the code's default message.
    ///
    /// ```
    /// use layerstore::http::error_code::{ErrorBody, ErrorCode};
    /// let body = ErrorBody::new(ErrorCode::BlobUnknown, Some("sha256:abc".into()));
    /// assert_eq!(body.status(), 404);
    /// assert_eq!(
    ///     body.to_json(),
    ///     "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown to registry\",\"detail\":\"sha256:abc\"}]}\n"
    /// );
    /// ```
    pub fn new(code: ErrorCode, detail: Option<serde_json::Value>) -> Self {
        Self::with_message(code, code.message(), detail)
    }

    /// A body with one error and a specific message.
    pub fn with_message(
        code: ErrorCode,
        message: impl Into<String>,
        detail: Option<serde_json::Value>,
    ) -> Self {
        ErrorBody {
            errors: vec![ErrorEntry {
                code: code.as_str(),
                message: message.into(),
                detail,
            }],
            status: code.status(),
        }
    }

    /// Adds another error (the status stays that of the first).
    pub fn push(&mut self, code: ErrorCode, detail: Option<serde_json::Value>) {
        self.errors.push(ErrorEntry {
            code: code.as_str(),
            message: code.message().to_owned(),
            detail,
        });
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The JSON text, with the trailing newline distribution sends.
    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_string(self).expect("strings and JSON values serialize");
        json.push('\n');
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind, so that a new one cannot be added without a spec code.
    const ALL: [ErrorCode; 23] = [
        ErrorCode::BlobUnknown,
        ErrorCode::BlobUploadInvalid,
        ErrorCode::BlobUploadUnknown,
        ErrorCode::DigestInvalid,
        ErrorCode::ManifestBlobUnknown,
        ErrorCode::ManifestInvalid,
        ErrorCode::ManifestUnknown,
        ErrorCode::NameInvalid,
        ErrorCode::NameUnknown,
        ErrorCode::SizeInvalid,
        ErrorCode::Unauthorized,
        ErrorCode::Denied,
        ErrorCode::Unsupported,
        ErrorCode::TooManyRequests,
        ErrorCode::PaginationNumberInvalid,
        ErrorCode::TagInvalid,
        ErrorCode::RangeInvalid,
        ErrorCode::RangeNotSatisfiable,
        ErrorCode::ManifestTooLarge,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Unknown,
        ErrorCode::Unavailable,
    ];

    #[test]
    fn every_kind_is_sent_with_a_spec_code() {
        for kind in ALL {
            assert!(
                SPEC_CODES.contains(&kind.as_str()),
                "{kind:?}: {}",
                kind.as_str()
            );
            // The list above is exhaustive: this match fails to compile when a kind is added.
            match kind {
                ErrorCode::BlobUnknown
                | ErrorCode::BlobUploadInvalid
                | ErrorCode::BlobUploadUnknown
                | ErrorCode::DigestInvalid
                | ErrorCode::ManifestBlobUnknown
                | ErrorCode::ManifestInvalid
                | ErrorCode::ManifestUnknown
                | ErrorCode::NameInvalid
                | ErrorCode::NameUnknown
                | ErrorCode::SizeInvalid
                | ErrorCode::Unauthorized
                | ErrorCode::Denied
                | ErrorCode::Unsupported
                | ErrorCode::TooManyRequests
                | ErrorCode::PaginationNumberInvalid
                | ErrorCode::TagInvalid
                | ErrorCode::RangeInvalid
                | ErrorCode::RangeNotSatisfiable
                | ErrorCode::ManifestTooLarge
                | ErrorCode::NotFound
                | ErrorCode::MethodNotAllowed
                | ErrorCode::Unknown
                | ErrorCode::Unavailable => {}
            }
        }
    }
}
