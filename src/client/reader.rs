//! [`BlobReader`]: random access to a blob through range requests, so a caller can open a
//! 10 GiB layer and read 4 KiB from its middle. Async ([`tokio::io::AsyncRead`] +
//! [`tokio::io::AsyncSeek`]) and blocking ([`std::io::Read`] + [`std::io::Seek`], through
//! [`BlobReader::blocking`]).
//!
//! Reads are fetched in windows of at least [`READ_AHEAD`] bytes, so small sequential reads
//! do not each cost a round trip. Ranges cannot be verified against the digest; a caller that
//! needs integrity reads the whole blob ([`Registry::get_blob`]).

use std::future::Future;
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

use super::error::ClientError;
use super::registry::Registry;
use crate::digest::Digest;

/// Bytes fetched per range request at least.
pub const READ_AHEAD: u64 = 1 << 20;

type Fetch = Pin<Box<dyn Future<Output = Result<Bytes, ClientError>> + Send>>;

/// A seekable reader over one blob of a repository.
pub struct BlobReader {
    registry: Registry,
    repo: String,
    digest: Digest,
    size: u64,
    /// Position of the next byte handed out.
    position: u64,
    /// Fetched bytes starting at `window_start`.
    window: Bytes,
    window_start: u64,
    fetch: Option<Fetch>,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A reader over blob `digest` of `repo`, whose size is asked with a `HEAD`.
    ///
    /// ```
    /// # layerstore::client::doctest::with_registry(|host| async move {
    /// use std::io::SeekFrom;
    /// use tokio::io::{AsyncReadExt, AsyncSeekExt};
    /// use layerstore::client::{ClientOptions, Registry};
    ///
    /// let registry = Registry::new(&host, ClientOptions::plain_http())?;
    /// let digest = registry.push_blob_bytes("r", vec![7u8; 3 << 20].into()).await?;
    /// let mut reader = registry.blob_reader("r", &digest).await?;
    /// reader.seek(SeekFrom::Start(2 << 20)).await.unwrap();
    /// let mut page = [0u8; 4096];
    /// reader.read_exact(&mut page).await.unwrap(); // one range request
    /// assert_eq!(page, [7u8; 4096]);
    /// # Ok(()) });
    /// ```
    pub async fn blob_reader(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<BlobReader, ClientError> {
        let size = self
            .blob_size(repo, digest)
            .await?
            .ok_or_else(|| ClientError::Protocol(format!("{repo}@{digest}: blob unknown")))?;
        Ok(BlobReader {
            registry: self.clone(),
            repo: repo.to_owned(),
            digest: digest.clone(),
            size,
            position: 0,
            window: Bytes::new(),
            window_start: 0,
            fetch: None,
        })
    }
}

impl BlobReader {
    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Up to `len` bytes from `offset` (fewer at the end; empty past it), independent of the
    /// reader's position.
    pub async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, ClientError> {
        let len = len.min(self.size.saturating_sub(offset));
        self.registry
            .get_blob_range(&self.repo, &self.digest, offset, len)
            .await
    }

    /// A blocking `Read + Seek` view for threads that are not async tasks: each read waits on
    /// `runtime`. Must not be used from inside an async task (it would block the runtime).
    pub fn blocking(self, runtime: tokio::runtime::Handle) -> BlockingBlobReader {
        BlockingBlobReader {
            inner: self,
            runtime,
        }
    }

    /// The buffered bytes at the current position.
    fn buffered(&self) -> &[u8] {
        let end = self.window_start + self.window.len() as u64;
        if self.position >= self.window_start && self.position < end {
            &self.window[(self.position - self.window_start) as usize..]
        } else {
            &[]
        }
    }

    fn start_fetch(&mut self, wanted: usize) {
        let offset = self.position;
        let len = (wanted as u64).max(READ_AHEAD).min(self.size - offset);
        let (registry, repo, digest) = (
            self.registry.clone(),
            self.repo.clone(),
            self.digest.clone(),
        );
        self.fetch = Some(Box::pin(async move {
            registry.get_blob_range(&repo, &digest, offset, len).await
        }));
        // The old window goes now: until the fetch lands, nothing is buffered.
        self.window = Bytes::new();
        self.window_start = offset;
    }
}

impl AsyncRead for BlobReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let buffered = this.buffered();
            if !buffered.is_empty() {
                let n = buffered.len().min(buf.remaining());
                buf.put_slice(&buffered[..n]);
                this.position += n as u64;
                return Poll::Ready(Ok(()));
            }
            if this.position >= this.size || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if this.fetch.is_none() {
                this.start_fetch(buf.remaining());
            }
            let fetch = this.fetch.as_mut().expect("a fetch was started");
            let fetched = std::task::ready!(fetch.as_mut().poll(cx));
            this.fetch = None;
            match fetched {
                Ok(bytes) if bytes.is_empty() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the registry sent no bytes",
                    )))
                }
                Ok(bytes) => this.window = bytes,
                Err(e) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
    }
}

impl AsyncSeek for BlobReader {
    fn start_seek(mut self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let target = match position {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        if target != self.position {
            self.fetch = None;
        }
        self.position = target;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.position))
    }
}

/// [`BlobReader`] as a blocking `Read + Seek`.
#[derive(Debug)]
pub struct BlockingBlobReader {
    inner: BlobReader,
    runtime: tokio::runtime::Handle,
}

impl std::io::Read for BlockingBlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        let Self { inner, runtime } = self;
        runtime.block_on(inner.read(buf))
    }
}

impl std::io::Seek for BlockingBlobReader {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        use tokio::io::AsyncSeekExt;
        let Self { inner, runtime } = self;
        runtime.block_on(inner.seek(position))
    }
}
