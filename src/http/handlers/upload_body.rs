//! How an upload request's body reaches the store: streamed in batches to a blocking thread
//! that writes and hashes them ([`receive`]), or, when the request declares a body of at most
//! one batch, gathered whole in the request's task ([`gather`]) and stored by the blocking call
//! that commits it ([`is_small`]). A body that stalls for the idle timeout is refused.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::CONTENT_LENGTH;
use hyper::Request;

use super::common::header_str;
use crate::http::access_log::count_received;
use crate::http::app::AppState;
use crate::http::body::RequestBody;
use crate::http::error::ApiError;
use crate::http::error_code::ErrorCode;
use crate::store::{StoreError, Upload};

/// Bytes of request frames gathered into one batch before it goes to the writer thread. The
/// receiving task gathers them, so the writer is woken once per batch rather than once per
/// frame (a frame is at most one read, `Limits::read_buffer_bytes` in `server.rs`).
const BATCH_BYTES: usize = 1 << 20;

/// Batches queued for the writer thread. With the one being gathered and the one being
/// written, an upload holds at most three batches (3 MiB) of buffers. A batch of 1 MiB is
/// also where writing and hashing split across two threads ([`Upload::append_pieces`]).
const BATCHES_IN_FLIGHT: usize = 1;

/// Streams `body` into `upload` on a blocking thread, in batches. Returns the upload (so the
/// caller can checkpoint or commit it) and whether the whole body arrived and was stored.
pub(super) async fn receive(
    state: &Arc<AppState>,
    mut upload: Upload,
    mut body: RequestBody,
) -> (Upload, Result<(), ApiError>) {
    let _in_progress = state.metrics.upload_in_progress();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(BATCHES_IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || {
        let mut result = Ok(());
        while let Some(batch) = rx.blocking_recv() {
            if let Err(e) = upload.append_pieces(&batch) {
                result = Err(e);
                break;
            }
        }
        (upload, result)
    });
    let mut received = Ok(());
    let mut batch = Batch::default();
    loop {
        let bytes = match next_data(state, &mut body).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => break,
            Err(e) => {
                received = Err(e);
                break;
            }
        };
        if let Some(full) = batch.add(bytes) {
            if tx.send(full).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
    }
    // What arrived before a failure is stored too: the client may resume after it.
    if let Some(rest) = batch.take() {
        let _ = tx.send(rest).await;
    }
    drop(tx);
    match writer.await {
        Ok((upload, written)) => {
            let result = written.map_err(ApiError::from).and(received);
            (upload, result)
        }
        Err(join) => panic!("upload writer thread panicked: {join}"),
    }
}

/// Every data frame of `body`, and whether it ended well (what arrived before a failure is
/// returned too).
pub(super) async fn gather(
    state: &Arc<AppState>,
    body: &mut RequestBody,
) -> (Vec<Bytes>, Result<(), ApiError>) {
    let mut frames = Vec::new();
    loop {
        match next_data(state, body).await {
            Ok(Some(bytes)) => frames.push(bytes),
            Ok(None) => return (frames, Ok(())),
            Err(e) => return (frames, Err(e)),
        }
    }
}

/// The next data frame of `body` (trailers are skipped), `None` at its end. A body that sends
/// nothing for the idle timeout is refused.
async fn next_data(
    state: &Arc<AppState>,
    body: &mut RequestBody,
) -> Result<Option<Bytes>, ApiError> {
    loop {
        let frame = tokio::time::timeout(state.body_idle_timeout, body.frame()).await;
        return match frame {
            Ok(None) => Ok(None),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(bytes) => {
                    count_received(bytes.len());
                    Ok(Some(bytes))
                }
                Err(_) => continue, // trailers
            },
            Ok(Some(Err(e))) => Err(ApiError::from(StoreError::Input(std::io::Error::other(e)))),
            Err(_) => Err(ApiError::with_message(
                ErrorCode::BlobUploadInvalid,
                "request body stalled",
            )),
        };
    }
}

/// True when the request says its body fits in one batch: it is gathered whole ([`gather`])
/// and stored with the commit. The declared length bounds what is gathered (hyper ends the
/// body there).
pub(super) fn is_small(request: &Request<RequestBody>) -> bool {
    content_length(request).is_some_and(|length| length <= BATCH_BYTES as u64)
}

/// The `Content-Length` the request declares, if any.
pub(super) fn content_length(request: &Request<RequestBody>) -> Option<u64> {
    header_str(request.headers(), &CONTENT_LENGTH)?.parse().ok()
}

/// Request frames gathered until they hold [`BATCH_BYTES`].
#[derive(Default)]
struct Batch {
    frames: Vec<Bytes>,
    size: usize,
}

impl Batch {
    /// Adds `frame`; returns the batch once it is full.
    fn add(&mut self, frame: Bytes) -> Option<Vec<Bytes>> {
        self.size += frame.len();
        self.frames.push(frame);
        (self.size >= BATCH_BYTES).then(|| self.take()).flatten()
    }

    /// The frames gathered so far, if any.
    fn take(&mut self) -> Option<Vec<Bytes>> {
        self.size = 0;
        let frames = std::mem::take(&mut self.frames);
        (!frames.is_empty()).then_some(frames)
    }
}
