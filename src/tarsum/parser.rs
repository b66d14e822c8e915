//! The sans-I/O tar state machine behind [`TarSum`](super::TarSum).
//!
//! Bytes arrive in chunks of any size. The machine keeps only what it must between chunks: a
//! partial 512-byte header block, a meta entry's payload (at most 1 MiB), the pending PAX/GNU
//! meta state, the open entry's hash state and the per-file sums. Entry data is never copied:
//! each chunk's data part goes from the caller's slice into the hash in one call, so the hot
//! loop is the SHA-2 compression function. Every field is plain data, which is what lets
//! [`super::state`] serialize the machine after any byte.

use super::entry::{self, Entry, EntryFault, Pending};
use super::error::TarsumError;
use super::header::{self, HeaderFault, BLOCK_LEN};
use super::name::normalize;
use super::pax::{self, MAX_SPECIAL_LEN};
use super::select::encode_header;
use super::sums::FileSum;
use crate::digest::{HashAlgorithm, TarsumVersion};
use crate::hash::Hasher;

/// What kind of meta entry's payload is being collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKind {
    /// 'x': local PAX records for the next entry.
    Pax,
    /// 'g': PAX global header, returned as an entry of its own.
    Global,
    /// 'L': GNU long name.
    LongName,
    /// 'K': GNU long link name.
    LongLink,
}

/// Where the machine is in the tar stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Collecting a header block.
    Header,
    /// One zero block seen; collecting the next block.
    SecondZero,
    /// Collecting a meta entry's payload.
    Meta {
        /// Which meta entry.
        kind: MetaKind,
        /// Payload bytes still to come.
        remaining: u64,
        /// Padding after the payload.
        padding: u64,
        /// The header's own name (used for 'g' entries).
        header_name: Vec<u8>,
    },
    /// Hashing an entry's data.
    Data {
        /// Data bytes still to come.
        remaining: u64,
        /// Padding after the data.
        padding: u64,
    },
    /// Skipping padding; the input may end here.
    Padding {
        /// Padding bytes still to skip.
        remaining: u64,
    },
    /// End-of-archive marker seen: everything after it is ignored.
    End,
    /// An error was reported; nothing more can be computed.
    Failed,
}

/// The entry whose data is being hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenEntry {
    /// Normalised name.
    pub name: Vec<u8>,
    /// Hash of the selected header fields and the data so far.
    pub hasher: Hasher,
}

/// The whole machine state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parser {
    /// Header selector.
    pub version: TarsumVersion,
    /// Hash of per-file sums and of the final sum.
    pub hash: HashAlgorithm,
    /// Hash uname and gname with their values (Docker before 2018-03).
    pub legacy_names: bool,
    /// Position in the stream.
    pub phase: Phase,
    /// Partial header block (below 512 bytes between calls).
    pub block: Vec<u8>,
    /// Partial meta payload.
    pub meta: Vec<u8>,
    /// Meta state waiting for the next real entry.
    pub pending: Pending,
    /// The entry being hashed, in [`Phase::Data`].
    pub open: Option<OpenEntry>,
    /// Completed per-file sums, in archive order.
    pub sums: Vec<FileSum>,
    /// Tar stream bytes consumed.
    pub offset: u64,
}

impl Parser {
    /// A machine at the start of a tar stream.
    pub fn new(version: TarsumVersion, hash: HashAlgorithm) -> Self {
        Parser {
            version,
            hash,
            legacy_names: false,
            phase: Phase::Header,
            block: Vec::with_capacity(BLOCK_LEN),
            meta: Vec::new(),
            pending: Pending::default(),
            open: None,
            sums: Vec::new(),
            offset: 0,
        }
    }

    /// True once the end-of-archive marker has been read (further input is ignored).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::End
    }

    /// Feeds tar bytes. After an error the machine stays failed.
    pub fn update(&mut self, mut input: &[u8]) -> Result<(), TarsumError> {
        if self.phase == Phase::Failed {
            return Err(TarsumError::AlreadyFailed);
        }
        while !input.is_empty() {
            match self.step(input) {
                Ok(used) => {
                    self.offset = self.offset.saturating_add(used as u64);
                    input = &input[used..];
                }
                Err(e) => {
                    self.phase = Phase::Failed;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Checks that the stream may end here (spec §3.1).
    pub fn check_end(&self) -> Result<(), TarsumError> {
        let eof = |inside| TarsumError::UnexpectedEof {
            offset: self.offset,
            inside,
        };
        match &self.phase {
            Phase::Header | Phase::SecondZero if !self.block.is_empty() => Err(eof("a header")),
            Phase::Header | Phase::SecondZero | Phase::Padding { .. } | Phase::End => Ok(()),
            Phase::Meta { .. } => Err(eof("a meta entry's payload")),
            Phase::Data { .. } => Err(eof("an entry's data")),
            Phase::Failed => Err(TarsumError::AlreadyFailed),
        }
    }

    /// Consumes a prefix of `input`; returns its length (at least 1).
    fn step(&mut self, input: &[u8]) -> Result<usize, TarsumError> {
        match &mut self.phase {
            Phase::End => Ok(input.len()),
            Phase::Failed => Err(TarsumError::AlreadyFailed),
            Phase::Data { remaining, padding } => {
                let n = take(*remaining, input.len());
                if let Some(open) = &mut self.open {
                    open.hasher.update(&input[..n]);
                }
                *remaining -= n as u64;
                if *remaining == 0 {
                    let padding = *padding;
                    self.close_entry();
                    self.phase = after(padding);
                }
                Ok(n)
            }
            Phase::Padding { remaining } => {
                let n = take(*remaining, input.len());
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.phase = Phase::Header;
                }
                Ok(n)
            }
            Phase::Meta { remaining, .. } => {
                let n = take(*remaining, input.len());
                self.meta.extend_from_slice(&input[..n]);
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.finish_meta(n)?;
                }
                Ok(n)
            }
            Phase::Header | Phase::SecondZero => {
                let n = (BLOCK_LEN - self.block.len()).min(input.len());
                self.block.extend_from_slice(&input[..n]);
                if self.block.len() == BLOCK_LEN {
                    self.on_block(n)?;
                }
                Ok(n)
            }
        }
    }

    /// A whole block has arrived; `used` bytes of it came from the current chunk.
    fn on_block(&mut self, used: usize) -> Result<(), TarsumError> {
        // Saturating: a decoded state may carry any offset.
        let start = (self.offset.saturating_add(used as u64)).saturating_sub(BLOCK_LEN as u64);
        let mut block = [0u8; BLOCK_LEN];
        block.copy_from_slice(&self.block);
        self.block.clear();
        let zero = header::is_zero_block(&block);
        match (&self.phase, zero) {
            (Phase::SecondZero, true) => self.phase = Phase::End,
            (Phase::SecondZero, false) => {
                return Err(TarsumError::ZeroBlockThenData { offset: start })
            }
            (_, true) => self.phase = Phase::SecondZero,
            (_, false) => self.on_header(&block, start)?,
        }
        Ok(())
    }

    fn on_header(&mut self, block: &[u8; BLOCK_LEN], offset: u64) -> Result<(), TarsumError> {
        let raw = header::decode(block).map_err(|fault| match fault {
            HeaderFault::Checksum => TarsumError::BadChecksum { offset },
            HeaderFault::Numeric(field) => TarsumError::BadNumericField { offset, field },
        })?;
        if !entry::is_header_only(raw.typeflag) && raw.size < 0 {
            return Err(TarsumError::NegativeSize { offset });
        }
        let kind = match raw.typeflag {
            b'x' => Some(MetaKind::Pax),
            b'g' => Some(MetaKind::Global),
            b'L' => Some(MetaKind::LongName),
            b'K' => Some(MetaKind::LongLink),
            _ => None,
        };
        match kind {
            Some(kind) => self.start_meta(kind, raw.size, raw.name, offset),
            None => self.start_entry(raw, offset),
        }
    }

    fn start_meta(
        &mut self,
        kind: MetaKind,
        size: i64,
        header_name: Vec<u8>,
        offset: u64,
    ) -> Result<(), TarsumError> {
        // Non-negative: checked by the caller for every data-bearing type.
        let len = u64::try_from(size).unwrap_or(0);
        if len > MAX_SPECIAL_LEN {
            return Err(TarsumError::MetaTooLarge { offset, size });
        }
        self.meta.clear();
        self.phase = Phase::Meta {
            kind,
            remaining: len,
            padding: entry::padding(len),
            header_name,
        };
        if len == 0 {
            self.finish_meta(0)?;
        }
        Ok(())
    }

    /// The meta payload is complete; `used` bytes of it came from the current chunk.
    fn finish_meta(&mut self, used: usize) -> Result<(), TarsumError> {
        let end = self.offset.saturating_add(used as u64);
        let Phase::Meta {
            kind,
            padding,
            header_name,
            ..
        } = std::mem::replace(&mut self.phase, Phase::Header)
        else {
            return Ok(());
        };
        let payload = std::mem::take(&mut self.meta);
        match kind {
            MetaKind::Pax | MetaKind::Global => {
                let records = pax::parse_records(&payload)
                    .ok_or(TarsumError::InvalidPaxRecord { offset: end })?;
                if kind == MetaKind::Global {
                    self.pending = Pending::default();
                    let global = entry::global(header_name, &records);
                    self.open_entry(&global);
                    self.close_entry();
                } else {
                    self.pending.pax = Some(records);
                }
            }
            MetaKind::LongName => self.pending.long_name = Some(entry::long_name(&payload)),
            MetaKind::LongLink => self.pending.long_link = Some(entry::long_name(&payload)),
        }
        self.phase = after(padding);
        Ok(())
    }

    fn start_entry(&mut self, raw: header::RawHeader, offset: u64) -> Result<(), TarsumError> {
        let pending = std::mem::take(&mut self.pending);
        let (entry, data_len) = entry::merge(raw, &pending).map_err(|fault| match fault {
            EntryFault::PaxValue(key) => TarsumError::InvalidPaxValue { offset, key },
            EntryFault::NegativeSize => TarsumError::NegativeSize { offset },
            EntryFault::Sparse => TarsumError::SparseUnsupported { offset },
            EntryFault::TrailingSlash(name) => TarsumError::TrailingSlash {
                offset,
                name: String::from_utf8_lossy(&name).chars().take(256).collect(),
            },
        })?;
        self.open_entry(&entry);
        if data_len == 0 {
            self.close_entry();
            self.phase = Phase::Header;
        } else {
            self.phase = Phase::Data {
                remaining: data_len,
                padding: entry::padding(data_len),
            };
        }
        Ok(())
    }

    fn open_entry(&mut self, entry: &Entry) {
        let mut fields = Vec::with_capacity(128 + entry.name.len() + entry.linkname.len());
        encode_header(self.version, self.legacy_names, entry, &mut fields);
        let mut hasher = Hasher::new(self.hash);
        hasher.update(&fields);
        self.open = Some(OpenEntry {
            name: normalize(&entry.name),
            hasher,
        });
    }

    fn close_entry(&mut self) {
        if let Some(open) = self.open.take() {
            let sum = match open.hasher {
                Hasher::Sha256(h) => h.finalize(),
                Hasher::Sha512(h) => h.finalize(),
            };
            self.sums.push(FileSum {
                name: open.name,
                sum,
            });
        }
    }
}

/// The phase after `padding` bytes of padding.
fn after(padding: u64) -> Phase {
    if padding == 0 {
        Phase::Header
    } else {
        Phase::Padding { remaining: padding }
    }
}

/// `min(remaining, available)` as a slice length.
fn take(remaining: u64, available: usize) -> usize {
    usize::try_from(remaining).map_or(available, |r| r.min(available))
}
