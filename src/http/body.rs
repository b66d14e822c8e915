//! Response bodies: empty, small in-memory, mapped windows of a local blob, and streams.
//!
//! A large body of a local blob is sent as windows mapped one after another: each window
//! becomes [`Bytes`] that *own* the map ([`Bytes::from_owner`]), so hyper writes straight from the
//! page cache with no copy in user space, and the window is unmapped once written, so the
//! process's resident set holds a few windows whatever the blob's size. Small ranges are one
//! positioned read. Blobs on other drivers are streamed from a blocking reader through a small
//! bounded channel, so memory stays flat whatever the size.

use std::convert::Infallible;
use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use sync_wrapper::SyncWrapper;

use crate::store::{BlobBody, ByteRange};

/// The body type of every response.
pub type Body = BoxBody<Bytes, io::Error>;

/// Any error a request body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every request as the handlers read it: whatever body the server or the
/// embedding framework gave (hyper's `Incoming`, an axum `Body`), boxed once per request.
///
/// It is `Sync` although the body inside may not be (axum's is not): handlers keep a
/// `&Request` across awaits, which a `Send` future allows only for `Sync` types, and the
/// [`SyncWrapper`] gives access only through `&mut`, which makes sharing `&RequestBody` safe.
/// The price: `is_end_stream` and `size_hint` cannot look inside and give the defaults, which
/// no handler relies on.
pub struct RequestBody(SyncWrapper<UnsyncBoxBody<Bytes, BoxError>>);

/// `body` as a [`RequestBody`].
pub fn request_body<B>(body: B) -> RequestBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    RequestBody(SyncWrapper::new(body.map_err(Into::into).boxed_unsync()))
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestBody")
    }
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(self.get_mut().0.get_mut()).poll_frame(cx)
    }
}

/// Bytes per frame when streaming from a driver reader.
const STREAM_CHUNK: usize = 256 * 1024;

/// No body.
pub fn empty() -> Body {
    Empty::<Bytes>::new().map_err(never).boxed()
}

/// A body held in memory (JSON documents, manifests).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(never).boxed()
}

fn never(e: Infallible) -> io::Error {
    match e {}
}

/// A body of several in-memory pieces, sent as one frame each (no concatenation copy).
pub fn frames(parts: Vec<Bytes>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(parts.len().max(1));
    for part in parts {
        // The channel holds every part, so this never waits or fails.
        let _ = tx.try_send(Ok(Frame::data(part)));
    }
    BodyExt::boxed(StreamBody::new(ChannelStream(rx)))
}

/// Owns one mapped window so [`Bytes`] can borrow from it for as long as hyper needs; the window
/// is unmapped when hyper drops the frame.
struct MapOwner(memmap2::Mmap);

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Bodies of at most this many bytes from a local file are read into memory in one positioned
/// read; larger ones are sent as mapped windows.
pub const SMALL_READ: u64 = 64 << 10;

/// Bytes per mapped window of a large body: each is mapped (populated) on a blocking thread,
/// handed to hyper without a copy, and unmapped once written, so a pull's resident set is a few
/// windows whatever the blob's size.
pub const MAP_WINDOW: u64 = 2 << 20;

/// The bytes of `range` of a blob (the whole blob when `None`), as a body.
///
/// Must be called where blocking is allowed: it may read the file, or open a driver's reader.
pub fn blob(body: &BlobBody, range: Option<ByteRange>) -> io::Result<Body> {
    let Some(range) = range.or_else(|| body.full_range()) else {
        return Ok(empty());
    };
    match body {
        BlobBody::Local { .. } if range.len() <= SMALL_READ => small(body, range),
        BlobBody::Local { .. } => Ok(mapped_windows(body.clone(), range)),
        BlobBody::Stream { .. } => {
            let reader = body.reader(Some(range)).map_err(io::Error::other)?;
            Ok(stream_reader(reader))
        }
    }
}

/// `range` of a blob read into memory, as a body of one frame.
pub fn small(body: &BlobBody, range: ByteRange) -> io::Result<Body> {
    let bytes = body.read_range(range).map_err(io::Error::other)?;
    Ok(full(bytes))
}

/// Streams `range` of a local blob as mapped windows of [`MAP_WINDOW`] bytes, mapped by a
/// blocking task a channel of two ahead of hyper.
fn mapped_windows(body: BlobBody, range: ByteRange) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Frame<Bytes>>>(2);
    tokio::task::spawn_blocking(move || {
        let mut start = range.start;
        while start <= range.end {
            let end = range.end.min(start + MAP_WINDOW - 1);
            let window = body.map(ByteRange { start, end }).map(|map| {
                map.map(|map| Frame::data(Bytes::from_owner(MapOwner(map))))
                    .map_err(io::Error::other)
            });
            let Some(item) = window else { return };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return; // client gone, or error delivered
            }
            start = end + 1;
        }
    });
    BodyExt::boxed(StreamBody::new(ChannelStream(rx)))
}

/// Streams a blocking reader: a blocking task reads `STREAM_CHUNK`-byte pieces into a channel
/// of two, so at most a few chunks are in memory at once.
///
/// Each piece is filled before it is sent: a reader may return far less than asked per call
/// (an object store's body arrives in pieces of a few KiB), and a frame and a fresh buffer per
/// such piece cost more than the bytes do.
pub fn stream_reader(mut reader: Box<dyn Read + Send>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Frame<Bytes>>>(2);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = Vec::with_capacity(STREAM_CHUNK);
        let item = match reader
            .by_ref()
            .take(STREAM_CHUNK as u64)
            .read_to_end(&mut buf)
        {
            Ok(0) => return,
            Ok(_) => Ok(Frame::data(Bytes::from(buf))),
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if tx.blocking_send(item).is_err() || failed {
            return; // client gone, or error delivered
        }
    });
    BodyExt::boxed(StreamBody::new(ChannelStream(rx)))
}

/// An mpsc receiver as a `Stream` of frames.
struct ChannelStream(tokio::sync::mpsc::Receiver<io::Result<Frame<Bytes>>>);

impl futures_core::Stream for ChannelStream {
    type Item = io::Result<Frame<Bytes>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most 4 KiB per call, as an object store's body does.
    struct Trickle(io::Cursor<Vec<u8>>);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(4096);
            self.0.read(&mut buf[..n])
        }
    }

    #[tokio::test]
    async fn a_trickling_reader_is_streamed_in_whole_pieces() {
        let bytes: Vec<u8> = (0..STREAM_CHUNK * 2 + 1000).map(|i| i as u8).collect();
        let mut body = stream_reader(Box::new(Trickle(io::Cursor::new(bytes.clone()))));
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        let sizes: Vec<usize> = frames.iter().map(Bytes::len).collect();
        assert_eq!(sizes, vec![STREAM_CHUNK, STREAM_CHUNK, 1000]);
        assert_eq!(frames.concat(), bytes);
    }
}
