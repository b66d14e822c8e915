//! Content digests: the `algorithm:encoded` strings that name every blob.
//!
//! A [`Digest`] is parsed and printed per the OCI image-spec digest grammar:
//!
//! ```text
//! digest              ::= algorithm ":" encoded
//! algorithm           ::= algorithm-component (algorithm-separator algorithm-component)*
//! algorithm-component ::= [a-z0-9]+
//! algorithm-separator ::= [+._-]
//! encoded             ::= [a-zA-Z0-9=_-]+
//! ```
//!
//! On top of the grammar, only the algorithms layerstore can verify are accepted: `sha256`
//! (64 lowercase hex characters), `sha512` (128), and the legacy TarSum forms
//! `tarsum+sha256`, `tarsum.v1+sha256`, `tarsum.dev+sha256` (and their `+sha512` twins) that the
//! 2014 registry used to address layers. Everything else is a [`DigestError`] that says what is
//! wrong; parsing never panics and never allocates more than the (bounded) encoded part.

use std::fmt;
use std::str::FromStr;

/// The longest digest string we accept (`tarsum.dev+sha512:` plus 128 hex characters is 146).
/// Anything longer is rejected before it is scanned, so hostile input costs nothing.
pub const MAX_DIGEST_LEN: usize = 256;

/// A plain hash function, as used for blob digests and inside TarSum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgorithm {
    /// SHA-256: the canonical digest of every blob.
    Sha256,
    /// SHA-512: accepted for client-claimed digests (stored as an alias of the sha256).
    Sha512,
}

impl HashAlgorithm {
    /// The name used in digest strings and storage paths (`sha256`, `sha512`).
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    /// Size of the hash output in bytes (32 or 64).
    pub const fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// Length of the lowercase hex encoding (64 or 128).
    pub const fn hex_len(self) -> usize {
        self.output_len() * 2
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(HashAlgorithm::Sha256),
            "sha512" => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| DigestError::UnsupportedAlgorithm(clip(s)))
    }
}

/// The three TarSum versions of Docker's reference package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TarsumVersion {
    /// `tarsum`: includes mtime, no xattrs.
    V0,
    /// `tarsum.v1`: no mtime, sorted xattrs.
    V1,
    /// `tarsum.dev`: the v1 selector under another label (same hex as v1).
    Dev,
}

impl TarsumVersion {
    /// The version label as it appears before the `+` (`tarsum`, `tarsum.v1`, `tarsum.dev`).
    pub const fn label(self) -> &'static str {
        match self {
            TarsumVersion::V0 => "tarsum",
            TarsumVersion::V1 => "tarsum.v1",
            TarsumVersion::Dev => "tarsum.dev",
        }
    }

    fn from_label(label: &str) -> Option<Self> {
        match label {
            "tarsum" => Some(TarsumVersion::V0),
            "tarsum.v1" => Some(TarsumVersion::V1),
            "tarsum.dev" => Some(TarsumVersion::Dev),
            _ => None,
        }
    }
}

/// The algorithm part of a digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// A plain hash of the bytes.
    Hash(HashAlgorithm),
    /// A Docker TarSum of a tar archive's entries.
    Tarsum {
        /// Which header selector and label.
        version: TarsumVersion,
        /// The hash used for per-file sums and the final sum.
        hash: HashAlgorithm,
    },
}

impl Algorithm {
    /// The canonical algorithm of content-addressed storage.
    pub const SHA256: Algorithm = Algorithm::Hash(HashAlgorithm::Sha256);
    /// SHA-512.
    pub const SHA512: Algorithm = Algorithm::Hash(HashAlgorithm::Sha512);

    /// The hash function whose hex output forms the encoded part.
    pub const fn hash(self) -> HashAlgorithm {
        match self {
            Algorithm::Hash(h) | Algorithm::Tarsum { hash: h, .. } => h,
        }
    }

    /// Parses the algorithm part of a digest (`sha256`, `tarsum.v1+sha256`, ...).
    ///
    /// ```
    /// use layerstore::digest::{Algorithm, HashAlgorithm, TarsumVersion};
    /// assert_eq!("sha512".parse::<Algorithm>().unwrap(), Algorithm::SHA512);
    /// assert_eq!(
    ///     "tarsum.dev+sha256".parse::<Algorithm>().unwrap(),
    ///     Algorithm::Tarsum { version: TarsumVersion::Dev, hash: HashAlgorithm::Sha256 },
    /// );
    /// assert!("md5".parse::<Algorithm>().is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        if !is_algorithm_grammar(s) {
            return Err(DigestError::InvalidAlgorithm(clip(s)));
        }
        if let Some(hash) = HashAlgorithm::from_name(s) {
            return Ok(Algorithm::Hash(hash));
        }
        let tarsum = s.split_once('+').and_then(|(label, hash)| {
            Some(Algorithm::Tarsum {
                version: TarsumVersion::from_label(label)?,
                hash: HashAlgorithm::from_name(hash)?,
            })
        });
        tarsum.ok_or_else(|| DigestError::UnsupportedAlgorithm(clip(s)))
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Algorithm::Hash(h) => f.write_str(h.name()),
            Algorithm::Tarsum { version, hash } => write!(f, "{}+{}", version.label(), hash),
        }
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::parse(s)
    }
}

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The input was empty.
    #[error("empty digest")]
    Empty,
    /// Longer than [`MAX_DIGEST_LEN`]; no supported digest is that long.
    #[error("digest is {0} bytes long, more than any supported digest")]
    TooLong(usize),
    /// No `:` between algorithm and encoded part.
    #[error("digest has no ':' between algorithm and hex")]
    MissingSeparator,
    /// The algorithm part breaks the grammar (`[a-z0-9]+` joined by `+._-`).
    #[error("invalid digest algorithm {0:?}")]
    InvalidAlgorithm(String),
    /// A well-formed algorithm that layerstore does not implement (e.g. `sha384`, `md5`).
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The encoded part contains a character outside lowercase hex.
    #[error("digest hex contains {found:?} at position {position}; expected lowercase hex")]
    InvalidHex {
        /// The offending character.
        found: char,
        /// Its index within the encoded part.
        position: usize,
    },
    /// The encoded part has the wrong length for its algorithm.
    #[error("{algorithm} digest must have {expected} hex characters, found {found}")]
    WrongLength {
        /// The algorithm named by the digest.
        algorithm: Algorithm,
        /// Hex characters that algorithm needs.
        expected: usize,
        /// Hex characters given.
        found: usize,
    },
}

/// A validated content digest, such as `sha256:e3b0c442...b855`.
///
/// Equality, ordering and hashing follow the canonical string, so a `Digest` can key maps.
///
/// ```
/// use layerstore::Digest;
/// let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
///     .parse()
///     .unwrap();
/// assert_eq!(d.algorithm().to_string(), "sha256");
/// assert_eq!(d.hex().len(), 64);
/// assert_eq!(d, Digest::sha256(b""));
/// assert!("sha256:E3B0".parse::<Digest>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses and validates a digest string.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        if s.is_empty() {
            return Err(DigestError::Empty);
        }
        if s.len() > MAX_DIGEST_LEN {
            return Err(DigestError::TooLong(s.len()));
        }
        let (algorithm, encoded) = s.split_once(':').ok_or(DigestError::MissingSeparator)?;
        let algorithm = Algorithm::parse(algorithm)?;
        if let Some((position, found)) = encoded
            .char_indices()
            .find(|&(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(DigestError::InvalidHex { found, position });
        }
        let expected = algorithm.hash().hex_len();
        if encoded.len() != expected {
            return Err(DigestError::WrongLength {
                algorithm,
                expected,
                found: encoded.len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: encoded.to_owned(),
        })
    }

    /// Builds a digest from raw hash output.
    ///
    /// Returns an error when `bytes` is not the algorithm's output length.
    ///
    /// ```
    /// use layerstore::digest::{Algorithm, Digest};
    /// let d = Digest::from_bytes(Algorithm::SHA256, &[0u8; 32]).unwrap();
    /// assert_eq!(d.hex(), "0".repeat(64));
    /// assert!(Digest::from_bytes(Algorithm::SHA256, &[0u8; 31]).is_err());
    /// ```
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<Self, DigestError> {
        let expected = algorithm.hash().output_len();
        if bytes.len() != expected {
            return Err(DigestError::WrongLength {
                algorithm,
                expected: expected * 2,
                found: bytes.len() * 2,
            });
        }
        Ok(Digest {
            algorithm,
            hex: to_hex(bytes),
        })
    }

    /// The sha256 digest of `data`, computed in one go.
    ///
    /// ```
    /// use layerstore::Digest;
    /// assert_eq!(
    ///     Digest::sha256(b"abc").hex(),
    ///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    /// );
    /// ```
    pub fn sha256(data: &[u8]) -> Self {
        use sha2::Digest as _;
        let out = sha2::Sha256::digest(data);
        Digest {
            algorithm: Algorithm::SHA256,
            hex: to_hex(&out),
        }
    }

    /// The algorithm part.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part: lowercase hex of the expected length.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The raw hash bytes the hex encodes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.hex
            .as_bytes()
            .chunks_exact(2)
            .map(|pair| (hex_value(pair[0]) << 4) | hex_value(pair[1]))
            .collect()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Value of one lowercase hex digit already validated by [`Digest::parse`].
fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
}

/// `[a-z0-9]+` components joined by single `+._-` separators.
fn is_algorithm_grammar(s: &str) -> bool {
    let mut previous_was_separator = true; // so a leading separator fails
    for c in s.bytes() {
        match c {
            b'a'..=b'z' | b'0'..=b'9' => previous_was_separator = false,
            b'+' | b'.' | b'_' | b'-' if !previous_was_separator => previous_was_separator = true,
            _ => return false,
        }
    }
    !previous_was_separator
}

/// Copies at most 32 characters of untrusted input into an error message.
fn clip(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_every_supported_form() {
        let sha512 = "a".repeat(128);
        for s in [
            format!("sha256:{EMPTY_SHA256}"),
            format!("sha512:{sha512}"),
            format!("tarsum+sha256:{EMPTY_SHA256}"),
            format!("tarsum.v1+sha256:{EMPTY_SHA256}"),
            format!("tarsum.dev+sha256:{EMPTY_SHA256}"),
            format!("tarsum.v1+sha512:{sha512}"),
        ] {
            let d = Digest::parse(&s).unwrap();
            assert_eq!(d.to_string(), s);
        }
    }

    #[test]
    fn rejects_with_a_precise_error() {
        let cases: &[(&str, DigestError)] = &[
            ("", DigestError::Empty),
            ("sha256", DigestError::MissingSeparator),
            (":abc", DigestError::InvalidAlgorithm(String::new())),
            ("SHA256:abc", DigestError::InvalidAlgorithm("SHA256".into())),
            (
                "sha256+:abc",
                DigestError::InvalidAlgorithm("sha256+".into()),
            ),
            (
                "sha+.256:abc",
                DigestError::InvalidAlgorithm("sha+.256".into()),
            ),
            (
                "sha384:abc",
                DigestError::UnsupportedAlgorithm("sha384".into()),
            ),
            (
                "tarsum.v2+sha256:ab",
                DigestError::UnsupportedAlgorithm("tarsum.v2+sha256".into()),
            ),
            (
                "tarsum+md5:ab",
                DigestError::UnsupportedAlgorithm("tarsum+md5".into()),
            ),
            (
                "sha256:ABCD",
                DigestError::InvalidHex {
                    found: 'A',
                    position: 0,
                },
            ),
            (
                "sha256:ab:cd",
                DigestError::InvalidHex {
                    found: ':',
                    position: 2,
                },
            ),
            (
                "sha256:abcd",
                DigestError::WrongLength {
                    algorithm: Algorithm::SHA256,
                    expected: 64,
                    found: 4,
                },
            ),
            (
                "sha256:",
                DigestError::WrongLength {
                    algorithm: Algorithm::SHA256,
                    expected: 64,
                    found: 0,
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Digest::parse(input).unwrap_err(),
                *expected,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn overlong_and_non_ascii_input_is_an_error_not_a_panic() {
        assert_eq!(
            Digest::parse(&"a".repeat(10_000)).unwrap_err(),
            DigestError::TooLong(10_000)
        );
        assert!(Digest::parse("sha256:é").is_err());
        assert!(Digest::parse("é:00").is_err());
        let long_alg = format!("{}:{EMPTY_SHA256}", "x".repeat(100));
        match Digest::parse(&long_alg).unwrap_err() {
            DigestError::UnsupportedAlgorithm(shown) => assert_eq!(shown.len(), 32),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bytes_round_trip() {
        let d = Digest::sha256(b"hello");
        let again = Digest::from_bytes(d.algorithm(), &d.to_bytes()).unwrap();
        assert_eq!(d, again);
    }

    #[test]
    fn serde_uses_the_string_form() {
        let d = Digest::sha256(b"x");
        let json = format!("\"{d}\"");
        let back: Digest = serde_json_like(&json);
        assert_eq!(back, d);
    }

    /// Minimal string deserialization through serde's value deserializer (no serde_json dep).
    fn serde_json_like(json: &str) -> Digest {
        use serde::de::value::{Error, StrDeserializer};
        use serde::de::IntoDeserializer;
        let inner = json.trim_matches('"');
        let de: StrDeserializer<'_, Error> = inner.into_deserializer();
        serde::Deserialize::deserialize(de).unwrap()
    }
}
