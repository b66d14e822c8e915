//! Resumable SHA-256 and SHA-512: hash states that can be saved after any byte and resumed
//! later, in another process or on another machine.
//!
//! - [`ResumableHash`] (aliases [`ResumableSha256`], [`ResumableSha512`]) holds the chaining
//!   values, the partial block and the byte count, and drives `sha2`'s block function.
//! - Two encodings, both directions: layerstore's own checksummed format
//!   ([`ResumableHash::encode`], see [`encoding`]) and Go's `MarshalBinary` form
//!   ([`ResumableHash::to_go_bytes`], see [`go`]), which the distribution registry stores.
//! - [`Hasher`] picks the variant at run time from a [`HashAlgorithm`].
//!
//! Pure code: no I/O, no clocks.

pub mod encoding;
pub mod go;
mod state;
mod variant;

pub use go::{GO_SHA256_STATE_LEN, GO_SHA512_STATE_LEN};
pub use state::{ResumableHash, ResumableSha256, ResumableSha512};
pub use variant::{Sha256, Sha512, Variant};

use crate::digest::{Digest, HashAlgorithm};

/// Why bytes could not be decoded into a hash state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Fewer bytes than the format needs.
    #[error("hash state truncated: expected {expected} bytes, found {found}")]
    Truncated {
        /// Bytes the format needs.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// More bytes than the format allows.
    #[error("hash state has trailing bytes: expected {expected} bytes, found {found}")]
    TrailingBytes {
        /// Bytes the format needs.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// The identifier at the start is not the one expected.
    #[error("not a hash state of the expected kind (bad magic)")]
    BadMagic,
    /// A layerstore state written by a newer format version.
    #[error("unsupported hash state format version {0}")]
    UnsupportedVersion(u8),
    /// An algorithm code this build does not know.
    #[error("unknown hash state algorithm code {0}")]
    UnknownAlgorithm(u8),
    /// A valid state, but of another algorithm than the one asked for.
    #[error("hash state is {found}, expected {expected}")]
    WrongAlgorithm {
        /// The algorithm asked for.
        expected: HashAlgorithm,
        /// The algorithm in the state.
        found: HashAlgorithm,
    },
    /// The CRC-32 does not match: the state was corrupted.
    #[error("hash state checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    ChecksumMismatch {
        /// CRC found in the state.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Bytes after the live part of a Go block buffer are not zero.
    #[error("hash state block buffer has non-zero bytes past its live part")]
    NonZeroPadding,
    /// The partial block's size disagrees with the byte count.
    #[error("hash state holds {pending} pending bytes but its length {len} implies otherwise")]
    PendingMismatch {
        /// The byte count.
        len: u64,
        /// Pending bytes supplied.
        pending: usize,
    },
    /// A byte count beyond what the algorithm can hash.
    #[error("hash state length {0} exceeds the algorithm's limit")]
    LengthOutOfRange(u64),
}

/// A resumable hash whose algorithm is chosen at run time.
///
/// ```
/// use layerstore::digest::HashAlgorithm;
/// use layerstore::hash::Hasher;
///
/// let mut h = Hasher::new(HashAlgorithm::Sha512);
/// h.update(b"abc");
/// let again = Hasher::decode(&h.encode()).unwrap();
/// assert_eq!(again.digest(), h.digest());
/// assert!(again.digest().to_string().starts_with("sha512:ddaf35a1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hasher {
    /// SHA-256.
    Sha256(ResumableSha256),
    /// SHA-512.
    Sha512(ResumableSha512),
}

impl Hasher {
    /// A fresh state for `algorithm`.
    pub fn new(algorithm: HashAlgorithm) -> Self {
        match algorithm {
            HashAlgorithm::Sha256 => Hasher::Sha256(ResumableSha256::new()),
            HashAlgorithm::Sha512 => Hasher::Sha512(ResumableSha512::new()),
        }
    }

    /// The algorithm being computed.
    pub fn algorithm(&self) -> HashAlgorithm {
        match self {
            Hasher::Sha256(_) => HashAlgorithm::Sha256,
            Hasher::Sha512(_) => HashAlgorithm::Sha512,
        }
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(s) => s.update(data),
            Hasher::Sha512(s) => s.update(data),
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        match self {
            Hasher::Sha256(s) => s.len(),
            Hasher::Sha512(s) => s.len(),
        }
    }

    /// True when nothing has been hashed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The digest of everything fed so far; the state can keep going.
    pub fn digest(&self) -> Digest {
        match self {
            Hasher::Sha256(s) => s.digest(),
            Hasher::Sha512(s) => s.digest(),
        }
    }

    /// layerstore's own encoding (it names the algorithm).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Hasher::Sha256(s) => s.encode(),
            Hasher::Sha512(s) => s.encode(),
        }
    }

    /// Decodes layerstore's own encoding of either algorithm.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        match encoding::peek_algorithm(bytes)? {
            HashAlgorithm::Sha256 => ResumableSha256::decode(bytes).map(Hasher::Sha256),
            HashAlgorithm::Sha512 => ResumableSha512::decode(bytes).map(Hasher::Sha512),
        }
    }

    /// Go's `MarshalBinary` form.
    pub fn to_go_bytes(&self) -> Vec<u8> {
        match self {
            Hasher::Sha256(s) => s.to_go_bytes(),
            Hasher::Sha512(s) => s.to_go_bytes(),
        }
    }

    /// Decodes Go's form of either algorithm, told apart by the magic.
    pub fn from_go_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        if bytes.starts_with(&Sha512::GO_MAGIC) {
            ResumableSha512::from_go_bytes(bytes).map(Hasher::Sha512)
        } else {
            ResumableSha256::from_go_bytes(bytes).map(Hasher::Sha256)
        }
    }
}
