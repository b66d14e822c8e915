//! Streaming helpers shared by uploads and fsck: feed a stored file's bytes to a closure
//! (zero-copy from a map when the driver offers one) and fill large buffers from a reader.

use std::io::Read;

use crate::storage::{DriverPath, StorageDriver, StorageError};

use super::StoreError;

/// Bytes per read when consuming a stream, and per write/hash step of an upload.
pub const CHUNK: usize = 8 << 20;

/// Feeds bytes `from..to` of the file at `path` to `sink`: from a memory map when the driver
/// offers one, else from a reader, [`CHUNK`] bytes at a time.
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
    if let Some(map) = driver.map(path) {
        let map = map?;
        let bytes = map
            .get(from as usize..to as usize)
            .ok_or(StoreError::UploadConflict {
                expected: to,
                found: map.len() as u64,
            })?;
        for chunk in bytes.chunks(CHUNK) {
            sink(chunk);
        }
        return Ok(());
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
        return Err(StoreError::UploadConflict {
            expected: to,
            found: from + seen,
        });
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
