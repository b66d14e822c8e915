//! Hashing whole files and streams with flat memory.
//!
//! Every path that hashes stored or named files (`layerstore digest`, `tarsum`, `put`, fsck, the
//! store's re-hash of a committed upload) reads them through [`for_each_chunk`], so one
//! measured choice decides how bytes reach the hasher: [`FileRead::DEFAULT`].
//!
//! Why reads and not memory maps: a map costs a page fault (and a page-table entry to tear
//! down) per 4 KiB page it touches, while `read` copies the bytes out of the page cache at
//! memory speed. Which costs less depends on the machine (see `docs/benchmarks.md`, "Hashing a
//! file"): reads are never far behind, maps were far behind on one of this project's machines,
//! and every page touched through a map counts in the process's resident set while reads keep
//! it at one buffer.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::Path;

use memmap2::MmapOptions;

use crate::digest::{Digest, HashAlgorithm};
use crate::hash::Hasher;

/// Bytes per `read` when hashing a stream (pipes, standard input).
pub const READ_CHUNK: usize = 1 << 20;

/// How the bytes of a regular file reach the code that consumes them.
///
/// [`FileRead::DEFAULT`] is what layerstore uses; the others exist so the choice can be measured
/// (`cargo bench --bench hash -- file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRead {
    /// `read` into one reused buffer of this many bytes.
    Buffered(usize),
    /// Read-only maps of this many bytes at a time, with `MADV_SEQUENTIAL`.
    Mapped(usize),
    /// As [`FileRead::Mapped`], with `MAP_POPULATE`: the kernel fills the page tables when
    /// mapping instead of one fault per page.
    MappedPopulated(usize),
}

impl FileRead {
    /// The measured choice: 1 MiB reads. On an AMD EPYC (SHA-NI) they hash within 10% of maps
    /// in a hot loop and as fast as maps and `openssl dgst` from the command line; on an Intel
    /// Xeon, maps took 64% more CPU per GiB than reads. Reads are the choice that cannot be much
    /// worse anywhere.
    pub const DEFAULT: FileRead = FileRead::Buffered(1 << 20);
}

/// The digest of the file at `path`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("blob");
/// std::fs::write(&path, b"abc").unwrap();
/// let d = layerstore::filehash::digest_file(&path, layerstore::digest::HashAlgorithm::Sha256)
///     .unwrap();
/// assert_eq!(d, layerstore::Digest::sha256(b"abc"));
/// ```
pub fn digest_file(path: &Path, algorithm: HashAlgorithm) -> io::Result<Digest> {
    let file = File::open(path)?;
    let mut hasher = Hasher::new(algorithm);
    hash_file(&file, &mut hasher)?;
    Ok(hasher.digest())
}

/// Feeds the whole of `file` into `hasher`.
pub fn hash_file(file: &File, hasher: &mut Hasher) -> io::Result<()> {
    for_each_chunk(file, FileRead::DEFAULT, |chunk| {
        hasher.update(chunk);
        Ok::<_, io::Error>(true)
    })
}

/// Feeds everything `reader` yields into `hasher`, [`READ_CHUNK`] bytes at a time.
pub fn hash_reader(reader: &mut dyn Read, hasher: &mut Hasher) -> io::Result<()> {
    for_each_read(reader, |chunk| {
        hasher.update(chunk);
        Ok::<_, io::Error>(true)
    })
}

/// Calls `visit` with each read of `reader` (into one [`READ_CHUNK`]-byte buffer) until the
/// reader's end, or until `visit` returns `Ok(false)` or an error.
pub fn for_each_read<E: From<io::Error>>(
    reader: &mut dyn Read,
    visit: impl FnMut(&[u8]) -> Result<bool, E>,
) -> Result<(), E> {
    read_chunks(reader, &mut vec![0u8; READ_CHUNK], visit)
}

/// Calls `visit` with successive pieces of `file`, from its start to its end, until `visit`
/// returns `Ok(false)` or an error. Regular files are read the way `how` says (positioned reads,
/// so the file's cursor does not matter); pipes and other streams are read from where they are.
///
/// Memory stays flat: one buffer, or one mapped window at a time.
///
/// ```
/// use layerstore::filehash::{for_each_chunk, FileRead};
/// let mut file = tempfile::tempfile().unwrap();
/// std::io::Write::write_all(&mut file, &[7u8; 100_000]).unwrap();
/// let mut total = 0;
/// for_each_chunk(&file, FileRead::Buffered(4096), |chunk| {
///     total += chunk.len();
///     Ok::<_, std::io::Error>(true)
/// })
/// .unwrap();
/// assert_eq!(total, 100_000);
/// ```
pub fn for_each_chunk<E: From<io::Error>>(
    file: &File,
    how: FileRead,
    visit: impl FnMut(&[u8]) -> Result<bool, E>,
) -> Result<(), E> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return for_each_read(&mut &*file, visit);
    }
    for_each_chunk_in(file, 0..meta.len(), how, visit)
}

/// As [`for_each_chunk`], for the bytes `range` of a regular file. A file shorter than the
/// range yields what it has: callers compare the count when it matters.
pub fn for_each_chunk_in<E: From<io::Error>>(
    file: &File,
    range: Range<u64>,
    how: FileRead,
    visit: impl FnMut(&[u8]) -> Result<bool, E>,
) -> Result<(), E> {
    match how {
        FileRead::Buffered(size) => {
            let len = range.end.saturating_sub(range.start);
            let mut reader = PositionedReader {
                file,
                offset: range.start,
            }
            .take(len);
            let buf_len = (size.max(1) as u64).min(len.max(1)) as usize;
            read_chunks(&mut reader, &mut vec![0u8; buf_len], visit)
        }
        FileRead::Mapped(window) => mapped(file, range, window, false, visit),
        FileRead::MappedPopulated(window) => mapped(file, range, window, true, visit),
    }
}

/// Reads `reader` into `buf` until its end, handing each read to `visit`.
fn read_chunks<E: From<io::Error>>(
    reader: &mut dyn Read,
    buf: &mut [u8],
    mut visit: impl FnMut(&[u8]) -> Result<bool, E>,
) -> Result<(), E> {
    loop {
        match reader.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if !visit(&buf[..n])? {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads a file with `pread` from an offset of its own.
struct PositionedReader<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Maps `range` of `file` a window at a time, handing each window to `visit`.
fn mapped<E: From<io::Error>>(
    file: &File,
    range: Range<u64>,
    window: usize,
    populate: bool,
    mut visit: impl FnMut(&[u8]) -> Result<bool, E>,
) -> Result<(), E> {
    let end = range.end.min(file.metadata()?.len());
    let window = window.max(1) as u64;
    let mut offset = range.start;
    while offset < end {
        let len = (end - offset).min(window);
        let map = map_window(file, offset, len, populate)?;
        if !visit(&map)? {
            return Ok(());
        }
        offset += len;
    }
    Ok(())
}

/// Maps `len` bytes of `file` from `offset` read-only, asking the kernel to read ahead.
fn map_window(file: &File, offset: u64, len: u64, populate: bool) -> io::Result<memmap2::Mmap> {
    let len = usize::try_from(len).map_err(|_| io::Error::other("window larger than memory"))?;
    let mut options = MmapOptions::new();
    options.offset(offset).len(len);
    if populate {
        options.populate();
    }
    // SAFETY: the map is read-only and dropped before the next window is mapped. A file
    // truncated by another process while mapped could raise SIGBUS; layerstore only maps files
    // it never truncates (committed blobs) or files the user named on the command line.
    #[allow(unsafe_code)]
    let map = unsafe { options.map(file)? };
    map.advise(memmap2::Advice::Sequential)?;
    Ok(map)
}
