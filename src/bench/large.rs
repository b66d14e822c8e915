//! The large-blob pushes: one monolithic PUT, and PATCH chunks with `Content-Range`.
//! Bodies stream from the generator; the digest was computed beforehand (see the module
//! doc of `bench`), so the timed part is request traffic only.

use std::time::Instant;

use http_body_util::BodyExt;
use indicatif::ProgressBar;

use super::client::{self, Connection};
use super::error::BenchError;
use super::protocol::{self, Session};
use super::stats::{megabytes_per_second, per_second, Latencies};
use super::{LargeBlob, Metrics};

/// POST + PUT `?digest=` with the whole blob as the body; then HEAD (untimed) to check it.
pub async fn monolithic(
    conn: &mut Connection,
    blob: &LargeBlob,
    bar: ProgressBar,
) -> Result<Metrics, BenchError> {
    let len = blob.content.len();
    let start = Instant::now();
    let body = blob.content.body(0, len).with_progress(bar.clone()).boxed();
    protocol::push_monolithic(conn, &blob.repository, &blob.digest, len, body).await?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    protocol::check_blob(conn, &blob.repository, &blob.digest, len).await?;
    Ok(Metrics {
        seconds: elapsed.as_secs_f64(),
        bytes: len,
        operations: 1,
        connections: 1,
        megabytes_per_second: megabytes_per_second(len, elapsed),
        operations_per_second: per_second(1, elapsed),
        ..Metrics::default()
    })
}

/// POST, PATCH `chunk_size` pieces in order, PUT `?digest=` with no body; then HEAD (untimed).
/// Operations and latency are per PATCH.
pub async fn chunked(
    conn: &mut Connection,
    blob: &LargeBlob,
    chunk_size: u64,
    bar: ProgressBar,
) -> Result<Metrics, BenchError> {
    let len = blob.content.len();
    let mut latencies = Latencies::new();
    let start = Instant::now();
    let session = protocol::start_upload(conn, &blob.repository).await?;
    let session = send_chunks(conn, session, blob, len, chunk_size, &bar, &mut latencies).await?;
    protocol::complete_upload(conn, &session, &blob.digest, 0, client::empty()).await?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    protocol::check_blob(conn, &blob.repository, &blob.digest, len).await?;
    let chunks = latencies.len() as u64;
    Ok(Metrics {
        seconds: elapsed.as_secs_f64(),
        bytes: len,
        operations: chunks,
        connections: 1,
        megabytes_per_second: megabytes_per_second(len, elapsed),
        operations_per_second: per_second(chunks, elapsed),
        latency: latencies.summary(),
        server: None,
    })
}

/// PATCHes bytes `0..end` of `blob` in `chunk_size` pieces, in order, recording each PATCH's
/// latency; returns the session to continue with.
pub async fn send_chunks(
    conn: &mut Connection,
    mut session: Session,
    blob: &LargeBlob,
    end: u64,
    chunk_size: u64,
    bar: &ProgressBar,
    latencies: &mut Latencies,
) -> Result<Session, BenchError> {
    let mut offset = 0;
    while offset < end {
        let piece = chunk_size.min(end - offset);
        let body = blob.content.body(offset, piece).with_progress(bar.clone());
        let sent = Instant::now();
        session = protocol::send_chunk(conn, &session, offset, piece, body.boxed()).await?;
        latencies.record(sent.elapsed());
        offset += piece;
    }
    Ok(session)
}
