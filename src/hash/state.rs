//! [`ResumableHash`]: a SHA-2 state that is plain data (chaining values, partial block, byte
//! count), so it can be saved after any byte and resumed anywhere.

use super::variant::{Sha256, Sha512, Variant};
use super::StateError;
use crate::digest::{Algorithm, Digest};

/// The largest block of any variant (SHA-512's 128 bytes); SHA-256 uses the first 64.
pub(crate) const MAX_BLOCK_LEN: usize = 128;

/// A resumable SHA-2 computation.
///
/// Unlike `sha2::Sha256`, every field is visible to layerstore's encoders, so the state can be
/// written to storage and picked up later by another process (or by Go's `crypto/sha256`).
/// [`update`](Self::update) compresses all whole blocks of its input in one call into `sha2`, so
/// it runs at the same speed as `sha2::Sha256`.
///
/// ```
/// use layerstore::hash::ResumableSha256;
/// use layerstore::Digest;
///
/// let mut first = ResumableSha256::new();
/// first.update(b"hello ");
/// let saved = first.encode(); // store these bytes anywhere
///
/// let mut resumed = ResumableSha256::decode(&saved).unwrap();
/// resumed.update(b"world");
/// assert_eq!(resumed.digest(), Digest::sha256(b"hello world"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ResumableHash<V: Variant> {
    /// Chaining values after every whole block hashed so far.
    h: [V::Word; 8],
    /// The unhashed tail: `len % BLOCK_LEN` bytes are used; the rest is always zero.
    buf: [u8; MAX_BLOCK_LEN],
    /// Total bytes fed in.
    len: u64,
}

/// Resumable SHA-256.
pub type ResumableSha256 = ResumableHash<Sha256>;
/// Resumable SHA-512.
pub type ResumableSha512 = ResumableHash<Sha512>;

impl<V: Variant> Default for ResumableHash<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Variant> std::fmt::Debug for ResumableHash<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumableHash")
            .field("algorithm", &V::ALGORITHM)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<V: Variant> ResumableHash<V> {
    /// A fresh state: nothing hashed yet.
    pub fn new() -> Self {
        ResumableHash {
            h: V::IV,
            buf: [0; MAX_BLOCK_LEN],
            len: 0,
        }
    }

    /// Total bytes hashed so far: the offset at which this state resumes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing has been hashed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feeds `data`. All whole blocks go to `sha2` in a single multi-block call.
    pub fn update(&mut self, mut data: &[u8]) {
        let block_len = V::BLOCK_LEN;
        let pending = self.pending_len();
        // Bounded by the input's own length, which a slice keeps below 2^63.
        self.len = self.len.wrapping_add(data.len() as u64);
        if pending > 0 {
            let take = (block_len - pending).min(data.len());
            self.buf[pending..pending + take].copy_from_slice(&data[..take]);
            data = &data[take..];
            if pending + take < block_len {
                return;
            }
            V::compress(&mut self.h, &self.buf[..block_len]);
        }
        let whole = data.len() - data.len() % block_len;
        if whole > 0 {
            V::compress(&mut self.h, &data[..whole]);
        }
        let tail = &data[whole..];
        self.buf[..tail.len()].copy_from_slice(tail);
        self.buf[tail.len()..].fill(0);
    }

    /// The hash of everything fed so far. The state itself is unchanged and can keep going.
    pub fn finalize(&self) -> Vec<u8> {
        let mut h = self.h;
        let pending = self.pending_len();
        let mut tail = [0u8; 2 * MAX_BLOCK_LEN];
        tail[..pending].copy_from_slice(&self.buf[..pending]);
        tail[pending] = 0x80;
        let blocks = if pending + 1 + V::LENGTH_FIELD_LEN <= V::BLOCK_LEN {
            1
        } else {
            2
        };
        let end = blocks * V::BLOCK_LEN;
        // The bit length, big-endian, right-aligned in the length field (u128 holds both sizes).
        let bits = u128::from(self.len) << 3;
        let field = &bits.to_be_bytes()[16 - V::LENGTH_FIELD_LEN..];
        tail[end - V::LENGTH_FIELD_LEN..end].copy_from_slice(field);
        V::compress(&mut h, &tail[..end]);
        let mut out = Vec::with_capacity(8 * V::WORD_LEN);
        for word in h {
            V::put_word(word, &mut out);
        }
        out
    }

    /// The [`Digest`] of everything fed so far.
    pub fn digest(&self) -> Digest {
        Digest::from_bytes(Algorithm::Hash(V::ALGORITHM), &self.finalize())
            .expect("finalize returns the algorithm's output length")
    }

    /// Bytes waiting in the partial block.
    pub(crate) fn pending_len(&self) -> usize {
        // The remainder is below BLOCK_LEN (at most 128), so the cast is lossless.
        (self.len % V::BLOCK_LEN as u64) as usize
    }

    /// The chaining values.
    pub(crate) fn chaining(&self) -> &[V::Word; 8] {
        &self.h
    }

    /// The used part of the partial block.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[..self.pending_len()]
    }

    /// Rebuilds a state from decoded parts: the single gate every decoder goes through, so no
    /// decoder can produce a state whose byte count disagrees with its buffer.
    pub(crate) fn from_parts(
        h: [V::Word; 8],
        pending: &[u8],
        len: u64,
    ) -> Result<Self, StateError> {
        if len > V::MAX_LEN {
            return Err(StateError::LengthOutOfRange(len));
        }
        let mut state = ResumableHash {
            h,
            buf: [0; MAX_BLOCK_LEN],
            len,
        };
        if pending.len() != state.pending_len() {
            return Err(StateError::PendingMismatch {
                len,
                pending: pending.len(),
            });
        }
        state.buf[..pending.len()].copy_from_slice(pending);
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn one_shot_256(data: &[u8]) -> Vec<u8> {
        sha2::Sha256::digest(data).to_vec()
    }

    #[test]
    fn matches_sha2_around_every_padding_boundary() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..data.len() {
            let mut s = ResumableSha256::new();
            s.update(&data[..n]);
            assert_eq!(s.finalize(), one_shot_256(&data[..n]), "len {n}");
            let mut s = ResumableSha512::new();
            s.update(&data[..n]);
            assert_eq!(
                s.finalize(),
                sha2::Sha512::digest(&data[..n]).to_vec(),
                "len {n}"
            );
        }
    }

    #[test]
    fn byte_at_a_time_equals_one_call() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut s = ResumableSha256::new();
        for b in &data {
            s.update(std::slice::from_ref(b));
        }
        assert_eq!(s.len(), 1000);
        assert_eq!(s.finalize(), one_shot_256(&data));
    }

    #[test]
    fn finalize_leaves_the_state_usable() {
        let mut s = ResumableSha256::new();
        s.update(b"ab");
        let _ = s.finalize();
        s.update(b"c");
        assert_eq!(s.finalize(), one_shot_256(b"abc"));
    }

    #[test]
    fn from_parts_rejects_disagreeing_lengths() {
        let err = ResumableSha256::from_parts(Sha256::IV, b"ab", 3).unwrap_err();
        assert_eq!(err, StateError::PendingMismatch { len: 3, pending: 2 });
        let err = ResumableSha256::from_parts(Sha256::IV, b"", u64::MAX).unwrap_err();
        assert_eq!(err, StateError::LengthOutOfRange(u64::MAX));
    }
}
