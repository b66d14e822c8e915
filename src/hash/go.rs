//! Go's `crypto/sha256` and `crypto/sha512` `MarshalBinary` form, byte for byte.
//!
//! The distribution registry saves upload hash states in this form at
//! `_uploads/<id>/hashstates/sha256/<offset>`; reading and writing it lets an upload begun there
//! finish here, and the other way round.
//!
//! ```text
//! magic (4) | h[0..8] big-endian (32 or 64) | block buffer (64 or 128) | byte count u64 BE (8)
//! ```
//!
//! SHA-256 states are 108 bytes (magic `sha\x03`); SHA-512 states are 204 (magic `sha\x07`).
//! Only the first `len % block` buffer bytes are live; Go writes zeros after them. Go ignores
//! those bytes on read, but layerstore rejects non-zero ones: they cannot come from a real Go
//! state, and refusing them keeps decode and encode exact inverses.

use super::encoding::{check_size, read_u64, read_words};
use super::state::ResumableHash;
use super::variant::{Sha256, Sha512, Variant};
use super::StateError;

/// Size of a marshalled Go SHA-256 state.
pub const GO_SHA256_STATE_LEN: usize = go_len::<Sha256>();
/// Size of a marshalled Go SHA-512 state.
pub const GO_SHA512_STATE_LEN: usize = go_len::<Sha512>();

const fn go_len<V: Variant>() -> usize {
    4 + 8 * V::WORD_LEN + V::BLOCK_LEN + 8
}

impl<V: Variant> ResumableHash<V> {
    /// Serializes the state exactly as Go's `MarshalBinary` does.
    ///
    /// ```
    /// use layerstore::hash::ResumableSha256;
    /// let mut s = ResumableSha256::new();
    /// s.update(b"abc");
    /// let go = s.to_go_bytes();
    /// assert_eq!(go.len(), 108);
    /// assert_eq!(&go[..4], b"sha\x03");
    /// assert_eq!(&go[36..39], b"abc");
    /// assert_eq!(ResumableSha256::from_go_bytes(&go).unwrap(), s);
    /// ```
    pub fn to_go_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(go_len::<V>());
        out.extend_from_slice(&V::GO_MAGIC);
        for &word in self.chaining() {
            V::put_word(word, &mut out);
        }
        let pending = self.pending();
        out.extend_from_slice(pending);
        out.resize(out.len() + V::BLOCK_LEN - pending.len(), 0);
        out.extend_from_slice(&self.len().to_be_bytes());
        out
    }

    /// Parses Go's `MarshalBinary` form (untrusted input: any malformed state is a
    /// [`StateError`], never a panic).
    pub fn from_go_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let expected = go_len::<V>();
        if bytes.len() >= 4 && bytes[..4] != V::GO_MAGIC {
            return Err(StateError::BadMagic);
        }
        check_size(bytes.len(), expected)?;
        let words_end = 4 + 8 * V::WORD_LEN;
        let buffer_end = words_end + V::BLOCK_LEN;
        let len = read_u64(&bytes[buffer_end..]);
        let pending_len = (len % V::BLOCK_LEN as u64) as usize;
        let (pending, padding) = bytes[words_end..buffer_end].split_at(pending_len);
        if padding.iter().any(|&b| b != 0) {
            return Err(StateError::NonZeroPadding);
        }
        let h = read_words::<V>(&bytes[4..words_end]);
        Self::from_parts(h, pending, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{ResumableSha256, ResumableSha512};

    #[test]
    fn sizes_match_go() {
        assert_eq!(GO_SHA256_STATE_LEN, 108);
        assert_eq!(GO_SHA512_STATE_LEN, 204);
        assert_eq!(ResumableSha512::new().to_go_bytes().len(), 204);
    }

    #[test]
    fn non_zero_padding_and_bad_magic_are_rejected() {
        let mut bytes = ResumableSha256::new().to_go_bytes();
        bytes[40] = 1;
        assert_eq!(
            ResumableSha256::from_go_bytes(&bytes),
            Err(StateError::NonZeroPadding)
        );
        let mut bytes = ResumableSha256::new().to_go_bytes();
        bytes[3] = 2; // SHA-224
        assert_eq!(
            ResumableSha256::from_go_bytes(&bytes),
            Err(StateError::BadMagic)
        );
    }

    #[test]
    fn truncated_and_extended_are_rejected() {
        let bytes = ResumableSha256::new().to_go_bytes();
        for cut in 0..bytes.len() {
            assert!(ResumableSha256::from_go_bytes(&bytes[..cut]).is_err());
        }
        let mut longer = bytes;
        longer.push(0);
        assert!(ResumableSha256::from_go_bytes(&longer).is_err());
    }
}
