//! [`TarSumStream`]: TarSum over plain or gzip-compressed input, with resumable checkpoints.
//!
//! Input that starts with gzip's magic (`1f 8b`) is decompressed as it streams; anything else
//! is a plain tar. Multi-member gzip is read like Go's `gzip.Reader` does by default: each
//! member's CRC-32 and length are checked, then the next member follows. As in the reference,
//! nothing after the tar end-of-archive marker is looked at (a bad trailer there is not seen).
//!
//! **Checkpoints.** A deflate decoder's state cannot be saved mid-block, but it can be rebuilt
//! at a block boundary from three things: the bit position, the last 32 KiB of output and the
//! compressed offset (zlib's `examples/zran.c`). Once at least [`CHECKPOINT_INTERVAL`]
//! compressed bytes have passed since the last checkpoint, the decoder is asked to stop at
//! the next block end, and a snapshot is taken there: the TarSum state at that exact output
//! position (its per-file sums as a count, since that list only grows), the window, the bit
//! offset and the member's running CRC and length. [`TarSumStream::checkpoint`] returns the
//! latest snapshot; a resume re-reads the input from its offset, so at most about one
//! interval plus one deflate block of compressed input is read twice. For plain input a
//! checkpoint is exact at any byte.

mod inflate;
mod member;

use inflate::{RawInflate, Status};
use member::{HeaderParser, MAGIC};

use super::error::{TarsumError, TarsumStateError as E};
use super::state::{self, Reader};
use super::TarSum;

/// Compressed bytes between two gzip checkpoints (the most a resume reads twice, plus the
/// rest of one deflate block).
pub const CHECKPOINT_INTERVAL: u64 = 4 << 20;

/// Decompressed bytes produced per decoder call.
const OUTPUT_CHUNK: usize = 256 << 10;

const MAGIC_STATE: &[u8; 4] = b"LSTG";
const FORMAT_VERSION: u8 = 1;

/// A saved position of a [`TarSumStream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The serialized stream state (give it to [`TarSumStream::resume`]).
    pub state: Vec<u8>,
    /// The input offset the resumed stream must be fed from.
    pub input_offset: u64,
}

/// TarSum over plain or gzip input, with checkpoints.
///
/// ```
/// use std::io::Write;
/// use layerstore::digest::{HashAlgorithm, TarsumVersion};
/// use layerstore::tarsum::{TarSum, TarSumStream};
///
/// let tar = [0u8; 1024]; // an empty archive
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
/// gz.write_all(&tar).unwrap();
/// let gz = gz.finish().unwrap();
///
/// let mut stream = TarSumStream::new(TarSum::new(TarsumVersion::V1, HashAlgorithm::Sha256));
/// stream.update(&gz[..10]).unwrap();
/// let checkpoint = stream.checkpoint(); // save `checkpoint.state` somewhere
/// let mut resumed = TarSumStream::resume(&checkpoint.state).unwrap();
/// resumed.update(&gz[checkpoint.input_offset as usize..]).unwrap();
/// assert_eq!(resumed.finish().unwrap(), stream.tarsum().finish().unwrap());
/// ```
#[derive(Debug)]
pub struct TarSumStream {
    tarsum: TarSum,
    mode: Mode,
    input_offset: u64,
    snapshot: Snapshot,
    interval: u64,
    /// An update failed: every later call fails too.
    failed: bool,
}

/// How the input is being read.
#[derive(Debug)]
enum Mode {
    /// Fewer than two bytes seen: not yet known whether it is gzip.
    Detect(Vec<u8>),
    /// A plain tar.
    Plain,
    /// Gzip, inside or between members.
    Gzip(Box<Gzip>),
}

/// Decompression state.
#[derive(Debug)]
struct Gzip {
    part: Part,
    inflater: RawInflate,
    /// CRC-32 of this member's output so far.
    crc: crc32fast::Hasher,
    /// This member's output length mod 2^32.
    isize: u32,
    /// The last compressed byte consumed (holds the unused bits at a block boundary).
    last_byte: u8,
    output: Vec<u8>,
}

impl Gzip {
    /// A decoder at the start of the input, or at a checkpoint inside a member.
    fn new(resume: Option<&GzipResume>) -> Result<Self, inflate::SetupError> {
        let (part, inflater, crc, isize) = match resume {
            None => (
                Part::Header(HeaderParser::new()),
                RawInflate::new()?,
                crc32fast::Hasher::new(),
                0,
            ),
            Some(r) => (
                Part::Deflate,
                RawInflate::resume(r.bits, r.value, &r.window)?,
                crc32fast::Hasher::new_with_initial(r.crc),
                r.isize,
            ),
        };
        Ok(Gzip {
            part,
            inflater,
            crc,
            isize,
            last_byte: resume.map_or(0, |r| r.value),
            output: vec![0u8; OUTPUT_CHUNK],
        })
    }
}

#[derive(Debug)]
enum Part {
    Header(HeaderParser),
    Deflate,
    Trailer(Vec<u8>),
}

/// The latest checkpoint, kept cheap: the TarSum core bytes and a count of its sums.
#[derive(Debug, Clone)]
struct Snapshot {
    tarsum_core: Vec<u8>,
    sum_count: usize,
    input_offset: u64,
    gzip: Option<GzipResume>,
}

/// What a gzip checkpoint needs besides the TarSum state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GzipResume {
    bits: u8,
    value: u8,
    window: Vec<u8>,
    crc: u32,
    isize: u32,
}

impl TarSumStream {
    /// A stream at input offset 0 feeding `tarsum` (which should be fresh).
    pub fn new(tarsum: TarSum) -> Self {
        let snapshot = Snapshot {
            tarsum_core: state::encode_core(tarsum.parser_ref(), tarsum.extra_ref()),
            sum_count: tarsum.entry_count(),
            input_offset: 0,
            gzip: None,
        };
        TarSumStream {
            tarsum,
            mode: Mode::Detect(Vec::with_capacity(2)),
            input_offset: 0,
            snapshot,
            interval: CHECKPOINT_INTERVAL,
            failed: false,
        }
    }

    /// Sets how many compressed bytes pass between gzip checkpoints (default
    /// [`CHECKPOINT_INTERVAL`]). Smaller means less re-reading on resume and more snapshot
    /// work; the setting is not part of the saved state.
    pub fn with_checkpoint_interval(mut self, bytes: u64) -> Self {
        self.interval = bytes;
        self
    }

    /// The TarSum being fed (for progress, or its sum so far).
    pub fn tarsum(&self) -> &TarSum {
        &self.tarsum
    }

    /// True when the input is gzip (known after its first two bytes).
    pub fn is_gzip(&self) -> bool {
        matches!(self.mode, Mode::Gzip(_))
    }

    /// Input bytes consumed so far.
    pub fn input_offset(&self) -> u64 {
        self.input_offset
    }

    /// Feeds the next input bytes (compressed or plain). After an error every later call
    /// fails too.
    pub fn update(&mut self, input: &[u8]) -> Result<(), TarsumError> {
        if self.failed {
            return Err(TarsumError::AlreadyFailed);
        }
        let result = self.detect_and_feed(input);
        self.failed = result.is_err();
        result
    }

    fn detect_and_feed(&mut self, input: &[u8]) -> Result<(), TarsumError> {
        if let Mode::Detect(seen) = &mut self.mode {
            // Hold back bytes until the first two decide the format; they are replayed
            // below, so `input_offset` stays 0 (and a checkpoint is the start) until then.
            let take = (2 - seen.len()).min(input.len());
            seen.extend_from_slice(&input[..take]);
            if seen.len() < 2 {
                return Ok(());
            }
            let head = std::mem::take(seen);
            self.mode = if head == MAGIC {
                Mode::Gzip(Box::new(
                    Gzip::new(None).map_err(|_| TarsumError::Deflate { offset: 0 })?,
                ))
            } else {
                Mode::Plain
            };
            self.feed(&head)?;
            return self.feed(&input[take..]);
        }
        self.feed(input)
    }

    fn feed(&mut self, input: &[u8]) -> Result<(), TarsumError> {
        match &mut self.mode {
            Mode::Detect(_) => Ok(()),
            Mode::Plain => {
                self.input_offset = self.input_offset.saturating_add(input.len() as u64);
                self.tarsum.update(input)
            }
            Mode::Gzip(_) => self.feed_gzip(input),
        }
    }

    fn feed_gzip(&mut self, mut input: &[u8]) -> Result<(), TarsumError> {
        while !input.is_empty() && !self.tarsum.is_done() {
            let used = self.gzip_step(input)?;
            input = &input[used..];
        }
        // After the end-of-archive marker nothing is read, as in the reference.
        self.input_offset = self.input_offset.saturating_add(input.len() as u64);
        Ok(())
    }

    /// One step of gzip decoding; returns the input bytes consumed.
    fn gzip_step(&mut self, input: &[u8]) -> Result<usize, TarsumError> {
        let offset = self.input_offset;
        let Mode::Gzip(gz) = &mut self.mode else {
            return Ok(input.len());
        };
        let used = match &mut gz.part {
            Part::Header(parser) => {
                let used = parser
                    .feed(input)
                    .map_err(|_| TarsumError::GzipHeader { offset })?;
                if parser.is_done() {
                    gz.part = Part::Deflate;
                }
                used
            }
            Part::Trailer(buf) => {
                let used = (8 - buf.len()).min(input.len());
                buf.extend_from_slice(&input[..used]);
                if buf.len() == 8 {
                    let crc = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    let len = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
                    if crc != gz.crc.clone().finalize() || len != gz.isize {
                        return Err(TarsumError::GzipChecksum { offset });
                    }
                    gz.inflater
                        .reset()
                        .map_err(|_| TarsumError::Deflate { offset })?;
                    gz.crc = crc32fast::Hasher::new();
                    gz.isize = 0;
                    gz.part = Part::Header(HeaderParser::new());
                }
                used
            }
            Part::Deflate => return self.inflate_step(input),
        };
        self.input_offset = self.input_offset.saturating_add(used as u64);
        Ok(used)
    }

    /// Decompresses once and feeds the output to the TarSum; takes a checkpoint when one is
    /// due and the decoder stopped at a block boundary.
    fn inflate_step(&mut self, input: &[u8]) -> Result<usize, TarsumError> {
        let offset = self.input_offset;
        let mut stop_at_block =
            self.input_offset.saturating_sub(self.snapshot.input_offset) >= self.interval;
        loop {
            let Mode::Gzip(gz) = &mut self.mode else {
                return Ok(input.len());
            };
            let step = gz.inflater.run(input, &mut gz.output, stop_at_block);
            let out = &gz.output[..step.produced];
            gz.crc.update(out);
            gz.isize = gz.isize.wrapping_add(step.produced as u32);
            if let Some(last) = step.consumed.checked_sub(1) {
                gz.last_byte = input[last];
            }
            self.tarsum.update(out)?;
            self.input_offset = self.input_offset.saturating_add(step.consumed as u64);
            match step.status {
                Status::DataError => return Err(TarsumError::Deflate { offset }),
                Status::StreamEnd => gz.part = Part::Trailer(Vec::with_capacity(8)),
                Status::Ok => {}
            }
            if stop_at_block && step.at_block_boundary && step.status == Status::Ok {
                let resume = GzipResume {
                    bits: step.bits,
                    // The unused bits belong to the last byte consumed, in this call or an
                    // earlier one.
                    value: if step.bits > 0 { gz.last_byte } else { 0 },
                    window: gz.inflater.window(),
                    crc: gz.crc.clone().finalize(),
                    isize: gz.isize,
                };
                self.take_snapshot(Some(resume));
            }
            if step.consumed == 0 && step.produced == 0 && step.status == Status::Ok {
                if stop_at_block {
                    // zlib's Z_BLOCK returns at once when already at a block boundary:
                    // the snapshot (if any) is taken, so decode on without stopping.
                    stop_at_block = false;
                    continue;
                }
                // Non-empty input and free output space always make progress; never loop
                // forever on a decoder surprise.
                return Err(TarsumError::Deflate { offset });
            }
            return Ok(step.consumed);
        }
    }

    fn take_snapshot(&mut self, gzip: Option<GzipResume>) {
        self.snapshot = Snapshot {
            tarsum_core: state::encode_core(self.tarsum.parser_ref(), self.tarsum.extra_ref()),
            sum_count: self.tarsum.entry_count(),
            input_offset: self.input_offset,
            gzip,
        };
    }

    /// The TarSum of the input so far, which must be complete.
    ///
    /// Fails if the gzip stream is cut inside a member before the tar end marker, or the tar
    /// itself is incomplete (see [`TarSum::finish`]).
    pub fn finish(&self) -> Result<crate::digest::Digest, TarsumError> {
        if self.failed {
            return Err(TarsumError::AlreadyFailed);
        }
        if let Mode::Detect(seen) = &self.mode {
            if !seen.is_empty() {
                // One byte is neither a tar header nor a gzip header.
                return Err(TarsumError::UnexpectedEof {
                    offset: seen.len() as u64,
                    inside: "a header",
                });
            }
        }
        if let Mode::Gzip(gz) = &self.mode {
            let member_open = match &gz.part {
                Part::Header(p) => p.seen > 0,
                Part::Deflate | Part::Trailer(_) => true,
            };
            if member_open && !self.tarsum.is_done() {
                return Err(TarsumError::GzipTruncated {
                    offset: self.input_offset,
                });
            }
        }
        self.tarsum.finish()
    }

    /// The latest checkpoint: for plain input, the exact current position; for gzip, the
    /// last deflate block boundary a snapshot was taken at (at most about
    /// [`CHECKPOINT_INTERVAL`] compressed bytes back), or the start.
    pub fn checkpoint(&self) -> Checkpoint {
        match &self.mode {
            Mode::Plain => Checkpoint {
                state: encode_stream(1, self.input_offset, &self.tarsum.encode(), None),
                input_offset: self.input_offset,
            },
            _ => {
                let tarsum = state::finish_encode(
                    self.snapshot.tarsum_core.clone(),
                    &self.tarsum.parser_ref().sums[..self.snapshot.sum_count],
                );
                let mode = if self.snapshot.gzip.is_some() { 2 } else { 0 };
                Checkpoint {
                    state: encode_stream(
                        mode,
                        self.snapshot.input_offset,
                        &tarsum,
                        self.snapshot.gzip.as_ref(),
                    ),
                    input_offset: self.snapshot.input_offset,
                }
            }
        }
    }

    /// Rebuilds a stream from [`Checkpoint::state`]; feed it from the checkpoint's
    /// `input_offset`. Corrupt or hostile bytes give an error, never a panic.
    pub fn resume(bytes: &[u8]) -> Result<Self, E> {
        if bytes.len() < 4 + 1 + 4 {
            return Err(E::Truncated);
        }
        if &bytes[..4] != MAGIC_STATE {
            return Err(E::BadMagic);
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(E::UnsupportedVersion(bytes[4]));
        }
        let (framed, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(framed).to_be_bytes() != crc {
            return Err(E::ChecksumMismatch);
        }
        let mut r = Reader { rest: &framed[5..] };
        let mode = r.u8()?;
        let input_offset = r.u64()?;
        let tarsum = TarSum::decode(r.bytes("tarsum state", u64::from(u32::MAX))?)?;
        let gzip = match mode {
            2 => Some(GzipResume {
                bits: r.u8()?,
                value: r.u8()?,
                window: r.bytes("window", inflate::WINDOW_LEN as u64)?.to_vec(),
                crc: r.u32()?,
                isize: r.u32()?,
            }),
            0 | 1 => None,
            _ => return Err(E::Invalid("stream mode")),
        };
        if !r.rest.is_empty() {
            return Err(E::TrailingBytes(r.rest.len()));
        }
        let mut stream = TarSumStream::new(tarsum);
        stream.input_offset = input_offset;
        stream.snapshot.input_offset = input_offset;
        match (mode, gzip) {
            (1, _) => stream.mode = Mode::Plain,
            (2, Some(resume)) => {
                if resume.bits > 7 {
                    return Err(E::Invalid("bit offset"));
                }
                let gz = Gzip::new(Some(&resume)).map_err(|_| E::Invalid("gzip window"))?;
                stream.mode = Mode::Gzip(Box::new(gz));
                stream.snapshot.gzip = Some(resume);
            }
            _ => {
                if input_offset != 0 {
                    return Err(E::Invalid("start checkpoint offset"));
                }
            }
        }
        Ok(stream)
    }
}

/// The stream state: magic, version, mode (0 start, 1 plain, 2 gzip), offset, the TarSum
/// state, the gzip resume data, CRC-32.
fn encode_stream(mode: u8, offset: u64, tarsum: &[u8], gzip: Option<&GzipResume>) -> Vec<u8> {
    let mut w = Vec::with_capacity(tarsum.len() + 64 + inflate::WINDOW_LEN);
    w.extend_from_slice(MAGIC_STATE);
    w.push(FORMAT_VERSION);
    w.push(mode);
    w.extend_from_slice(&offset.to_be_bytes());
    state::write_bytes(&mut w, tarsum);
    if let Some(g) = gzip {
        w.push(g.bits);
        w.push(g.value);
        state::write_bytes(&mut w, &g.window);
        w.extend_from_slice(&g.crc.to_be_bytes());
        w.extend_from_slice(&g.isize.to_be_bytes());
    }
    let crc = crc32fast::hash(&w);
    w.extend_from_slice(&crc.to_be_bytes());
    w
}
