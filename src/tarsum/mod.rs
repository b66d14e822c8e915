//! Docker's legacy TarSum (`tarsum`, `tarsum.v1`, `tarsum.dev`), streaming and resumable.
//!
//! TarSum hashes each tar entry's selected header fields and data into a per-file sum, sorts
//! those sums and hashes them (after optional "extra" bytes) into one digest such as
//! `tarsum.v1+sha256:<hex>`. The rules, including every quirk of Go's `archive/tar` reader
//! that the reference results depend on, are in `shared/docs/tarsum-spec.md`; the design of
//! this module is in `docs/tarsum.md`.
//!
//! | file | what it is |
//! |---|---|
//! | [`header`] | pure decoding of one 512-byte header block |
//! | `pax` | PAX records and Go's number parsers |
//! | `entry` | header + PAX + GNU long names merged into one entry; refusal rules |
//! | `select` | the bytes each version hashes for a header |
//! | `parser` | the sans-I/O state machine that ties them together |
//! | `name`, `sums`, `gosort` | name normalisation, combining sums, Go's sort ported |
//! | `state` | the versioned, checksummed state format |
//! | [`gzip`] | resumable gzip front end, [`TarSumStream`] |
//!
//! [`TarSum`] takes plain tar bytes; [`TarSumStream`] also takes gzip and gives checkpoints.

mod entry;
mod error;
mod gosort;
pub mod gzip;
pub mod header;
mod name;
mod parser;
mod pax;
mod select;
mod state;
mod sums;

pub use error::{TarsumError, TarsumStateError};
pub use gzip::{Checkpoint, TarSumStream};

use crate::digest::{Algorithm, Digest, HashAlgorithm, TarsumVersion};
use crate::hash::Hasher;
use parser::Parser;

/// A TarSum computation over a plain (uncompressed) tar stream.
///
/// Feed the archive in chunks of any size with [`update`](Self::update), then call
/// [`finish`](Self::finish). The state can be saved after any byte with
/// [`encode`](Self::encode) and resumed with [`decode`](Self::decode).
///
/// ```
/// use layerstore::digest::{HashAlgorithm, TarsumVersion};
/// use layerstore::tarsum::TarSum;
///
/// // An archive with no entries: just the end-of-archive marker.
/// let archive = [0u8; 1024];
/// let mut sum = TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256);
/// sum.update(&archive[..700]).unwrap();
/// let saved = sum.encode(); // store anywhere, resume later
/// let mut resumed = TarSum::decode(&saved).unwrap();
/// resumed.update(&archive[700..]).unwrap();
/// assert_eq!(
///     resumed.finish().unwrap().to_string(),
///     "tarsum.v1+sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarSum {
    parser: Parser,
    extra: Vec<u8>,
}

impl TarSum {
    /// A fresh computation.
    pub fn new(version: TarsumVersion, hash: HashAlgorithm) -> Self {
        TarSum {
            parser: Parser::new(version, hash),
            extra: Vec::new(),
        }
    }

    /// Sets the "extra" bytes hashed before the per-file sums (Docker v1 used the image JSON).
    ///
    /// A saved state only decodes with at most 64 MiB of extra bytes.
    pub fn with_extra(mut self, extra: impl Into<Vec<u8>>) -> Self {
        self.extra = extra.into();
        self
    }

    /// Hashes uname and gname with their real values, as Docker did before March 2018
    /// (moby `a422774e59`, "Fix tarsum for go 1.10"). Registry v1-era checksums need this;
    /// the reference (and the default) hashes them empty.
    pub fn with_legacy_owner_names(mut self) -> Self {
        self.parser.legacy_names = true;
        self
    }

    /// The version being computed.
    pub fn version(&self) -> TarsumVersion {
        self.parser.version
    }

    /// The hash being used.
    pub fn hash(&self) -> HashAlgorithm {
        self.parser.hash
    }

    /// The algorithm of the digest [`finish`](Self::finish) returns.
    pub fn algorithm(&self) -> Algorithm {
        Algorithm::Tarsum {
            version: self.parser.version,
            hash: self.parser.hash,
        }
    }

    /// Feeds the next bytes of the tar stream. After an error every later call fails too.
    pub fn update(&mut self, data: &[u8]) -> Result<(), TarsumError> {
        self.parser.update(data)
    }

    /// Tar bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.parser.offset
    }

    /// Entries summed so far.
    pub fn entry_count(&self) -> usize {
        self.parser.sums.len()
    }

    /// True once the end-of-archive marker was read; later bytes are ignored.
    pub fn is_done(&self) -> bool {
        self.parser.is_done()
    }

    /// The TarSum of everything fed, treating the input as ended here.
    ///
    /// Fails when the reference would: the input ends inside a header, a meta payload or an
    /// entry's data, or an earlier update failed. The state is unchanged.
    pub fn finish(&self) -> Result<Digest, TarsumError> {
        self.parser.check_end()?;
        let raw = sums::combine(
            Hasher::new(self.parser.hash),
            &self.extra,
            &self.parser.sums,
        );
        Ok(Digest::from_bytes(self.algorithm(), &raw)
            .expect("the hash returns its algorithm's output length"))
    }

    /// Serializes the whole state (see `docs/tarsum.md` for the format).
    pub fn encode(&self) -> Vec<u8> {
        state::encode(&self.parser, &self.extra)
    }

    /// Restores a state written by [`encode`](Self::encode). Corrupt or hostile bytes give an
    /// error; no allocation exceeds the input's own size.
    pub fn decode(bytes: &[u8]) -> Result<Self, TarsumStateError> {
        let (parser, extra) = state::decode(bytes)?;
        Ok(TarSum { parser, extra })
    }

    /// The machine, for checkpoints taken by [`TarSumStream`].
    pub(crate) fn parser_ref(&self) -> &Parser {
        &self.parser
    }

    /// The extra bytes, for checkpoints taken by [`TarSumStream`].
    pub(crate) fn extra_ref(&self) -> &[u8] {
        &self.extra
    }
}
