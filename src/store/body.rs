//! [`BlobBody`]: the bytes of a committed blob, ready to serve whole or by range.
//!
//! On the filesystem driver a body is the open file: small ranges are positioned reads, large
//! bodies are served from mapped windows (no copy in user space, and only the windows in flight
//! count in the resident set). Other drivers stream from their reader at an offset. Callers use
//! the same methods either way.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
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

/// The bytes of one blob. Clones share the open file or driver.
#[derive(Clone)]
pub enum BlobBody {
    /// A file on a local filesystem (filesystem driver): ranges are positioned reads, and large
    /// bodies can be served from mapped windows ([`BlobBody::map`]) without copying.
    Local {
        /// The open file, shared with the store's cache of open blobs.
        file: Arc<File>,
        /// Its size when opened.
        size: u64,
    },
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
            BlobBody::Local { size, .. } => write!(f, "BlobBody::Local({size} bytes)"),
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
            BlobBody::Local { .. } => None,
            BlobBody::Stream { driver, path, .. } => driver
                .redirect_url(path)
                .map(|r| r.map_err(StoreError::from)),
        }
    }

    /// Size of the blob.
    pub fn len(&self) -> u64 {
        match self {
            BlobBody::Local { size, .. } | BlobBody::Stream { size, .. } => *size,
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

    /// A read-only memory map of `range`, when the body is a local file: serving it copies
    /// nothing in user space, and dropping it returns its pages (they stay in the page cache,
    /// not in the process's resident set).
    pub fn map(&self, range: ByteRange) -> Option<Result<memmap2::Mmap, StoreError>> {
        let BlobBody::Local { file, size } = self else {
            return None;
        };
        let map = || {
            let range = range.check(*size)?;
            let len = usize::try_from(range.len())
                .map_err(|_| StoreError::Input(io::Error::other("range larger than memory")))?;
            // SAFETY: the map is read-only, of a committed blob. Blobs are never modified in place
            // (a blob is replaced only by renaming a new file over it, which leaves this file's
            // inode untouched); a file truncated by a foreign process could still raise SIGBUS.
            #[allow(unsafe_code)]
            let map = unsafe {
                memmap2::MmapOptions::new()
                    .offset(range.start)
                    .len(len)
                    .populate()
                    .map(&**file)
            };
            map.map_err(StoreError::Input)
        };
        Some(map())
    }

    /// Reads `range` into memory: one positioned read for a local file. For small ranges,
    /// where a copy costs less than a map.
    pub fn read_range(&self, range: ByteRange) -> Result<Vec<u8>, StoreError> {
        let range = range.check(self.len())?;
        let mut out = Vec::with_capacity(range.len().min(1 << 20) as usize);
        self.write_to(Some(range), &mut out)?;
        Ok(out)
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
            BlobBody::Local { file, .. } => Box::new(
                LocalReader {
                    file: Arc::clone(file),
                    offset: start,
                }
                .take(len),
            ),
            BlobBody::Stream { driver, path, .. } => driver.reader_range(path, start, len)?,
        })
    }

    /// Writes `range` (whole blob when `None`) to `out`; returns the bytes written.
    pub fn write_to(
        &self,
        range: Option<ByteRange>,
        out: &mut dyn Write,
    ) -> Result<u64, StoreError> {
        let range = match range {
            Some(r) => r.check(self.len())?,
            None => match self.full_range() {
                Some(r) => r,
                None => return Ok(0),
            },
        };
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

/// Positioned reads of a shared open file, from an offset of its own.
struct LocalReader {
    file: Arc<File>,
    offset: u64,
}

impl Read for LocalReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}
