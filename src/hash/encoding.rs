//! layerstore's own hash-state format: versioned, self-describing and checksummed.
//!
//! ```text
//! offset  size        field
//! 0       4           magic "LSHS"
//! 4       1           format version (1)
//! 5       1           algorithm: 1 = sha256, 2 = sha512
//! 6       8           bytes hashed so far, big-endian u64
//! 14      8 * W       chaining values, big-endian (W = 4 for sha256, 8 for sha512)
//! ..      len % B     the unhashed tail of the partial block (B = 64 or 128)
//! ..      4           CRC-32 (IEEE) of every byte before it, big-endian
//! ```
//!
//! The tail is stored without padding, so the total size follows from the byte count: any
//! truncated or extended input is caught by the size check, and any flipped bit by the CRC.

use super::state::ResumableHash;
use super::variant::Variant;
use super::StateError;
use crate::digest::HashAlgorithm;

/// The four bytes every layerstore hash state starts with.
pub const MAGIC: [u8; 4] = *b"LSHS";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;

const HEADER_LEN: usize = 4 + 1 + 1 + 8;
const CRC_LEN: usize = 4;

/// The algorithm byte of the own format.
pub(crate) fn algorithm_code(algorithm: HashAlgorithm) -> u8 {
    match algorithm {
        HashAlgorithm::Sha256 => 1,
        HashAlgorithm::Sha512 => 2,
    }
}

/// Reads the algorithm named by an encoded state's header, checking magic and version first.
pub(crate) fn peek_algorithm(bytes: &[u8]) -> Result<HashAlgorithm, StateError> {
    if bytes.len() < HEADER_LEN {
        return Err(StateError::Truncated {
            expected: HEADER_LEN,
            found: bytes.len(),
        });
    }
    if bytes[..4] != MAGIC {
        return Err(StateError::BadMagic);
    }
    if bytes[4] != VERSION {
        return Err(StateError::UnsupportedVersion(bytes[4]));
    }
    match bytes[5] {
        1 => Ok(HashAlgorithm::Sha256),
        2 => Ok(HashAlgorithm::Sha512),
        other => Err(StateError::UnknownAlgorithm(other)),
    }
}

impl<V: Variant> ResumableHash<V> {
    /// Serializes the state in layerstore's own format (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(algorithm_code(V::ALGORITHM));
        out.extend_from_slice(&self.len().to_be_bytes());
        for &word in self.chaining() {
            V::put_word(word, &mut out);
        }
        out.extend_from_slice(self.pending());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Size of [`encode`](Self::encode)'s output for this state.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 8 * V::WORD_LEN + self.pending_len() + CRC_LEN
    }

    /// Parses a state written by [`encode`](Self::encode).
    ///
    /// The input is untrusted: a wrong magic, version or algorithm, a size that disagrees with
    /// the byte count, or a failed CRC is a [`StateError`]. Nothing is allocated from sizes found
    /// in the input.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let algorithm = peek_algorithm(bytes)?;
        if algorithm != V::ALGORITHM {
            return Err(StateError::WrongAlgorithm {
                expected: V::ALGORITHM,
                found: algorithm,
            });
        }
        let len = read_u64(&bytes[6..HEADER_LEN]);
        // Below 128, so the cast is lossless.
        let pending_len = (len % V::BLOCK_LEN as u64) as usize;
        let words_end = HEADER_LEN + 8 * V::WORD_LEN;
        let expected = words_end + pending_len + CRC_LEN;
        check_size(bytes.len(), expected)?;
        let (body, crc) = bytes.split_at(expected - CRC_LEN);
        let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(StateError::ChecksumMismatch { stored, computed });
        }
        let h = read_words::<V>(&bytes[HEADER_LEN..words_end]);
        Self::from_parts(h, &body[words_end..], len)
    }
}

/// Exact-size check shared by both formats.
pub(crate) fn check_size(found: usize, expected: usize) -> Result<(), StateError> {
    match found.cmp(&expected) {
        std::cmp::Ordering::Less => Err(StateError::Truncated { expected, found }),
        std::cmp::Ordering::Greater => Err(StateError::TrailingBytes { expected, found }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// Eight big-endian chaining words from exactly `8 * WORD_LEN` bytes.
pub(crate) fn read_words<V: Variant>(bytes: &[u8]) -> [V::Word; 8] {
    let mut h = V::IV;
    for (word, chunk) in h.iter_mut().zip(bytes.chunks_exact(V::WORD_LEN)) {
        *word = V::get_word(chunk);
    }
    h
}

/// A big-endian u64 from exactly 8 bytes.
pub(crate) fn read_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(bytes);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use crate::hash::{ResumableSha256, ResumableSha512, StateError};

    fn sample() -> ResumableSha256 {
        let mut s = ResumableSha256::new();
        s.update(&[7u8; 100]); // one block hashed, 36 bytes pending
        s
    }

    #[test]
    fn round_trips_and_continues() {
        let s = sample();
        let bytes = s.encode();
        assert_eq!(bytes.len(), 14 + 32 + 36 + 4);
        assert_eq!(ResumableSha256::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(
                ResumableSha256::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            ResumableSha256::decode(&longer),
            Err(StateError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let bytes = sample().encode();
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(ResumableSha256::decode(&bad).is_err(), "bit {i}");
        }
    }

    #[test]
    fn wrong_algorithm_is_named() {
        let bytes = ResumableSha512::new().encode();
        assert!(matches!(
            ResumableSha256::decode(&bytes),
            Err(StateError::WrongAlgorithm { .. })
        ));
    }
}
