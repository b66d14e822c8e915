//! Concurrent timed workers: N tasks, each with its own connection, repeat one operation
//! until a shared deadline (or until one of them fails, which stops the others early).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::error::BenchError;
use super::stats::{megabytes_per_second, per_second, Latencies};
use super::Metrics;

/// When workers stop: at the deadline, or as soon as any worker has failed.
#[derive(Debug, Clone)]
pub struct Stop {
    deadline: Instant,
    failed: Arc<AtomicBool>,
    progress: ProgressBar,
}

impl Stop {
    /// Whether the worker should stop now.
    pub fn now(&self) -> bool {
        self.failed.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }

    /// Counts one finished operation on the progress display.
    pub fn tick(&self) {
        self.progress.inc(1);
    }
}

/// What one worker did.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency of each operation.
    pub latencies: Latencies,
    /// Operations completed.
    pub operations: u64,
    /// Body bytes moved.
    pub bytes: u64,
}

/// Runs `count` workers made by `worker(index, stop)` for `duration`; merges their tallies.
pub async fn run<F, Fut>(
    count: usize,
    duration: Duration,
    progress: ProgressBar,
    worker: F,
) -> Result<Metrics, BenchError>
where
    F: Fn(usize, Stop) -> Fut,
    Fut: Future<Output = Result<Tally, BenchError>> + Send + 'static,
{
    let failed = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let stop = Stop {
        deadline: start + duration,
        failed: Arc::clone(&failed),
        progress: progress.clone(),
    };
    let handles: Vec<_> = (0..count)
        .map(|index| {
            let failed = Arc::clone(&failed);
            let work = worker(index, stop.clone());
            tokio::spawn(async move {
                let result = work.await;
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                result
            })
        })
        .collect();
    let mut total = Tally::default();
    let mut first_error = None;
    for handle in handles {
        match handle.await? {
            Ok(tally) => {
                total.latencies.merge(tally.latencies);
                total.operations += tally.operations;
                total.bytes += tally.bytes;
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    if let Some(error) = first_error {
        return Err(error);
    }
    Ok(Metrics {
        seconds: elapsed.as_secs_f64(),
        bytes: total.bytes,
        operations: total.operations,
        connections: count,
        megabytes_per_second: megabytes_per_second(total.bytes, elapsed),
        operations_per_second: per_second(total.operations, elapsed),
        latency: total.latencies.summary(),
        server: None,
    })
}
