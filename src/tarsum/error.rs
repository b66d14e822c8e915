//! Errors of TarSum computation and of TarSum state decoding.
//!
//! Every archive the reference implementation rejects maps to a precise [`TarsumError`]
//! variant carrying the input offset where the problem was found; corrupt or hostile saved
//! states map to [`TarsumStateError`].

use crate::hash::StateError;

/// Why an archive has no TarSum (the Go reference reports an error for all of these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TarsumError {
    /// A header block whose checksum field does not parse or does not match its bytes.
    #[error("invalid tar header at offset {offset}: bad checksum")]
    BadChecksum {
        /// Offset of the header block in the tar stream.
        offset: u64,
    },
    /// A numeric header field that is neither octal nor valid base-256.
    #[error("invalid tar header at offset {offset}: field {field} is not a number")]
    BadNumericField {
        /// Offset of the header block in the tar stream.
        offset: u64,
        /// Name of the field.
        field: &'static str,
    },
    /// An all-zero block followed by a non-zero block.
    #[error("invalid tar header at offset {offset}: zero block followed by a non-zero block")]
    ZeroBlockThenData {
        /// Offset of the non-zero block.
        offset: u64,
    },
    /// The input ended inside a header block, an entry's data or a meta entry's payload.
    #[error("unexpected end of archive at offset {offset} (inside {inside})")]
    UnexpectedEof {
        /// Bytes of tar stream seen.
        offset: u64,
        /// What was being read.
        inside: &'static str,
    },
    /// A malformed PAX extended-header record.
    #[error("invalid PAX record in the extended header ending at offset {offset}")]
    InvalidPaxRecord {
        /// Offset just past the extended header's payload.
        offset: u64,
    },
    /// A PAX numeric value (uid, gid, size, mtime, atime, ctime) that does not parse.
    #[error("invalid PAX {key} value for the entry at offset {offset}")]
    InvalidPaxValue {
        /// Offset of the entry's header block.
        offset: u64,
        /// The record key.
        key: &'static str,
    },
    /// A PAX or GNU long-name payload larger than 1 MiB.
    #[error("meta entry at offset {offset} is {size} bytes, more than the 1 MiB limit")]
    MetaTooLarge {
        /// Offset of the meta header block.
        offset: u64,
        /// Its declared size.
        size: i64,
    },
    /// A data-bearing entry with a negative size.
    #[error("entry at offset {offset} has a negative size")]
    NegativeSize {
        /// Offset of the header block.
        offset: u64,
    },
    /// A regular file or device whose name ends in `/`: the reference's tar writer refuses to
    /// re-encode it, so the reference has no sum.
    #[error("entry at offset {offset} ({name:?}) is not a directory but its name ends in '/'")]
    TrailingSlash {
        /// Offset of the header block.
        offset: u64,
        /// The name (lossy UTF-8, at most 256 characters).
        name: String,
    },
    /// A GNU or PAX sparse file; layerstore does not expand sparse maps.
    #[error("entry at offset {offset} is a sparse file, which is not supported")]
    SparseUnsupported {
        /// Offset of the header block.
        offset: u64,
    },
    /// A malformed gzip member header.
    #[error("invalid gzip header at compressed offset {offset}")]
    GzipHeader {
        /// Offset in the compressed input.
        offset: u64,
    },
    /// Corrupt deflate data.
    #[error("corrupt deflate data near compressed offset {offset}")]
    Deflate {
        /// Offset in the compressed input.
        offset: u64,
    },
    /// A gzip member whose CRC-32 or length trailer does not match its data.
    #[error("gzip trailer mismatch (CRC-32 or length) at compressed offset {offset}")]
    GzipChecksum {
        /// Offset of the trailer.
        offset: u64,
    },
    /// The compressed input ended inside a gzip member.
    #[error("gzip stream truncated at compressed offset {offset}")]
    GzipTruncated {
        /// Bytes of compressed input seen.
        offset: u64,
    },
    /// An earlier call failed; the computation cannot continue.
    #[error("an earlier error stopped this TarSum computation")]
    AlreadyFailed,
}

/// Why saved TarSum state bytes cannot be resumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TarsumStateError {
    /// The bytes end before the structure does.
    #[error("tarsum state truncated")]
    Truncated,
    /// Bytes left over after the structure.
    #[error("tarsum state has {0} trailing bytes")]
    TrailingBytes(usize),
    /// Not a TarSum state.
    #[error("not a tarsum state (bad magic)")]
    BadMagic,
    /// Written by an unknown format version.
    #[error("unsupported tarsum state format version {0}")]
    UnsupportedVersion(u8),
    /// The CRC-32 does not match: the state was corrupted.
    #[error("tarsum state checksum mismatch")]
    ChecksumMismatch,
    /// A length field beyond its limit.
    #[error("tarsum state field {field} has length {len}, above its limit")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The length found.
        len: u64,
    },
    /// A field whose value is impossible (unknown code, inconsistent phase).
    #[error("tarsum state field {0} is invalid")]
    Invalid(&'static str),
    /// The embedded hash state does not decode.
    #[error("tarsum state holds a bad hash state: {0}")]
    Hash(#[from] StateError),
}
