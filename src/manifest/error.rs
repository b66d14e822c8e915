//! Why a manifest was refused: one variant per rule, so the HTTP layer can pick the OCI error code
//! (`MANIFEST_INVALID`, `MANIFEST_UNSUPPORTED`, `SIZE_INVALID`...) without reading messages.

use std::fmt;

use crate::digest::DigestError;

/// Everything [`Manifest::parse`](super::Manifest::parse) can refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The body is larger than [`MAX_MANIFEST_SIZE`](super::MAX_MANIFEST_SIZE).
    #[error("manifest is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not UTF-8, so it cannot be JSON.
    #[error("manifest is not UTF-8 (first bad byte at offset {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The body is not JSON, or a field has the wrong JSON type.
    #[error("invalid manifest JSON at line {line}, column {column}: {kind}: {detail}")]
    InvalidJson {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What went wrong.
        kind: JsonProblem,
        /// The parser's description, clipped, for humans.
        detail: String,
    },
    /// An object repeats a key (a field or an annotation). Refused rather than resolved, since
    /// parsers disagree on which copy wins.
    #[error("duplicate key {key:?} at line {line}, column {column}")]
    DuplicateKey {
        /// The repeated key (clipped).
        key: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A key that Go's case-insensitive field matching would take for a known field (e.g.
    /// `"Manifests"`): refused so that no reader sees a field this parser did not.
    #[error("key {key:?} at line {line}, column {column} differs from a field only in case")]
    CaseVariantKey {
        /// The key as written (clipped).
        key: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The `Content-Type` (or the body's `mediaType`, when no type was sent) names no manifest
    /// kind layerstore stores.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// A Docker schema 1 manifest: recognized, deliberately not accepted.
    #[error("Docker schema 1 manifests are not supported; push schema 2 or OCI")]
    Schema1Unsupported,
    /// The body's `mediaType` disagrees with the `Content-Type` the manifest was pushed with.
    #[error("manifest mediaType {found:?} does not match {expected}")]
    MediaTypeMismatch {
        /// The type from `Content-Type`.
        expected: &'static str,
        /// The body's `mediaType` (clipped), `None` when absent.
        found: Option<String>,
    },
    /// `schemaVersion` is missing or not 2.
    #[error("manifest schemaVersion must be 2, found {found:?}")]
    SchemaVersion {
        /// The value found, `None` when absent.
        found: Option<i64>,
    },
    /// A field the format requires is absent (or `null`).
    #[error("manifest has no {0:?} field")]
    MissingField(&'static str),
    /// A manifest carries fields of an index or the reverse (CVE-2021-41190's ambiguity).
    #[error("{kind} must not contain a {field:?} field")]
    AmbiguousDocument {
        /// The kind it was parsed as.
        kind: &'static str,
        /// The field that belongs to the other kind.
        field: &'static str,
    },
    /// The top-level `artifactType` breaks the media type grammar.
    #[error("artifactType {0:?} is not a valid media type")]
    InvalidArtifactType(String),
    /// One descriptor is invalid.
    #[error("descriptor {index} is invalid: {reason}")]
    InvalidDescriptor {
        /// Which descriptor.
        index: DescriptorIndex,
        /// What is wrong with it.
        reason: DescriptorProblem,
    },
}

/// The kind of JSON failure inside [`ManifestError::InvalidJson`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonProblem {
    /// Not JSON at this point.
    Syntax,
    /// The body ends in the middle of a value (an empty body included).
    UnexpectedEnd,
    /// Valid JSON, but a value has the wrong type or range (e.g. `"schemaVersion": "2"`).
    WrongType,
}

impl fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonProblem::Syntax => "syntax error",
            JsonProblem::UnexpectedEnd => "unexpected end of input",
            JsonProblem::WrongType => "wrong type",
        })
    }
}

/// Where a descriptor sits in its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DescriptorIndex {
    /// The image manifest's `config`.
    Config,
    /// `layers[i]`.
    Layer(usize),
    /// `manifests[i]` of an index.
    Manifest(usize),
    /// The `subject`.
    Subject,
}

impl fmt::Display for DescriptorIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescriptorIndex::Config => f.write_str("config"),
            DescriptorIndex::Layer(i) => write!(f, "layers[{i}]"),
            DescriptorIndex::Manifest(i) => write!(f, "manifests[{i}]"),
            DescriptorIndex::Subject => f.write_str("subject"),
        }
    }
}

/// What is wrong with one descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptorProblem {
    /// No `mediaType`.
    #[error("missing mediaType")]
    MissingMediaType,
    /// `mediaType` breaks the grammar.
    #[error("mediaType {0:?} is not a valid media type")]
    InvalidMediaType(String),
    /// No `digest`.
    #[error("missing digest")]
    MissingDigest,
    /// `digest` does not parse.
    #[error("invalid digest: {0}")]
    InvalidDigest(DigestError),
    /// A digest that names no content hash (a TarSum), so no blob can be checked against it.
    #[error("digest algorithm {0} does not address content")]
    NotContentDigest(String),
    /// No `size`.
    #[error("missing size")]
    MissingSize,
    /// `size` is negative.
    #[error("negative size {0}")]
    NegativeSize(i64),
    /// `artifactType` breaks the grammar.
    #[error("artifactType {0:?} is not a valid media type")]
    InvalidArtifactType(String),
    /// A Docker foreign layer without `urls` cannot be fetched by anyone.
    #[error("foreign layer has no urls")]
    ForeignLayerWithoutUrls,
    /// An entry of `urls` is empty.
    #[error("urls[{0}] is empty")]
    EmptyUrl(usize),
    /// `platform` lacks `architecture` or `os`.
    #[error("platform needs both architecture and os")]
    IncompletePlatform,
}

/// Copies at most 64 characters of untrusted input into an error.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
