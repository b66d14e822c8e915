//! Small-blob pushes from concurrent workers: pushes/s and latency of POST + PUT `?digest=`.
//! Every blob is new (its seed derives from the run seed, the worker and a counter); its
//! 64 KiB are generated and hashed before the clock starts for that push.

use std::sync::Arc;
use std::time::Instant;

use indicatif::ProgressBar;

use super::client::{Connection, Targets};
use super::content::{derive_seed, Content};
use super::error::BenchError;
use super::protocol;
use super::workers::{self, Stop, Tally};
use super::{BenchOptions, Metrics};
use crate::digest::Digest;

/// Runs `options.small_workers` workers for `options.small_duration`, all pushing to
/// `repository`.
pub async fn run(
    targets: Arc<Targets>,
    repository: String,
    seed: u64,
    options: &BenchOptions,
    progress: ProgressBar,
) -> Result<Metrics, BenchError> {
    let size = options.small_size;
    let repository = Arc::new(repository);
    workers::run(
        options.small_workers,
        options.small_duration,
        progress,
        |index, stop| {
            let conn = Connection::rotating(Arc::clone(&targets));
            worker(
                conn,
                Arc::clone(&repository),
                derive_seed(seed, index as u64),
                size,
                stop,
            )
        },
    )
    .await
}

async fn worker(
    mut conn: Connection,
    repository: Arc<String>,
    seed: u64,
    size: u64,
    stop: Stop,
) -> Result<Tally, BenchError> {
    let mut tally = Tally::default();
    let len = usize::try_from(size).unwrap_or(usize::MAX);
    let mut counter = 0u64;
    while !stop.now() {
        let bytes = Content::new(derive_seed(seed, counter), size).bytes(0, len);
        counter += 1;
        let digest = Digest::sha256(&bytes);
        let started = Instant::now();
        let body = protocol::bytes_body(bytes);
        protocol::push_monolithic(&mut conn, &repository, &digest, size, body).await?;
        tally.latencies.record(started.elapsed());
        tally.operations += 1;
        tally.bytes += size;
        stop.tick();
    }
    Ok(tally)
}
