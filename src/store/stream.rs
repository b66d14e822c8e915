//! Streaming helpers shared by uploads and fsck: feed a stored file's bytes to a closure
//! (positioned reads of the local file when the driver has one, as `filehash` reads) and fill
//! large buffers from a reader.

use std::io::Read;

use crate::filehash::{self, FileRead};
use crate::storage::{DriverPath, StorageDriver, StorageError};

use super::StoreError;

/// Bytes per read when consuming a stream, and per write/hash step of an upload.
pub const CHUNK: usize = 8 << 20;

/// Feeds bytes `from..to` of the file at `path` to `sink`: read from the local file the way
/// [`filehash`](crate::filehash) reads when the driver has one, else from a reader, [`CHUNK`]
/// bytes at a time.
pub(crate) fn hash_range(
    driver: &dyn StorageDriver,
    path: &DriverPath,
    from: u64,
    to: u64,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<(), StoreError> {
    if from >= to {
        return Ok(());
    }
    let short = |seen: u64| StoreError::UploadConflict {
        expected: to,
        found: from + seen,
    };
    if let Some(file) = driver.file(path) {
        let file = file?;
        let mut seen = 0;
        filehash::for_each_chunk_in(&file, from..to, FileRead::DEFAULT, |chunk| {
            sink(chunk);
            seen += chunk.len() as u64;
            Ok::<_, std::io::Error>(true)
        })
        .map_err(|e| StorageError::io("read", path, e))?;
        return if seen == to - from {
            Ok(())
        } else {
            Err(short(seen))
        };
    }
    let mut reader = driver.reader(path, from)?.take(to - from);
    let mut buf = vec![0u8; (to - from).min(CHUNK as u64) as usize];
    let mut seen = 0;
    loop {
        let n = fill(&mut reader, &mut buf).map_err(|e| StorageError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        sink(&buf[..n]);
        seen += n as u64;
    }
    if seen != to - from {
        return Err(short(seen));
    }
    Ok(())
}

/// Reads until `buf` is full or the stream ends, so appends see large chunks.
pub(crate) fn fill(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
