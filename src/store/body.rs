//! [`BlobBody`]: the bytes of a committed blob, ready to serve whole or by range.
//!
//! On the filesystem driver a body is a read-only memory map: a range is a slice of it, and
//! serving it copies nothing in user space. Other drivers stream from their reader at an
//! offset. Callers use the same three methods either way.

use std::io::{self, Read, Write};
use std::sync::Arc;

use crate::storage::{DriverPath, StorageDriver};

use super::StoreError;

/// An inclusive byte range `start..=end`, as in HTTP `Range: bytes=start-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }

    /// Never true: an inclusive range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Checks the range against a blob of `size` bytes (`start <= end < size`).
    pub fn check(self, size: u64) -> Result<Self, StoreError> {
        if self.start > self.end || self.end >= size {
            return Err(StoreError::RangeInvalid {
                start: self.start,
                end: self.end,
                size,
            });
        }
        Ok(self)
    }
}

/// The bytes of one blob.
pub enum BlobBody {
    /// Mapped into memory (filesystem driver): ranges are slices, nothing is copied.
    Mapped(Arc<memmap2::Mmap>),
    /// Streamed from the driver.
    Stream {
        /// The driver holding the blob.
        driver: Arc<dyn StorageDriver>,
        /// The blob's `data` path.
        path: DriverPath,
        /// Its size.
        size: u64,
    },
}

impl std::fmt::Debug for BlobBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobBody::Mapped(map) => write!(f, "BlobBody::Mapped({} bytes)", map.len()),
            BlobBody::Stream { path, size, .. } => {
                write!(f, "BlobBody::Stream({path}, {size} bytes)")
            }
        }
    }
}

impl BlobBody {
    /// Where a client may fetch the blob directly (an object store's presigned URL), when the
    /// driver hands such URLs out (`redirect = true` on S3).
    pub fn redirect_url(&self) -> Option<Result<String, StoreError>> {
        match self {
            BlobBody::Mapped(_) => None,
            BlobBody::Stream { driver, path, .. } => driver
                .redirect_url(path)
                .map(|r| r.map_err(StoreError::from)),
        }
    }

    /// Size of the blob.
    pub fn len(&self) -> u64 {
        match self {
            BlobBody::Mapped(map) => map.len() as u64,
            BlobBody::Stream { size, .. } => *size,
        }
    }

    /// True for the empty blob.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole range of the blob, or `None` for an empty blob (no inclusive range fits).
    pub fn full_range(&self) -> Option<ByteRange> {
        self.len()
            .checked_sub(1)
            .map(|end| ByteRange { start: 0, end })
    }

    /// The bytes of `range` without copying, when the body is mapped.
    pub fn slice(&self, range: ByteRange) -> Result<Option<&[u8]>, StoreError> {
        let range = range.check(self.len())?;
        Ok(match self {
            BlobBody::Mapped(map) => map.get(range.start as usize..=range.end as usize),
            BlobBody::Stream { .. } => None,
        })
    }

    /// A reader over `range` (whole blob when `None`).
    pub fn reader(&self, range: Option<ByteRange>) -> Result<Box<dyn Read + Send>, StoreError> {
        let (start, len) = match range {
            Some(r) => {
                let r = r.check(self.len())?;
                (r.start, r.len())
            }
            None => (0, self.len()),
        };
        Ok(match self {
            BlobBody::Mapped(map) => Box::new(MappedReader {
                map: Arc::clone(map),
                pos: start as usize,
                end: (start + len) as usize,
            }),
            BlobBody::Stream { driver, path, .. } => {
                Box::new(driver.reader(path, start)?.take(len))
            }
        })
    }

    /// Writes `range` (whole blob when `None`) to `out`; returns the bytes written. A mapped
    /// body is written straight from the map.
    pub fn write_to(
        &self,
        range: Option<ByteRange>,
        out: &mut dyn Write,
    ) -> Result<u64, StoreError> {
        let range = match range {
            Some(r) => r,
            None => match self.full_range() {
                Some(r) => r,
                None => return Ok(0),
            },
        };
        if let Some(bytes) = self.slice(range)? {
            out.write_all(bytes).map_err(StoreError::Output)?;
            return Ok(bytes.len() as u64);
        }
        let mut reader = self.reader(Some(range))?;
        copy(&mut *reader, out, range.len())
    }
}

/// Copies with one reused buffer (1 MiB, or less for a short range), telling input errors from
/// output errors.
fn copy(reader: &mut dyn Read, out: &mut dyn Write, len: u64) -> Result<u64, StoreError> {
    let mut buf = vec![0u8; len.clamp(1, 1 << 20) as usize];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::Input(e)),
        };
        out.write_all(&buf[..n]).map_err(StoreError::Output)?;
        total += n as u64;
    }
}

/// A reader over part of a shared map.
struct MappedReader {
    map: Arc<memmap2::Mmap>,
    pos: usize,
    end: usize,
}

impl Read for MappedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.map.get(self.pos..self.end).unwrap_or(&[]);
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n;
        Ok(n)
    }
}
