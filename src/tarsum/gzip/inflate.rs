//! A raw-deflate decompressor that can stop at block boundaries and restart from one.
//!
//! This is the only unsafe code of the TarSum module: a thin wrapper over zlib's C API as
//! implemented in pure Rust by `libz-rs-sys` (zlib-rs). The safe `flate2`/`zlib-rs` APIs cannot
//! do what a resumable checkpoint needs: `inflate(Z_BLOCK)` to stop right after a block, the
//! `data_type` bits that say where the stream stopped, `inflateGetDictionary` to read the
//! 32 KiB window, and `inflatePrime` + `inflateSetDictionary` to start again mid-stream
//! (the technique of zlib's `examples/zran.c`).
//!
//! Every call passes pointers into slices that outlive the call, and the `z_stream` lives in
//! a `Box` so its address (which zlib records in its internal state) never changes.

use std::ffi::c_int;

use libz_rs_sys::{
    inflate, inflateEnd, inflateGetDictionary, inflateInit2_, inflatePrime, inflateReset,
    inflateSetDictionary, z_stream, zlibVersion, Z_BLOCK, Z_BUF_ERROR, Z_NO_FLUSH, Z_OK,
    Z_STREAM_END,
};

/// Size of the deflate window: the most history a block can refer back to.
pub const WINDOW_LEN: usize = 32 * 1024;

/// How one [`RawInflate::run`] call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Progress was made (or more input/output space is needed).
    Ok,
    /// The final block's end was reached.
    StreamEnd,
    /// The data is not valid deflate.
    DataError,
}

/// The result of one [`RawInflate::run`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed.
    pub consumed: usize,
    /// Output bytes written.
    pub produced: usize,
    /// How the call ended.
    pub status: Status,
    /// True when the stream stopped exactly after a block that is not the last one: a
    /// place where a checkpoint can be taken.
    pub at_block_boundary: bool,
    /// Unused bits in the last consumed byte (0..=7) at that point.
    pub bits: u8,
}

/// A raw (headerless, 32 KiB window) deflate decoder.
pub struct RawInflate {
    strm: Box<z_stream>,
}

// SAFETY: the `z_stream` and the state it points to are owned by this value alone (boxed, freed
// in `Drop`), its `next_in`/`next_out` pointers are only set for the duration of one call, and
// zlib keeps no thread-local state, so moving the decoder to another thread between calls is
// sound. It is not `Sync`: `&RawInflate` offers no method that touches the stream.
#[allow(unsafe_code)]
unsafe impl Send for RawInflate {}

impl std::fmt::Debug for RawInflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawInflate").finish_non_exhaustive()
    }
}

/// Why zlib refused a set-up call (out of memory or a rejected prime/dictionary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupError;

impl RawInflate {
    /// A decoder at the start of a raw deflate stream.
    #[allow(unsafe_code)]
    pub fn new() -> Result<Self, SetupError> {
        let mut strm = Box::new(z_stream::default());
        let size = std::mem::size_of::<z_stream>() as c_int;
        // SAFETY: `strm` is a valid, default-initialised z_stream that stays boxed (fixed
        // address) for its whole life; the version string is zlib-rs's own.
        let ret = unsafe { inflateInit2_(&mut *strm, -15, zlibVersion(), size) };
        if ret != Z_OK {
            return Err(SetupError);
        }
        Ok(RawInflate { strm })
    }

    /// A decoder positioned at a block boundary: `bits` (0..=7) unused high bits of the last
    /// byte before the resume point, given in `value`, and the `window` before that point.
    #[allow(unsafe_code)]
    pub fn resume(bits: u8, value: u8, window: &[u8]) -> Result<Self, SetupError> {
        let mut this = Self::new()?;
        if bits > 0 {
            let v = c_int::from(value >> (8 - bits));
            // SAFETY: initialised stream; zlib only reads the two integers.
            let ret = unsafe { inflatePrime(&mut *this.strm, c_int::from(bits), v) };
            if ret != Z_OK {
                return Err(SetupError);
            }
        }
        if !window.is_empty() {
            let len = u32::try_from(window.len()).map_err(|_| SetupError)?;
            // SAFETY: `window` is a live slice of exactly `len` bytes, only read.
            let ret = unsafe { inflateSetDictionary(&mut *this.strm, window.as_ptr(), len) };
            if ret != Z_OK {
                return Err(SetupError);
            }
        }
        Ok(this)
    }

    /// Starts a new raw stream (next gzip member), keeping the allocation.
    #[allow(unsafe_code)]
    pub fn reset(&mut self) -> Result<(), SetupError> {
        // SAFETY: initialised stream.
        let ret = unsafe { inflateReset(&mut *self.strm) };
        if ret == Z_OK {
            Ok(())
        } else {
            Err(SetupError)
        }
    }

    /// The current window: up to the last 32 KiB of output of this stream.
    #[allow(unsafe_code)]
    pub fn window(&self) -> Vec<u8> {
        let mut out = vec![0u8; WINDOW_LEN];
        let mut len: u32 = 0;
        // SAFETY: `out` has room for a full window, the most zlib ever writes here, and
        // `len` is a live u32.
        let ret = unsafe { inflateGetDictionary(&*self.strm, out.as_mut_ptr(), &mut len) };
        if ret != Z_OK {
            return Vec::new();
        }
        out.truncate((len as usize).min(WINDOW_LEN));
        out
    }

    /// Decodes from `input` into `output`. With `stop_at_block`, returns right after the
    /// next block end (zlib's `Z_BLOCK`).
    #[allow(unsafe_code)]
    pub fn run(&mut self, input: &[u8], output: &mut [u8], stop_at_block: bool) -> Step {
        let avail_in = u32::try_from(input.len()).unwrap_or(u32::MAX);
        let avail_out = u32::try_from(output.len()).unwrap_or(u32::MAX);
        self.strm.next_in = input.as_ptr();
        self.strm.avail_in = avail_in;
        self.strm.next_out = output.as_mut_ptr();
        self.strm.avail_out = avail_out;
        let flush = if stop_at_block { Z_BLOCK } else { Z_NO_FLUSH };
        // SAFETY: next_in/next_out point into slices that live across the call, with
        // avail_in/avail_out no larger than their lengths.
        let ret = unsafe { inflate(&mut *self.strm, flush) };
        let consumed = (avail_in - self.strm.avail_in) as usize;
        let produced = (avail_out - self.strm.avail_out) as usize;
        // Do not keep pointers into the caller's buffers.
        self.strm.next_in = std::ptr::null();
        self.strm.next_out = std::ptr::null_mut();
        self.strm.avail_in = 0;
        self.strm.avail_out = 0;
        let data_type = self.strm.data_type;
        let status = match ret {
            Z_OK | Z_BUF_ERROR => Status::Ok,
            Z_STREAM_END => Status::StreamEnd,
            _ => Status::DataError,
        };
        Step {
            consumed,
            produced,
            status,
            at_block_boundary: data_type & 128 != 0 && data_type & 64 == 0,
            bits: (data_type & 7) as u8,
        }
    }
}

impl Drop for RawInflate {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: initialised stream, ended exactly once.
        unsafe {
            inflateEnd(&mut *self.strm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Pseudo-random text over a small alphabet: compressible, but in many blocks.
    fn sample() -> Vec<u8> {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        (0..600_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b"abcdefgh \n"[(x % 10) as usize]
            })
            .collect()
    }

    /// Decode, stop at a block boundary in the middle, restart from it with prime +
    /// dictionary, and get the same bytes.
    #[test]
    fn resumes_from_a_block_boundary() {
        let data = sample();
        let compressed = deflate(&data);
        let mut inf = RawInflate::new().unwrap();
        let mut out = vec![0u8; data.len() + 16];
        let (mut pos_in, mut pos_out) = (0, 0);
        let mut boundary = None;
        loop {
            let step = inf.run(&compressed[pos_in..], &mut out[pos_out..], true);
            pos_in += step.consumed;
            pos_out += step.produced;
            if step.at_block_boundary && pos_out > data.len() / 2 && boundary.is_none() {
                boundary = Some((pos_in, pos_out, step.bits, inf.window()));
            }
            if step.status == Status::StreamEnd {
                break;
            }
            assert_eq!(step.status, Status::Ok);
        }
        assert_eq!(&out[..pos_out], &data[..]);
        let (at_in, at_out, bits, window) = boundary.expect("a boundary past the middle");
        let value = if bits > 0 { compressed[at_in - 1] } else { 0 };
        let mut again = RawInflate::resume(bits, value, &window).unwrap();
        let mut rest = vec![0u8; data.len() - at_out + 16];
        let step = again.run(&compressed[at_in..], &mut rest, false);
        assert_eq!(step.status, Status::StreamEnd);
        assert_eq!(&rest[..step.produced], &data[at_out..]);
    }
}
