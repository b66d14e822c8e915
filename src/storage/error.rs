//! [`StorageError`]: everything a storage driver can report, with the path it concerns.

use std::io;

use super::path::{DriverPath, PathError};

/// A failed storage driver operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Nothing exists at the path.
    #[error("{0}: not found")]
    NotFound(DriverPath),
    /// The string given as a path is not a valid [`DriverPath`].
    #[error("invalid storage path: {0}")]
    InvalidPath(#[from] PathError),
    /// A read started beyond the end of the file.
    #[error("{path}: offset {offset} is beyond the end ({size} bytes)")]
    InvalidOffset {
        /// The file.
        path: DriverPath,
        /// Requested offset.
        offset: u64,
        /// The file's size.
        size: u64,
    },
    /// A small-file read ([`StorageDriver::get_content`](super::StorageDriver::get_content)) of
    /// a file larger than [`MAX_CONTENT_LEN`](super::MAX_CONTENT_LEN).
    #[error("{path}: {size} bytes is too large to read whole (limit {limit})")]
    TooLarge {
        /// The file.
        path: DriverPath,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A file operation on a directory.
    #[error("{0}: is a directory")]
    IsDirectory(DriverPath),
    /// A directory operation on a file.
    #[error("{0}: not a directory")]
    NotADirectory(DriverPath),
    /// The underlying storage failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation (`open`, `read`, `rename`, `fsync`, ...).
        op: &'static str,
        /// The path it was applied to.
        path: DriverPath,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The storage backend could not be reached or refused the request (an object store that is
    /// down, throttling, or rejecting the credentials). Retried inside the driver first; what
    /// comes out here is worth a 503 and a retry later.
    #[error("{op} {path}: storage backend unavailable: {message}")]
    Unavailable {
        /// The operation (`GetObject`, `PutObject`, ...).
        op: &'static str,
        /// The path it was applied to.
        path: DriverPath,
        /// What the backend said.
        message: String,
    },
    /// The storage backend answered with an error that retrying will not fix.
    #[error("{op} {path}: {message}")]
    Backend {
        /// The operation (`GetObject`, `PutObject`, ...).
        op: &'static str,
        /// The path it was applied to.
        path: DriverPath,
        /// What the backend said.
        message: String,
    },
}

impl StorageError {
    /// True for [`StorageError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound(_))
    }

    /// Wraps an I/O error, turning "no such file" into [`StorageError::NotFound`].
    pub(crate) fn io(op: &'static str, path: &DriverPath, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            StorageError::NotFound(path.clone())
        } else {
            StorageError::Io {
                op,
                path: path.clone(),
                source,
            }
        }
    }
}
