//! Hashing whole files and streams with flat memory.
//!
//! Regular files are mapped a window at a time ([`WINDOW`] bytes) and each window goes to the
//! hasher in a single call, so no byte is copied into user space and the resident set stays
//! bounded by one window however large the file is. Pipes and other streams are read in
//! [`READ_CHUNK`]-byte reads into one reused buffer.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use memmap2::MmapOptions;

use crate::digest::{Digest, HashAlgorithm};
use crate::hash::Hasher;

/// Bytes mapped at once when hashing a file: large enough that the per-window cost (one mmap,
/// one munmap) vanishes, small enough to keep the resident set flat.
pub const WINDOW: u64 = 64 << 20;

/// Bytes per `read` when hashing a stream.
pub const READ_CHUNK: usize = 1 << 20;

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

/// Feeds the whole of `file` into `hasher`: mapped windows for a regular file, reads otherwise.
pub fn hash_file(file: &File, hasher: &mut Hasher) -> io::Result<()> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        let mut reader = file;
        return hash_reader(&mut reader, hasher);
    }
    let size = meta.len();
    let mut offset = 0;
    while offset < size {
        let len = (size - offset).min(WINDOW);
        let window = map_window(file, offset, len)?;
        hasher.update(&window);
        offset += len;
    }
    Ok(())
}

/// Feeds everything `reader` yields into `hasher`, [`READ_CHUNK`] bytes at a time.
pub fn hash_reader(reader: &mut dyn Read, hasher: &mut Hasher) -> io::Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Maps `len` bytes of `file` from `offset` read-only, asking the kernel to read ahead.
fn map_window(file: &File, offset: u64, len: u64) -> io::Result<memmap2::Mmap> {
    let len = usize::try_from(len).map_err(|_| io::Error::other("window larger than memory"))?;
    // SAFETY: the map is read-only and dropped before this function's caller returns. A file
    // truncated by another process while mapped could raise SIGBUS; layerstore only maps files
    // it never truncates (committed blobs) or files the user named on the command line.
    #[allow(unsafe_code)]
    let map = unsafe { MmapOptions::new().offset(offset).len(len).map(file)? };
    map.advise(memmap2::Advice::Sequential)?;
    Ok(map)
}
