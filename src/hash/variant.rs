//! The two SHA-2 variants a [`ResumableHash`](super::ResumableHash) can run: what differs between
//! SHA-256 and SHA-512 (word size, block size, IV, Go magic), and nothing else.
//!
//! The arithmetic is `sha2`'s own block compression function ([`sha2::block_api`]), which picks
//! SHA-NI, AVX2 or portable code at run time. layerstore never implements SHA rounds itself.

use crate::digest::HashAlgorithm;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Sha256 {}
    impl Sealed for super::Sha512 {}
}

/// One SHA-2 variant. Sealed: only [`Sha256`] and [`Sha512`] implement it.
pub trait Variant: sealed::Sealed + Copy + Eq + std::fmt::Debug + 'static {
    /// The chaining-value word (`u32` or `u64`).
    type Word: Copy + Eq + std::fmt::Debug;
    /// The algorithm this variant computes.
    const ALGORITHM: HashAlgorithm;
    /// Bytes per compression block (64 or 128).
    const BLOCK_LEN: usize;
    /// Bytes per chaining word (4 or 8).
    const WORD_LEN: usize;
    /// Bytes of the big-endian bit-length field in the final padding (8 or 16).
    const LENGTH_FIELD_LEN: usize;
    /// Initial chaining values (FIPS 180-4).
    const IV: [Self::Word; 8];
    /// The four-byte identifier of Go's `MarshalBinary` form.
    const GO_MAGIC: [u8; 4];
    /// Largest byte count whose bit length the padding can hold.
    const MAX_LEN: u64;

    /// Compresses `blocks` (a whole number of blocks) into `h` in one call.
    fn compress(h: &mut [Self::Word; 8], blocks: &[u8]);
    /// Appends `w` big-endian.
    fn put_word(w: Self::Word, out: &mut Vec<u8>);
    /// Reads one big-endian word from exactly [`Self::WORD_LEN`] bytes.
    fn get_word(bytes: &[u8]) -> Self::Word;
}

/// SHA-256 (FIPS 180-4), the canonical digest of every blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha256;

/// SHA-512 (FIPS 180-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sha512;

impl Variant for Sha256 {
    type Word = u32;
    const ALGORITHM: HashAlgorithm = HashAlgorithm::Sha256;
    const BLOCK_LEN: usize = 64;
    const WORD_LEN: usize = 4;
    const LENGTH_FIELD_LEN: usize = 8;
    const IV: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    const GO_MAGIC: [u8; 4] = *b"sha\x03";
    // The padding holds the length in bits as a u64.
    const MAX_LEN: u64 = u64::MAX >> 3;

    fn compress(h: &mut [u32; 8], blocks: &[u8]) {
        let (blocks, rest) = blocks.as_chunks::<64>();
        debug_assert!(rest.is_empty(), "compress takes whole blocks");
        sha2::block_api::compress256(h, blocks);
    }

    fn put_word(w: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&w.to_be_bytes());
    }

    fn get_word(bytes: &[u8]) -> u32 {
        let mut word = [0u8; 4];
        word.copy_from_slice(bytes);
        u32::from_be_bytes(word)
    }
}

impl Variant for Sha512 {
    type Word = u64;
    const ALGORITHM: HashAlgorithm = HashAlgorithm::Sha512;
    const BLOCK_LEN: usize = 128;
    const WORD_LEN: usize = 8;
    const LENGTH_FIELD_LEN: usize = 16;
    const IV: [u64; 8] = [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179,
    ];
    const GO_MAGIC: [u8; 4] = *b"sha\x07";
    // The padding holds a 128-bit bit length, so every u64 byte count fits.
    const MAX_LEN: u64 = u64::MAX;

    fn compress(h: &mut [u64; 8], blocks: &[u8]) {
        let (blocks, rest) = blocks.as_chunks::<128>();
        debug_assert!(rest.is_empty(), "compress takes whole blocks");
        sha2::block_api::compress512(h, blocks);
    }

    fn put_word(w: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&w.to_be_bytes());
    }

    fn get_word(bytes: &[u8]) -> u64 {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        u64::from_be_bytes(word)
    }
}
