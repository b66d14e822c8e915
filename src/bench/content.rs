//! Benchmark content: random-looking bytes that are a pure function of `(seed, offset)`.
//!
//! Why a counter-based generator (wyrand's output function applied to the word index)
//! rather than a sequential PRNG or `rand`'s ChaCha: any byte range can be regenerated without
//! generating what precedes it. That lets the client verify a 4 KiB range reply by regenerating
//! those 4 KiB, compute the digest of a 1 GiB blob in a cheap first pass and then stream the same
//! bytes again as the request body, and keep no buffer larger than one chunk. It runs at several
//! GB/s on one core (a few multiplies per 8 bytes), far above SHA-256 and the network path,
//! and needs no dependency. Statistical quality only has to defeat compression and
//! deduplication; a fresh random seed per run makes every blob new to the server.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use indicatif::ProgressBar;

use crate::digest::{Digest, HashAlgorithm};
use crate::hash::Hasher;

/// Size of the pieces a [`ContentBody`] hands to hyper, and of the digest pass's buffer.
pub const PIECE_SIZE: usize = 256 * 1024;

/// A virtual blob of `len` bytes determined by `seed`.
///
/// ```
/// use layerstore::bench::content::Content;
///
/// let blob = Content::new(42, 100);
/// let mut all = vec![0; 100];
/// blob.fill(0, &mut all);
/// let mut middle = vec![0; 10];
/// blob.fill(37, &mut middle);
/// assert_eq!(&all[37..47], &middle[..]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Content {
    seed: u64,
    len: u64,
}

impl Content {
    /// The blob of `len` bytes generated from `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        Content { seed, len }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the bytes at `offset..offset + buf.len()` into `buf` (the generator is defined
    /// past `len` too; callers bound their ranges).
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut word_index = offset / 8;
        let skip = (offset % 8) as usize;
        let mut rest = buf;
        if skip != 0 {
            let bytes = self.word(word_index).to_le_bytes();
            let take = rest.len().min(8 - skip);
            let (head, tail) = rest.split_at_mut(take);
            head.copy_from_slice(&bytes[skip..skip + take]);
            rest = tail;
            word_index += 1;
        }
        let mut chunks = rest.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.word(word_index).to_le_bytes());
            word_index += 1;
        }
        let tail = chunks.into_remainder();
        let len = tail.len();
        tail.copy_from_slice(&self.word(word_index).to_le_bytes()[..len]);
    }

    /// The bytes at `offset..offset + len` as a new buffer (for small ranges).
    pub fn bytes(&self, offset: u64, len: usize) -> Bytes {
        let mut buf = BytesMut::zeroed(len);
        self.fill(offset, &mut buf);
        buf.freeze()
    }

    /// SHA-256 of the whole blob, generated and hashed piece by piece (flat memory).
    pub fn sha256(&self) -> Digest {
        let mut hasher = Hasher::new(HashAlgorithm::Sha256);
        let mut buf = vec![0u8; PIECE_SIZE];
        let mut offset = 0;
        while offset < self.len {
            let take = piece_len(self.len - offset);
            let piece = &mut buf[..take];
            self.fill(offset, piece);
            hasher.update(piece);
            offset += take as u64;
        }
        hasher.digest()
    }

    /// A streaming request body for `offset..offset + len` of this blob.
    pub fn body(&self, offset: u64, len: u64) -> ContentBody {
        ContentBody {
            content: *self,
            next: offset,
            end: offset.saturating_add(len),
            progress: None,
        }
    }

    /// wyrand's output function on the word index (a counter-based wyrand: the state after
    /// `index + 1` steps is `seed + (index + 1) * P0`): one 64x64->128-bit multiply per 8 bytes,
    /// the cheapest mix that passes PractRand/BigCrush, and distinct seeds give unrelated
    /// streams.
    fn word(&self, index: u64) -> u64 {
        const P0: u64 = 0xa076_1d64_78bd_642f;
        const P1: u64 = 0xe703_7ed1_a0b4_28db;
        let state = self
            .seed
            .wrapping_add(index.wrapping_add(1).wrapping_mul(P0));
        let product = u128::from(state) * u128::from(state ^ P1);
        (product >> 64) as u64 ^ product as u64
    }
}

fn piece_len(remaining: u64) -> usize {
    usize::try_from(remaining).map_or(PIECE_SIZE, |r| r.min(PIECE_SIZE))
}

/// Derives an independent seed for sub-stream `index` of `seed` (one per blob of a run).
pub fn derive_seed(seed: u64, index: u64) -> u64 {
    Content::new(seed, 0).word(index ^ 0x5EED_0000_0000_0000)
}

/// An HTTP body that generates its bytes as hyper asks for them: a 1 GiB push holds one
/// 256 KiB piece at a time.
#[derive(Debug)]
pub struct ContentBody {
    content: Content,
    next: u64,
    end: u64,
    progress: Option<ProgressBar>,
}

impl ContentBody {
    /// Advances `bar` by the bytes produced.
    pub fn with_progress(mut self, bar: ProgressBar) -> Self {
        self.progress = Some(bar);
        self
    }
}

impl Body for ContentBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.next >= self.end {
            return Poll::Ready(None);
        }
        let take = piece_len(self.end - self.next);
        let piece = self.content.bytes(self.next, take);
        self.next += take as u64;
        if let Some(bar) = &self.progress {
            bar.inc(take as u64);
        }
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end.saturating_sub(self.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use proptest::prelude::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = Content::new(7, 4096).bytes(0, 4096);
        assert_eq!(a, Content::new(7, 4096).bytes(0, 4096));
        assert_ne!(a, Content::new(8, 4096).bytes(0, 4096));
        assert_ne!(derive_seed(7, 0), derive_seed(7, 1));
    }

    #[test]
    fn bytes_look_random() {
        let data = Content::new(1, 1 << 20).bytes(0, 1 << 20);
        let mut counts = [0u32; 256];
        for &b in data.iter() {
            counts[usize::from(b)] += 1;
        }
        let expected = (1u32 << 20) / 256;
        assert!(counts
            .iter()
            .all(|&c| c > expected * 9 / 10 && c < expected * 11 / 10));
    }

    #[test]
    fn digest_matches_hash_of_generated_bytes() {
        let len = PIECE_SIZE as u64 * 2 + 13;
        let blob = Content::new(99, len);
        let all = blob.bytes(0, len as usize);
        assert_eq!(blob.sha256(), Digest::sha256(&all));
    }

    #[tokio::test]
    async fn body_streams_the_same_bytes() {
        let len = PIECE_SIZE as u64 * 3 + 5;
        let blob = Content::new(3, len);
        let collected = blob.body(10, len - 10).collect().await.unwrap().to_bytes();
        assert_eq!(collected, blob.bytes(10, (len - 10) as usize));
    }

    proptest! {
        #[test]
        fn any_range_equals_slice_of_whole(seed: u64, start in 0usize..200, len in 0usize..200) {
            let blob = Content::new(seed, 400);
            let whole = blob.bytes(0, 400);
            let part = blob.bytes(start as u64, len);
            prop_assert_eq!(&whole[start..start + len], &part[..]);
        }
    }
}
