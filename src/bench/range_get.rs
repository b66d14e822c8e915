//! Random-offset range GETs of the large blob over many connections: requests/s and latency.
//! Each reply must be 206 with the exact `Content-Range`, and its bytes must equal the bytes
//! the generator produces at that offset (regenerating 4 KiB costs about a microsecond).

use std::sync::Arc;
use std::time::Instant;

use hyper::{header, Method};
use indicatif::ProgressBar;

use super::client::{self, Connection, Targets};
use super::content::derive_seed;
use super::error::BenchError;
use super::protocol;
use super::workers::{self, Stop, Tally};
use super::{BenchOptions, LargeBlob, Metrics};

const STEP: &str = "range GET";

/// Runs `options.range_connections` workers for `options.range_duration`.
pub async fn run(
    targets: Arc<Targets>,
    blob: LargeBlob,
    seed: u64,
    options: &BenchOptions,
    progress: ProgressBar,
) -> Result<Metrics, BenchError> {
    let range = options.range_size.min(blob.content.len());
    let blob = Arc::new(blob);
    workers::run(
        options.range_connections,
        options.range_duration,
        progress,
        |index, stop| {
            let conn = Connection::rotating(Arc::clone(&targets));
            let offsets = Offsets::new(derive_seed(seed, index as u64));
            worker(conn, Arc::clone(&blob), range, offsets, stop)
        },
    )
    .await
}

async fn worker(
    mut conn: Connection,
    blob: Arc<LargeBlob>,
    range: u64,
    mut offsets: Offsets,
    stop: Stop,
) -> Result<Tally, BenchError> {
    let len = blob.content.len();
    let path = protocol::blob_path(&conn, &blob.repository, &blob.digest);
    let mut tally = Tally::default();
    while !stop.now() {
        let first = offsets.next_below(len - range + 1);
        let last = first + range - 1;
        let request = client::request(Method::GET, &path)
            .header(header::RANGE, format!("bytes={first}-{last}"))
            .body(client::empty())
            .map_err(|source| BenchError::Request { step: STEP, source })?;
        let sent = Instant::now();
        let response = conn.send(STEP, request).await?;
        client::expect_status(STEP, &response, 206)?;
        let content_range = format!("bytes {first}-{last}/{len}");
        protocol::expect_header(STEP, &response, "content-range", &content_range)?;
        let limit = usize::try_from(range).unwrap_or(usize::MAX);
        let body = client::read_body(STEP, response.into_body(), limit).await?;
        tally.latencies.record(sent.elapsed());
        if body.len() as u64 != range {
            return Err(BenchError::LengthMismatch {
                step: STEP,
                expected: range,
                got: body.len() as u64,
            });
        }
        if body != blob.content.bytes(first, body.len()) {
            return Err(BenchError::ContentMismatch {
                step: STEP,
                offset: first,
            });
        }
        tally.operations += 1;
        tally.bytes += range;
        stop.tick();
    }
    Ok(tally)
}

/// xorshift64*: offsets only need to be spread and cheap, not secret.
#[derive(Debug)]
struct Offsets(u64);

impl Offsets {
    fn new(seed: u64) -> Self {
        Offsets(seed | 1) // xorshift's state must not be zero
    }

    /// A value in `0..bound` (`bound` ≥ 1); the modulo bias is below 2^-40 for any blob size
    /// a benchmark uses.
    fn next_below(&mut self, bound: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_stay_in_bounds_and_spread() {
        let mut offsets = Offsets::new(0);
        let mut seen = [false; 16];
        for _ in 0..1000 {
            let value = offsets.next_below(16);
            seen[value as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(offsets.next_below(1), 0);
        assert_eq!(offsets.next_below(0), 0);
    }
}
