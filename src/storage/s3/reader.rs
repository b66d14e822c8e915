//! Streaming reads: a `GetObject` body pumped through a small channel into a blocking `Read`.

use std::io::{self, Read};

use bytes::Bytes;

use super::client::{quick, storage_error, S3Client};
use super::object_size;
use crate::storage::{DriverPath, StorageError};

/// Body chunks buffered between the S3 connection and the reader.
const BUFFERED_CHUNKS: usize = 8;

/// A reader of the object at `path` from `offset`: to its end, or `len` bytes of it (fewer if
/// it ends first), asked for as that range. An offset exactly at the end gives an empty stream;
/// past it is [`StorageError::InvalidOffset`].
pub(crate) fn open(
    client: &S3Client,
    path: &DriverPath,
    offset: u64,
    len: Option<u64>,
) -> Result<Box<dyn Read + Send>, StorageError> {
    let range = match len {
        Some(0) => return empty_range(client, path, offset, true),
        Some(len) => Some(format!("bytes={offset}-{}", offset.saturating_add(len - 1))),
        None => (offset > 0).then(|| format!("bytes={offset}-")),
    };
    let request = client
        .sdk
        .get_object()
        .bucket(&client.bucket)
        .key(client.key(path))
        .set_range(range);
    let output = match client
        .run(async move { request.customize().config_override(quick()).send().await })
    {
        Ok(output) => output,
        Err(e) if super::client::http_status(&e) == Some(416) => {
            return empty_range(client, path, offset, false);
        }
        Err(e) => return Err(storage_error("GetObject", path, e)),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(BUFFERED_CHUNKS);
    let mut body = output.body;
    client.spawn(async move {
        while let Some(chunk) = body.next().await {
            let failed = chunk.is_err();
            if tx.send(chunk.map_err(io::Error::other)).await.is_err() || failed {
                break; // the reader is gone, or the stream ended in an error
            }
        }
    });
    Ok(Box::new(BodyReader {
        rx,
        current: Bytes::new(),
    }))
}

/// A range S3 does not serve: an empty stream if it starts at the object's end (or anywhere in
/// it, when `empty_request`: zero bytes were asked for), else [`StorageError::InvalidOffset`].
fn empty_range(
    client: &S3Client,
    path: &DriverPath,
    offset: u64,
    empty_request: bool,
) -> Result<Box<dyn Read + Send>, StorageError> {
    let size = object_size(client, path)?.ok_or_else(|| StorageError::NotFound(path.clone()))?;
    if offset == size || (empty_request && offset < size) {
        return Ok(Box::new(io::empty()));
    }
    Err(StorageError::InvalidOffset {
        path: path.clone(),
        offset,
        size,
    })
}

/// The blocking end of the channel.
struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
