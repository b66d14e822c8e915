//! Resuming a large upload: how long a client waits to learn where an interrupted upload
//! stands (`GET` status) and to send its next chunk (`PATCH`), with `blob_size` bytes
//! already stored. A server that replays or re-hashes what it holds takes time in proportion
//! to the size; one that restores a saved hash state does not.
//!
//! Untimed: POST and PATCHes of `chunk_size` up to [`TAIL`] bytes before the end. Timed,
//! [`RESUMES`] times: status (204, `Range: 0-END` naming exactly the bytes sent) and one
//! [`PIECE`]-byte PATCH. Untimed again: PUT `?digest=` and HEAD, so the stored blob is checked.

use std::time::Instant;

use http_body_util::BodyExt;
use indicatif::ProgressBar;

use super::client::{self, Connection};
use super::error::BenchError;
use super::protocol::{self, Session};
use super::stats::{megabytes_per_second, per_second, Latencies};
use super::{large, LargeBlob, Metrics};

/// Status + PATCH pairs timed per run.
pub const RESUMES: u64 = 20;
/// Bytes sent by each timed PATCH.
pub const PIECE: u64 = 4096;
/// Bytes left for the timed PATCHes.
pub const TAIL: u64 = RESUMES * PIECE;

/// Runs the scenario on `blob` (at least [`TAIL`] + 1 bytes: the first status must name a
/// non-empty range).
pub async fn run(
    conn: &mut Connection,
    blob: &LargeBlob,
    chunk_size: u64,
    bar: ProgressBar,
) -> Result<Metrics, BenchError> {
    let len = blob.content.len();
    let parked = len
        .checked_sub(TAIL)
        .filter(|&p| p > 0)
        .ok_or(BenchError::InvalidOption {
            option: "blob size",
            reason: "push-resume needs a blob larger than 80 KiB",
        })?;
    let session = protocol::start_upload(conn, &blob.repository).await?;
    let mut setup = Latencies::new(); // not reported: only the resumes are timed
    let mut session =
        large::send_chunks(conn, session, blob, parked, chunk_size, &bar, &mut setup).await?;
    bar.finish_and_clear();
    let mut offset = parked;
    let mut latencies = Latencies::new();
    let start = Instant::now();
    while offset < len {
        let resumed = Instant::now();
        session = resume_once(conn, &session, blob, offset).await?;
        latencies.record(resumed.elapsed());
        offset += PIECE;
    }
    let elapsed = start.elapsed();
    protocol::complete_upload(conn, &session, &blob.digest, 0, client::empty()).await?;
    protocol::check_blob(conn, &blob.repository, &blob.digest, len).await?;
    Ok(Metrics {
        seconds: elapsed.as_secs_f64(),
        bytes: TAIL,
        operations: RESUMES,
        connections: 1,
        megabytes_per_second: megabytes_per_second(TAIL, elapsed),
        operations_per_second: per_second(RESUMES, elapsed),
        latency: latencies.summary(),
        server: None,
    })
}

/// One resume: ask where the upload stands, check it is `offset`, send the next piece.
async fn resume_once(
    conn: &mut Connection,
    session: &Session,
    blob: &LargeBlob,
    offset: u64,
) -> Result<Session, BenchError> {
    let session = protocol::upload_status(conn, session, offset).await?;
    let body = blob.content.body(offset, PIECE).boxed();
    protocol::send_chunk(conn, &session, offset, PIECE, body).await
}
