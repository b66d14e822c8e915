//! Streaming reads: a `GetObject` body pumped through a small channel into a blocking `Read`.

use std::io::{self, Read};

use bytes::Bytes;

use super::client::{quick, storage_error, S3Client};
use super::object_size;
use crate::storage::{DriverPath, StorageError};

/// Body chunks buffered between the S3 connection and the reader.
const BUFFERED_CHUNKS: usize = 8;

/// A reader of the object at `path` from `offset`. An offset exactly at the end gives an empty
/// stream; past it is [`StorageError::InvalidOffset`].
pub(crate) fn open(
    client: &S3Client,
    path: &DriverPath,
    offset: u64,
) -> Result<Box<dyn Read + Send>, StorageError> {
    let request = client
        .sdk
        .get_object()
        .bucket(&client.bucket)
        .key(client.key(path))
        .set_range((offset > 0).then(|| format!("bytes={offset}-")));
    let output = match client
        .run(async move { request.customize().config_override(quick()).send().await })
    {
        Ok(output) => output,
        Err(e) if super::client::http_status(&e) == Some(416) => {
            let size =
                object_size(client, path)?.ok_or_else(|| StorageError::NotFound(path.clone()))?;
            if offset == size {
                return Ok(Box::new(io::empty()));
            }
            return Err(StorageError::InvalidOffset {
                path: path.clone(),
                offset,
                size,
            });
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
