//! [`StoreError`]: every way a store operation can fail, named so that the HTTP layer can map
//! each variant to one OCI error code in one place.

use std::io;

use crate::digest::{Digest, DigestError};
use crate::hash::StateError;
use crate::manifest::{ManifestError, ReferrerRecordError};
use crate::names::{Reference, RepositoryName, UploadId};
use crate::storage::{DriverPath, PathError, StorageError};

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The blob is not linked into the repository, or its data is gone (`BLOB_UNKNOWN`).
    #[error("blob unknown: {0}")]
    BlobUnknown(Digest),
    /// No such upload session, or it has no readable `startedat` (`BLOB_UPLOAD_UNKNOWN`).
    #[error("blob upload unknown: {0}")]
    BlobUploadUnknown(UploadId),
    /// The upload is open in another handle of this process; one writer at a time.
    #[error("blob upload {0} is in use by another request")]
    BlobUploadBusy(UploadId),
    /// A garbage collection kept a file this operation relies on claimed for longer than a
    /// collection ever should; try again later (`TOOMANYREQUESTS`).
    #[error("a garbage collection holds {0}; try again")]
    CollectionBusy(DriverPath),
    /// Checking what a push relies on took longer than the touch interval, round after round:
    /// the storage is too slow for the garbage-collection protocol's timing (503
    /// `TOOMANYREQUESTS`, retry later).
    #[error("the storage is too slow: checking this push's blobs took over {0:?}, ten times")]
    StorageTooSlow(std::time::Duration),
    /// A garbage collection stopped because it was asked to ([`GcOptions::stop`]).
    ///
    /// [`GcOptions::stop`]: crate::store::GcOptions::stop
    #[error("the garbage collection was asked to stop")]
    CollectionStopped,
    /// The upload handle hit a storage error while appending; resume the upload by id to get
    /// a consistent handle again (`BLOB_UPLOAD_INVALID`).
    #[error("blob upload {0} was interrupted by an earlier error; resume it")]
    BlobUploadInterrupted(UploadId),
    /// The uploaded bytes do not have the claimed digest (`DIGEST_INVALID`).
    #[error("digest mismatch: claimed {expected}, content is {actual}")]
    DigestInvalid {
        /// The digest the client claimed.
        expected: Digest,
        /// The digest of the bytes, in the claimed algorithm.
        actual: Digest,
    },
    /// A TarSum digest was claimed for content that is not a tar archive (plain or gzip), or
    /// a truncated or corrupt one: no TarSum can name it (`DIGEST_INVALID`, with the reason).
    #[error("{claimed} cannot match: the upload is not a valid tar archive ({reason})")]
    NotAnArchive {
        /// The digest the client claimed.
        claimed: Digest,
        /// The first problem found in the content.
        reason: crate::tarsum::TarsumError,
    },
    /// A digest whose algorithm cannot address uploaded content (TarSum) (`DIGEST_INVALID`).
    #[error("digest algorithm of {0} cannot be verified for an upload")]
    UnsupportedDigest(Digest),
    /// The uploaded size differs from the size the client gave (`SIZE_INVALID`).
    #[error("size mismatch: expected {expected} bytes, uploaded {actual}")]
    SizeInvalid {
        /// Size the client gave.
        expected: u64,
        /// Bytes uploaded.
        actual: u64,
    },
    /// A byte range outside the blob (HTTP 416, `UNSUPPORTED`).
    #[error("range {start}-{end} is not satisfiable for {size} bytes")]
    RangeInvalid {
        /// First byte asked for.
        start: u64,
        /// Last byte asked for (inclusive).
        end: u64,
        /// The blob's size.
        size: u64,
    },
    /// No manifest under that tag or digest in the repository (`MANIFEST_UNKNOWN`).
    #[error("manifest unknown: {0}")]
    ManifestUnknown(Reference),
    /// The body is not a manifest layerstore can store (`MANIFEST_INVALID` and friends).
    #[error("manifest invalid: {0}")]
    ManifestInvalid(#[from] ManifestError),
    /// The manifest references blobs or manifests the repository does not have
    /// (`MANIFEST_BLOB_UNKNOWN`, one error per digest).
    #[error("manifest references {} unknown blob(s) or manifest(s)", .0.len())]
    ManifestBlobUnknown(Vec<Digest>),
    /// A manifest pushed by digest whose bytes have another digest (`DIGEST_INVALID`).
    #[error("manifest digest mismatch: pushed as {claimed}, content is {actual}")]
    ManifestDigestMismatch {
        /// The digest in the request.
        claimed: Digest,
        /// The digest of the bytes.
        actual: Digest,
    },
    /// A stored referrer descriptor that cannot be read back.
    #[error("{path}: unreadable referrer descriptor: {source}")]
    ReferrerCorrupt {
        /// The descriptor file.
        path: DriverPath,
        /// Why it does not parse.
        #[source]
        source: ReferrerRecordError,
    },
    /// The repository does not exist (`NAME_UNKNOWN`).
    #[error("repository name unknown: {0}")]
    NameUnknown(RepositoryName),
    /// A link file that does not hold exactly one digest.
    #[error("{path}: unreadable link: {source}")]
    LinkCorrupt {
        /// The link file.
        path: DriverPath,
        /// Why its content is not a digest.
        #[source]
        source: DigestError,
    },
    /// An upload's `startedat` that is not an RFC 3339 time.
    #[error("{0}: unreadable upload start time")]
    StartedAtCorrupt(DriverPath),
    /// A stored hash state that does not decode.
    #[error("{path}: unreadable hash state: {source}")]
    HashStateCorrupt {
        /// The state file.
        path: DriverPath,
        /// Why it does not decode.
        #[source]
        source: StateError,
    },
    /// The upload's data changed size behind this handle (another process appended).
    #[error("upload data is {found} bytes, this handle expected {expected}")]
    UploadConflict {
        /// Size this handle knows.
        expected: u64,
        /// Size found.
        found: u64,
    },
    /// Reading the caller's input stream failed.
    #[error("reading input: {0}")]
    Input(#[source] io::Error),
    /// Writing to the caller's output stream failed.
    #[error("writing output: {0}")]
    Output(#[source] io::Error),
    /// The operating system's random source failed (upload ids).
    #[error("random source unavailable: {0}")]
    Random(getrandom::Error),
    /// The storage driver failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<PathError> for StoreError {
    fn from(e: PathError) -> Self {
        StoreError::Storage(StorageError::InvalidPath(e))
    }
}
