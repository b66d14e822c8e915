//! Pull of the large blob: one GET, every byte hashed and counted. Hashing runs on a blocking
//! thread fed through a bounded channel, so the socket is drained while earlier bytes are
//! hashed; the time stops when the digest is known, because an unverified pull is no pull.

use std::time::Instant;

use bytes::Bytes;
use hyper::Method;
use indicatif::ProgressBar;

use super::client::{self, Connection};
use super::error::BenchError;
use super::protocol;
use super::stats::{megabytes_per_second, per_second};
use super::{LargeBlob, Metrics};
use crate::digest::HashAlgorithm;
use crate::hash::Hasher;

const STEP: &str = "pull (GET)";

/// Frames in flight between the receiving task and the hashing thread.
const HASH_QUEUE: usize = 64;

/// GETs the blob and checks its status, `Content-Length`, length and SHA-256.
pub async fn run(
    conn: &mut Connection,
    blob: &LargeBlob,
    bar: ProgressBar,
) -> Result<Metrics, BenchError> {
    let len = blob.content.len();
    let path = protocol::blob_path(conn, &blob.repository, &blob.digest);
    let request = client::request(Method::GET, &path)
        .body(client::empty())
        .map_err(|source| BenchError::Request { step: STEP, source })?;
    let start = Instant::now();
    let response = conn.send(STEP, request).await?;
    client::expect_status(STEP, &response, 200)?;
    if client::header(&response, "content-length").is_some() {
        protocol::expect_header(STEP, &response, "content-length", &len.to_string())?;
    }
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE);
    let hashing = tokio::task::spawn_blocking(move || {
        let mut hasher = Hasher::new(HashAlgorithm::Sha256);
        while let Some(data) = receiver.blocking_recv() {
            hasher.update(&data);
        }
        hasher.digest()
    });
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = client::next_frame(STEP, &mut body).await? {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if received > len {
            break; // too long: stop reading, report below
        }
        bar.inc(data.len() as u64);
        if sender.send(data).await.is_err() {
            break; // the hashing thread is gone; its join reports why
        }
    }
    drop(sender);
    let digest = hashing.await?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    if received != len {
        return Err(BenchError::LengthMismatch {
            step: STEP,
            expected: len,
            got: received,
        });
    }
    if digest != blob.digest {
        return Err(BenchError::DigestMismatch {
            step: STEP,
            expected: blob.digest.clone(),
            got: digest,
        });
    }
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
